"""The publishing side every broker backend shares: a bounded queue drained by one task.

Publishing never waits on the broker: a commit's events are queued and the task sends
everything pending in batches, in order; a batch that fails is put back in front and retried
with a capped backoff. Past `limit` queued messages (a broker gone for long), the oldest are
dropped: the subscribers lost their connections too and will resync from Postgres.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

Message = tuple[str, bytes]
# sends a batch; returns the messages that could not be sent (to try again)
Send = Callable[[list[Message]], Awaitable[list[Message]]]

QUEUE_LIMIT = 100_000
BATCH = 2000


class OutgoingQueue:
    def __init__(self, send: Send, *, retry_max_s: float, limit: int = QUEUE_LIMIT) -> None:
        self._send = send
        self._retry_max_s = retry_max_s
        self._limit = limit
        self._queue: deque[Message] = deque()
        self._ready = asyncio.Event()
        self.dropped = 0

    def put(self, messages: Sequence[Message]) -> None:
        self._queue.extend(messages)
        for _ in range(max(0, len(self._queue) - self._limit)):
            self._queue.popleft()
            self.dropped += 1
        self._ready.set()

    async def run(self) -> None:
        backoff = 0.05
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(len(self._queue), BATCH))]
                failed = await self._send(batch)
                if failed:
                    self._queue.extendleft(reversed(failed))
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self._retry_max_s)
                else:
                    backoff = 0.05
