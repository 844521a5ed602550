"""The Redis pub/sub backend.

redis-py's pub/sub object can reconnect and resubscribe on its own, silently: the gateway would
never learn that messages were missed in between. So the subscriber connection here is built
with retries switched off, and this module owns the whole cycle: connect, subscribe to every
channel, wait for the confirmations, tell the gateway to resync its clients, read; on any error,
drop the connection and start over with a capped backoff.

Publishing goes through its own queue and task, draining everything pending into one pipeline,
so that a slow or absent Redis never holds up a commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Sequence

import redis.asyncio as aioredis
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from messaging.bus.base import OnInterrupted, OnMessage
from messaging.bus.outgoing import OutgoingQueue

log = structlog.get_logger(__name__)

SUBSCRIBE_CONFIRM_S = 2.0


class RedisBus:
    def __init__(
        self,
        url: str,
        on_message: OnMessage,
        on_interrupted: OnInterrupted,
        *,
        retry_max_s: float = 2.0,
    ) -> None:
        self._url = url
        self._on_message = on_message
        self._on_interrupted = on_interrupted
        self._retry_max_s = retry_max_s
        self._sub_client = aioredis.Redis.from_url(
            url,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=5,
            socket_connect_timeout=2,
            socket_keepalive=True,
        )
        self._pub_client = aioredis.Redis.from_url(
            url, socket_connect_timeout=2, socket_timeout=5, socket_keepalive=True
        )
        # the gateway's own channel keeps the connection subscribed even with no users
        self._own_channel = "g:" + secrets.token_hex(6)
        self._channels: set[str] = {self._own_channel}
        self._confirm: dict[str, list[asyncio.Future[None]]] = {}
        self._pubsub: aioredis.client.PubSub | None = None
        self._outgoing = OutgoingQueue(self._publish, retry_max_s=retry_max_s)
        self.healthy = False
        self.reconnects = 0

    # Subscribing --------------------------------------------------------------------------------

    async def run(self) -> None:
        """Subscriber and publisher, until cancelled."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._subscriber())
            tg.create_task(self._outgoing.run())

    async def _subscriber(self) -> None:
        backoff = 0.05
        first = True
        while True:
            pubsub = self._sub_client.pubsub()
            try:
                await self._serve(pubsub, resync=not first)
            except (RedisError, OSError, TimeoutError) as exc:
                if self.healthy or first:
                    log.warning("redis_subscriber_lost", error=type(exc).__name__)
                first = False
                self.healthy = False
                self._pubsub = None
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._retry_max_s)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _serve(self, pubsub: aioredis.client.PubSub, *, resync: bool) -> None:
        channels = sorted(self._channels)
        await pubsub.subscribe(*channels)
        waiting = set(channels)
        self._pubsub = pubsub
        while waiting:
            self._dispatch(await pubsub.get_message(timeout=SUBSCRIBE_CONFIRM_S), waiting)
        self.healthy = True
        if resync:
            self.reconnects += 1
            log.info("redis_subscriber_back", channels=len(channels))
            self._on_interrupted()
        while True:
            self._dispatch(await pubsub.get_message(timeout=1.0), None)

    def _dispatch(self, message: dict[str, object] | None, waiting: set[str] | None) -> None:
        if message is None:
            if waiting is not None:
                raise TimeoutError("subscriptions not confirmed")
            return
        kind = message["type"]
        channel = message["channel"]
        name = channel.decode() if isinstance(channel, bytes) else str(channel)
        if kind == "message":
            data = message["data"]
            assert isinstance(data, bytes)
            self._on_message(name, data)
        elif kind == "subscribe":
            if waiting is not None:
                waiting.discard(name)
            for fut in self._confirm.pop(name, []):
                if not fut.done():
                    fut.set_result(None)

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)
        pubsub = self._pubsub
        if pubsub is None:
            return
        fut = asyncio.get_running_loop().create_future()
        self._confirm.setdefault(channel, []).append(fut)
        try:
            await pubsub.subscribe(channel)
            await asyncio.wait_for(asyncio.shield(fut), SUBSCRIBE_CONFIRM_S)
        except (RedisError, OSError, TimeoutError):
            # The subscriber loop notices the broken connection, resubscribes everything and
            # resyncs every client, this one included.
            pass

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        pubsub = self._pubsub
        if pubsub is not None:
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                await pubsub.unsubscribe(channel)

    # Publishing ---------------------------------------------------------------------------------

    def publish(self, messages: Sequence[tuple[str, bytes]]) -> None:
        self._outgoing.put(messages)

    @property
    def dropped(self) -> int:
        return self._outgoing.dropped

    async def _publish(self, batch: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        try:
            pipe = self._pub_client.pipeline(transaction=False)
            for channel, payload in batch:
                pipe.publish(channel, payload)
            await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("redis_publish_failed", error=type(exc).__name__, held=len(batch))
            return batch
        return []

    async def ping(self) -> bool:
        try:
            return bool(await asyncio.wait_for(self._pub_client.ping(), 1.0))
        except (RedisError, OSError, TimeoutError):
            return False

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self._pub_client.aclose()
        with contextlib.suppress(Exception):
            await self._sub_client.aclose()
