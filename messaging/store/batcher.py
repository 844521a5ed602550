"""Group commit: concurrent appends share one transaction instead of one commit each.

Appends are spread over a few writer tasks by conversation, so that the appends of one
conversation are always committed by the same writer, in the order they were submitted. Each
writer takes everything queued for it (up to `max_batch`), appends it in one transaction, then
resolves the submitters' futures: a sender is acknowledged only after the commit. If a batch
fails as a whole (a lost connection, say), its items are retried one by one so that one bad
item never fails the others.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Callable

import asyncpg
import structlog

from messaging.domain.authz import Denial
from messaging.errors import ErrorCode, MessagingError
from messaging.store.log import Append, Appended, append_batch
from messaging.store.pool import translated_errors

log = structlog.get_logger(__name__)

OnCommit = Callable[[list[Appended]], None]
Observe = Callable[[int, float], None]


class _Writer:
    def __init__(self) -> None:
        self.queue: list[tuple[Append, asyncio.Future[Appended]]] = []
        self.wakeup = asyncio.Event()


class AppendBatcher:
    def __init__(
        self,
        pool: asyncpg.Pool,
        on_commit: OnCommit,
        *,
        writers: int = 4,
        max_batch: int = 512,
        observe: Observe | None = None,
    ) -> None:
        self._pool = pool
        self._on_commit = on_commit
        self._writers = [_Writer() for _ in range(writers)]
        self._max_batch = max_batch
        self._observe = observe

    def submit(self, item: Append) -> asyncio.Future[Appended]:
        """Queue an append; the future resolves after its commit, or fails with the rule's
        refusal as a MessagingError."""
        fut: asyncio.Future[Appended] = asyncio.get_running_loop().create_future()
        writer = self._writers[zlib.crc32(item.conv.encode()) % len(self._writers)]
        writer.queue.append((item, fut))
        writer.wakeup.set()
        return fut

    async def append(self, item: Append) -> Appended:
        return await self.submit(item)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for writer in self._writers:
                tg.create_task(self._write(writer))

    async def _write(self, writer: _Writer) -> None:
        while True:
            await writer.wakeup.wait()
            writer.wakeup.clear()
            while writer.queue:
                batch = writer.queue[: self._max_batch]
                del writer.queue[: self._max_batch]
                await self._commit(batch)

    async def _commit(self, batch: list[tuple[Append, asyncio.Future[Appended]]]) -> None:
        started = time.perf_counter()
        try:
            async with translated_errors(), self._pool.acquire() as conn, conn.transaction():
                outcomes = await append_batch(conn, [item for item, _ in batch])
        except MessagingError as exc:
            if len(batch) > 1:
                log.warning("append_batch_failed", size=len(batch), code=exc.code.value)
                for one in batch:
                    await self._commit([one])
                return
            _fail(batch[0][1], exc)
            return
        except Exception:  # a bug must fail the request, never hang it
            log.exception("append_batch_crashed", size=len(batch))
            for _, fut in batch:
                _fail(fut, MessagingError(ErrorCode.INTERNAL))
            return
        if self._observe is not None:
            self._observe(len(batch), time.perf_counter() - started)
        committed: list[Appended] = []
        for (_, fut), outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, Denial):
                _fail(fut, MessagingError(outcome.code, outcome.reason))
                continue
            if not fut.done():
                fut.set_result(outcome)
            if not outcome.duplicate:
                committed.append(outcome)
        if committed:
            self._on_commit(committed)


def _fail(fut: asyncio.Future[Appended], exc: MessagingError) -> None:
    if not fut.done():
        fut.set_exception(exc)
