"""Recomputing the hash chains of the event log (`messaging verify-log`).

Reads every event of the chosen scope in (conversation, seq) order inside one read-only
snapshot and recomputes each chain from its first event; also checks that each chain ends where
its conversation says it ends, so that removing the newest events is caught too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import asyncpg

from messaging.domain.chain import GENESIS, event_hash


@dataclass(frozen=True, slots=True)
class ChainBreak:
    conv: str
    seq: int
    reason: str  # 'hash_mismatch', 'missing_hash', 'seq_gap', 'chain_end_mismatch'


@dataclass(slots=True)
class VerifyReport:
    conversations: int = 0
    events: int = 0
    seconds: float = 0.0
    breaks: list[ChainBreak] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaks


@dataclass(slots=True)
class _Cursor:
    conv: str
    expected_seq: int = 1
    prev: bytes = GENESIS
    broken: bool = False


async def verify_log(conn: asyncpg.Connection, school: str | None = None) -> VerifyReport:
    """Recompute every chain (of one school, or all); the first break of each is reported."""
    started = time.perf_counter()
    report = VerifyReport()
    scope = "" if school is None else "WHERE c.school = $1"
    args = () if school is None else (school,)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        heads = {
            r["id"]: (r["last_seq"], r["last_hash"])
            for r in await conn.fetch(
                f"SELECT c.id, c.last_seq, c.last_hash FROM conversations c {scope}", *args
            )
        }
        report.conversations = len(heads)
        cur: _Cursor | None = None
        query = f"""SELECT e.conv, e.seq, e.kind, e.actor, e.body, e.data, e.target, e.cid,
                           e.lang, e.ts, e.hash
                    FROM events e JOIN conversations c ON c.id = e.conv {scope}
                    ORDER BY e.conv, e.seq"""
        async for row in conn.cursor(query, *args, prefetch=2000):
            report.events += 1
            if cur is None or cur.conv != row["conv"]:
                if cur is not None:
                    _check_end(cur, heads, report)
                cur = _Cursor(row["conv"])
            if cur.broken:
                continue
            _check_event(cur, row, report)
        if cur is not None:
            _check_end(cur, heads, report)
    report.seconds = time.perf_counter() - started
    return report


def _check_event(cur: _Cursor, row: asyncpg.Record, report: VerifyReport) -> None:
    def broken(reason: str) -> None:
        cur.broken = True
        report.breaks.append(ChainBreak(cur.conv, row["seq"], reason))

    if row["seq"] != cur.expected_seq:
        broken("seq_gap")
        return
    if row["hash"] is None:
        broken("missing_hash")
        return
    digest = event_hash(
        cur.prev,
        conv=row["conv"],
        seq=row["seq"],
        kind=row["kind"],
        actor=row["actor"],
        body=row["body"],
        data=row["data"],
        target=row["target"],
        cid=row["cid"],
        lang=row["lang"],
        ts=row["ts"],
    )
    if digest != bytes(row["hash"]):
        broken("hash_mismatch")
        return
    cur.prev = digest
    cur.expected_seq += 1


def _check_end(
    cur: _Cursor, heads: dict[str, tuple[int, bytes | None]], report: VerifyReport
) -> None:
    if cur.broken:
        return
    last_seq, last_hash = heads.get(cur.conv, (0, None))
    if cur.expected_seq - 1 != last_seq or (last_hash is not None and bytes(last_hash) != cur.prev):
        report.breaks.append(ChainBreak(cur.conv, cur.expected_seq, "chain_end_mismatch"))
