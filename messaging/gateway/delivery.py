"""Recording that a bulk send reached each recipient ("delivered" in its statistics).

Deliveries are noted in memory as the hub hands a broadcast's message to a live socket (or a
recipient fetches it) and written in one UPDATE per second, so that ten thousand deliveries
cost one statement, not ten thousand.
"""

from __future__ import annotations

import asyncio

import asyncpg
import structlog

from messaging.errors import MessagingError
from messaging.store.broadcasts import mark_delivered

log = structlog.get_logger(__name__)

MAX_PENDING = 1_000_000


class DeliveryTracker:
    def __init__(self, pool: asyncpg.Pool, interval_s: float = 1.0) -> None:
        self._pool = pool
        self._interval_s = interval_s
        self._pending: set[tuple[str, str]] = set()

    def add(self, conv: str, user: str) -> None:
        if len(self._pending) < MAX_PENDING:
            self._pending.add((conv, user))

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            await self.flush()

    async def flush(self) -> None:
        if not self._pending:
            return
        pairs, self._pending = sorted(self._pending), set()
        try:
            await mark_delivered(self._pool, pairs)
        except MessagingError as exc:
            log.warning("deliveries_not_recorded", count=len(pairs), code=exc.code.value)
            for pair in pairs[: MAX_PENDING - len(self._pending)]:
                self._pending.add(pair)
