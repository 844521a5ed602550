"""A minimal writer of OLE2 compound files (MS-CFB version 3), to build DOC test files.

Only what the tests need: storages and streams in a tree; every stream is padded to at least
4,096 bytes so that no mini stream is needed. olefile reads the result like any Word file.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

SECTOR = 512
FREESECT = 0xFFFFFFFF
ENDOFCHAIN = 0xFFFFFFFE
FATSECT = 0xFFFFFFFD
NOSTREAM = 0xFFFFFFFF
MINI_CUTOFF = 4096


@dataclass
class Node:
    name: str
    data: bytes | None = None  # None: a storage
    children: list[Node] = field(default_factory=list)


def _sort_key(node: Node) -> tuple[int, str]:
    return len(node.name), node.name.upper()


def build(tree: dict[str, object]) -> bytes:
    """`tree` maps names to bytes (streams) or to nested dicts (storages)."""
    root = Node("Root Entry", None, _nodes(tree))
    entries: list[Node] = []
    _flatten(root, entries)
    data_chains: dict[int, tuple[int, int]] = {}
    sectors: list[bytes] = []
    for index, node in enumerate(entries):
        if node.data is None:
            continue
        payload = node.data.ljust(MINI_CUTOFF, b"\0") if len(node.data) < MINI_CUTOFF else node.data
        node.data = payload
        start = len(sectors)
        for i in range(0, len(payload), SECTOR):
            sectors.append(payload[i : i + SECTOR].ljust(SECTOR, b"\0"))
        data_chains[index] = (start, len(sectors) - start)
    dir_bytes = _directory(entries, data_chains)
    dir_start = len(sectors)
    for i in range(0, len(dir_bytes), SECTOR):
        sectors.append(dir_bytes[i : i + SECTOR].ljust(SECTOR, b"\0"))
    dir_count = len(sectors) - dir_start
    fat_count = 1
    while (len(sectors) + fat_count) > fat_count * (SECTOR // 4):
        fat_count += 1
    fat_start = len(sectors)
    fat = [FREESECT] * (fat_count * SECTOR // 4)
    for start, count in [*data_chains.values(), (dir_start, dir_count)]:
        for s in range(start, start + count - 1):
            fat[s] = s + 1
        fat[start + count - 1] = ENDOFCHAIN
    for s in range(fat_start, fat_start + fat_count):
        fat[s] = FATSECT
    fat_bytes = struct.pack(f"<{len(fat)}I", *fat)
    for i in range(fat_count):
        sectors.append(fat_bytes[i * SECTOR : (i + 1) * SECTOR])
    difat = [fat_start + i for i in range(fat_count)] + [FREESECT] * (109 - fat_count)
    header = (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
        + b"\0" * 16
        + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6)
        + b"\0" * 6
        + struct.pack(
            "<IIIIIIIII", 0, fat_count, dir_start, 0, MINI_CUTOFF, ENDOFCHAIN, 0, ENDOFCHAIN, 0
        )
        + struct.pack("<109I", *difat)
    )
    assert len(header) == SECTOR
    return header + b"".join(sectors)


def _nodes(tree: dict[str, object]) -> list[Node]:
    nodes = []
    for name, value in tree.items():
        if isinstance(value, dict):
            nodes.append(Node(name, None, _nodes(value)))
        else:
            assert isinstance(value, bytes)
            nodes.append(Node(name, value))
    return sorted(nodes, key=_sort_key)


def _flatten(node: Node, out: list[Node]) -> None:
    out.append(node)
    for child in node.children:
        _flatten(child, out)


def _directory(entries: list[Node], chains: dict[int, tuple[int, int]]) -> bytes:
    ids = {id(n): i for i, n in enumerate(entries)}
    right: dict[int, int] = {}
    child: dict[int, int] = {}
    for n in entries:
        if n.children:
            child[ids[id(n)]] = ids[id(n.children[0])]
            for a, b in zip(n.children, n.children[1:], strict=False):
                right[ids[id(a)]] = ids[id(b)]
    out = b""
    for i, n in enumerate(entries):
        name = n.name.encode("utf-16-le") + b"\0\0"
        kind = 5 if i == 0 else (1 if n.data is None else 2)
        start, size = ENDOFCHAIN, 0
        if i in chains:
            start, size = chains[i][0], len(n.data or b"")
        out += (
            name.ljust(64, b"\0")
            + struct.pack("<HBB", len(name), kind, 1)
            + struct.pack("<III", NOSTREAM, right.get(i, NOSTREAM), child.get(i, NOSTREAM))
            + b"\0" * 16
            + struct.pack("<I", 0)
            + b"\0" * 16
            + struct.pack("<IQ", start, size)
        )
    while len(out) % SECTOR:
        out += (
            b"\0" * 64
            + struct.pack("<HBB", 0, 0, 0)
            + struct.pack("<III", NOSTREAM, NOSTREAM, NOSTREAM)
            + b"\0" * 44
        )
    return out
