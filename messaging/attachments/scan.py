"""A virus scan by ClamAV's clamd, over its INSTREAM command; fails closed.

    zINSTREAM\\0, then chunks (4-byte big-endian length + data), then a zero length;
    clamd answers "stream: OK", "stream: <signature> FOUND" or an error, ended by \\0.

Anything but a clear answer (clamd down, a timeout, a size-limit error, garbage) raises
`unavailable`: when scanning is configured, no file is kept unscanned.
"""

from __future__ import annotations

import asyncio
import struct
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

import structlog

from messaging.errors import ErrorCode, MessagingError

log = structlog.get_logger(__name__)

CHUNK = 256 * 1024
MAX_REPLY = 4096


class Verdict(StrEnum):
    CLEAN = "clean"
    INFECTED = "infected"


def parse_reply(reply: bytes) -> Verdict | None:
    """clamd's answer to INSTREAM; None for anything that is not a clear verdict."""
    text = reply.rstrip(b"\0\n").decode("utf-8", errors="replace")
    if text == "stream: OK":
        return Verdict.CLEAN
    if text.startswith("stream: ") and text.endswith(" FOUND"):
        return Verdict.INFECTED
    return None


class Scanner:
    def __init__(self, url: str, timeout_s: float = 120.0) -> None:
        self._url = urlsplit(url)
        self._timeout_s = timeout_s

    async def scan(self, path: Path) -> Verdict:
        """Clean or infected; raises `unavailable` when clamd gives no clear answer."""
        try:
            async with asyncio.timeout(self._timeout_s):
                reply = await self._instream(path)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            reply = b""
        verdict = parse_reply(reply)
        if verdict is None:
            log.warning("scan_failed", reply=reply[:100].decode("ascii", errors="replace"))
            raise MessagingError(ErrorCode.UNAVAILABLE, "scan_unavailable")
        if verdict is Verdict.INFECTED:
            log.warning("scan_infected", signature=_signature(reply))
        return verdict

    async def _instream(self, path: Path) -> bytes:
        if self._url.scheme == "unix":
            reader, writer = await asyncio.open_unix_connection(self._url.path)
        else:
            reader, writer = await asyncio.open_connection(self._url.hostname, self._url.port)
        try:
            writer.write(b"zINSTREAM\0")
            # Reads of a local file already in the page cache: cheaper than a thread hop each.
            with path.open("rb") as f:
                while chunk := f.read(CHUNK):
                    writer.write(struct.pack(">I", len(chunk)) + chunk)
                    await writer.drain()
            writer.write(struct.pack(">I", 0))
            await writer.drain()
            return await reader.readuntil(b"\0")
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass


def _signature(reply: bytes) -> str:
    """The signature's name only (it names the threat, never the file)."""
    text = reply.rstrip(b"\0").decode("utf-8", errors="replace")
    return text.removeprefix("stream: ").removesuffix(" FOUND")[:200]
