"""The Redis Cluster backend: sharded pub/sub (SSUBSCRIBE/SPUBLISH, Redis 7), and the factory
that picks a backend from `MESSAGING_REDIS_URL`.

`redis+cluster://host:port[,host:port...]` (or `rediss+cluster://`, TLS) selects this backend.
A sharded channel lives on the shard that owns its slot: each user channel `u:ID` is carried by
one shard only, so publishes and deliveries spread over the shards. (Classic PUBLISH in a
cluster is forwarded to every node: every node would carry every message.)

The guarantee is RedisBus's (see base.py), and so is the method: redis-py's cluster pub/sub
would move subscriptions between nodes on its own, silently, so the subscriber here owns the
whole cycle. Read the slot map from any node that answers; open one connection per primary
with retries off; SSUBSCRIBE there each channel whose slot it owns (one command per slot, as
Redis requires); wait for every confirmation; tell the gateway to resync its clients; read. Any
failure on any shard (a node killed, a connection cut, an error reply such as MOVED, a
SUNSUBSCRIBE pushed by the server when a slot moved, a change of the slot map seen by the
periodic check) drops every shard connection and starts over from a fresh slot map, retrying
with a capped backoff until every slot is served again: by a promoted replica, or by the node
back. One shard's trouble thus pauses the whole process's live delivery, as the cluster itself
stops (cluster-require-full-coverage); clients lose nothing, they resync from Postgres.

Publishing goes through a queue and one task, as in RedisBus, with redis-py's cluster client:
it routes each SPUBLISH to its slot's primary, follows redirections and refreshes its slot map.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
import structlog
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.crc import key_slot
from redis.exceptions import RedisClusterException, RedisError

from messaging.bus.base import Bus, OnInterrupted, OnMessage
from messaging.bus.outgoing import OutgoingQueue
from messaging.bus.redis import SUBSCRIBE_CONFIRM_S, RedisBus
from messaging.config import RedisClusterURL, parse_redis_cluster_url

log = structlog.get_logger(__name__)

SLOTS = 16384
# how often the subscriber compares its slot map with the cluster's (a failover behind a
# network partition breaks no connection of ours: only the map tells)
TOPOLOGY_CHECK_S = 5.0
# confirmations of a full resubscription: 15,000 channels take well under a second
RESUBSCRIBE_CONFIRM_S = 10.0

Address = tuple[str, int]
_ERRORS = (RedisError, RedisClusterException, OSError, TimeoutError)


class TopologyChanged(RedisError):
    """The slots of a subscribed channel moved: the subscriptions are rebuilt."""


def create_bus(
    url: str, on_message: OnMessage, on_interrupted: OnInterrupted, *, retry_max_s: float
) -> Bus:
    """RedisClusterBus for a `redis+cluster://` URL, RedisBus for any other."""
    cluster = parse_redis_cluster_url(url)
    if cluster is None:
        return RedisBus(url, on_message, on_interrupted, retry_max_s=retry_max_s)
    return RedisClusterBus(cluster, on_message, on_interrupted, retry_max_s=retry_max_s)


async def publish_once(url: str, messages: Sequence[tuple[str, bytes]]) -> None:
    """Publish these messages now, outside a gateway (the CLI's announcements), with PUBLISH or
    SPUBLISH as the URL calls for. Raises RedisError or OSError when Redis is unreachable."""
    cluster = parse_redis_cluster_url(url)
    client: Any = (
        aioredis.Redis.from_url(url)
        if cluster is None
        else RedisCluster(startup_nodes=_nodes(cluster.seeds), **_client_options(cluster))
    )
    command = "PUBLISH" if cluster is None else "SPUBLISH"
    try:
        pipe = client.pipeline(transaction=False)
        for channel, payload in messages:
            pipe.execute_command(command, channel, payload)
        await pipe.execute()
    except RedisClusterException as exc:
        raise RedisError(str(exc)) from exc
    finally:
        await client.aclose()


def _nodes(addresses: Sequence[Address]) -> list[ClusterNode]:
    return [ClusterNode(host, port) for host, port in addresses]


def _client_options(cluster: RedisClusterURL) -> dict[str, Any]:
    options: dict[str, Any] = {"username": cluster.username, "password": cluster.password}
    if cluster.tls:
        options["ssl"] = True
    return options


@dataclass
class _Shard:
    """The subscriber's connection to one primary, for one cycle."""

    address: Address
    client: aioredis.Redis
    pubsub: aioredis.client.PubSub
    keepalive: str


class RedisClusterBus:
    def __init__(
        self,
        cluster: RedisClusterURL,
        on_message: OnMessage,
        on_interrupted: OnInterrupted,
        *,
        retry_max_s: float = 2.0,
    ) -> None:
        self._cluster = cluster
        self._on_message = on_message
        self._on_interrupted = on_interrupted
        self._retry_max_s = retry_max_s
        self._options = _client_options(cluster)
        # every node ever seen, seeds first: where the slot map is asked for
        self._known: list[Address] = list(cluster.seeds)
        self._pub_client = RedisCluster(
            startup_nodes=_nodes(cluster.seeds),
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
            socket_connect_timeout=2,
            socket_timeout=5,
            socket_keepalive=True,
            **self._options,
        )
        self._token = secrets.token_hex(6)
        self._channels: set[str] = set()
        self._confirm: dict[str, list[asyncio.Future[None]]] = {}
        # SUNSUBSCRIBEs we sent and whose reply is still to come, by channel
        self._unsubscribing: Counter[str] = Counter()
        # this cycle's slot owners and connections; empty while disconnected
        self._owners: list[Address] = []
        self._shards: dict[Address, _Shard] = {}
        self._outgoing = OutgoingQueue(self._spublish, retry_max_s=retry_max_s)
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
            try:
                await self._serve(resync=not first)
            except _ERRORS as exc:
                if self.healthy or first:
                    log.warning("redis_cluster_subscriber_lost", error=type(exc).__name__)
                if self.healthy:
                    backoff = 0.05
                first = False
                self.healthy = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._retry_max_s)

    async def _serve(self, *, resync: bool) -> None:
        owners = await self._slot_map()
        shards: dict[Address, _Shard] = {}
        readers: list[asyncio.Task[None]] = []
        try:
            for address in sorted(set(owners)):
                shards[address] = await self._connect(address, owners)
            self._owners, self._shards = owners, shards
            confirmed = asyncio.Event()
            waiting = await self._subscribe_all(shards)
            readers = [
                asyncio.create_task(self._read(s, waiting, confirmed)) for s in shards.values()
            ]
            readers.append(asyncio.create_task(self._watch_topology(owners)))
            await self._until_confirmed(confirmed, readers)
            self.healthy = True
            if resync:
                self.reconnects += 1
                log.info("redis_cluster_subscriber_back", channels=len(self._channels))
                self._on_interrupted()
            await self._first_failure(readers)
        finally:
            self._owners, self._shards = [], {}
            self._unsubscribing.clear()
            for task in readers:
                task.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            for shard in shards.values():
                with contextlib.suppress(Exception):
                    await shard.pubsub.aclose()  # type: ignore[no-untyped-call]
                with contextlib.suppress(Exception):
                    await shard.client.aclose()
            self._release_waiters()

    async def _slot_map(self) -> list[Address]:
        """The primary of each slot, from the first known node that answers."""
        last: BaseException | None = None
        for address in list(self._known):
            client = self._plain_client(address, socket_timeout=2)
            try:
                ranges = await client.execute_command("CLUSTER", "SLOTS")  # type: ignore[no-untyped-call]
            except _ERRORS as exc:
                last = exc
                continue
            finally:
                await client.aclose()
            owners = self._parse_slots(ranges, address)
            if owners is not None:
                self._known.remove(address)
                self._known.insert(0, address)  # ask it first next time
                return owners
        raise TopologyChanged(f"no cluster node gave a full slot map ({type(last).__name__})")

    def _parse_slots(self, ranges: Any, asked: Address) -> list[Address] | None:
        owners: list[Address | None] = [None] * SLOTS
        for first, last, primary, *replicas in ranges:
            for node in (primary, *replicas):
                address = self._address(node, asked)
                if address not in self._known:
                    self._known.append(address)
            owners[first : last + 1] = [self._address(primary, asked)] * (last - first + 1)
        if any(o is None for o in owners):
            return None
        return [o for o in owners if o is not None]

    @staticmethod
    def _address(node: Sequence[Any], asked: Address) -> Address:
        host = node[0].decode() if isinstance(node[0], bytes) else str(node[0])
        # an empty or "?" host means "the node you asked" (CLUSTER SLOTS' convention)
        return (host if host not in ("", "?") else asked[0], int(node[1]))

    def _plain_client(self, address: Address, **options: Any) -> aioredis.Redis:
        return aioredis.Redis(
            host=address[0],
            port=address[1],
            retry=Retry(NoBackoff(), 0),
            socket_connect_timeout=2,
            socket_keepalive=True,
            **self._options,
            **options,
        )

    async def _connect(self, address: Address, owners: list[Address]) -> _Shard:
        client = self._plain_client(address, health_check_interval=5)
        pubsub = client.pubsub()
        shard = _Shard(address, client, pubsub, self._keepalive(address, owners))
        try:
            await pubsub.connect()  # type: ignore[no-untyped-call]
        except BaseException:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            await client.aclose()
            raise
        return shard

    def _keepalive(self, address: Address, owners: list[Address]) -> str:
        """A channel of this gateway's own on this shard: the connection stays subscribed (and
        health-checked) even when none of the shard's users is connected here."""
        n = 0
        while owners[key_slot(f"g:{self._token}:{n}".encode())] != address:
            n += 1
        return f"g:{self._token}:{n}"

    async def _subscribe_all(self, shards: dict[Address, _Shard]) -> set[str]:
        """SSUBSCRIBE every channel on its shard, one command per slot; returns the channels
        whose confirmation is awaited."""
        by_slot: dict[tuple[Address, int], list[str]] = {}
        for channel in [*self._channels, *(s.keepalive for s in shards.values())]:
            slot = key_slot(channel.encode())
            by_slot.setdefault((self._owners[slot], slot), []).append(channel)
        waiting = {c for channels in by_slot.values() for c in channels}
        for (address, _slot), channels in by_slot.items():
            await shards[address].pubsub.ssubscribe(*channels)
        return waiting

    async def _until_confirmed(
        self, confirmed: asyncio.Event, readers: list[asyncio.Task[None]]
    ) -> None:
        waiter = asyncio.create_task(confirmed.wait())
        try:
            done, _ = await asyncio.wait(
                [waiter, *readers], timeout=RESUBSCRIBE_CONFIRM_S, return_when="FIRST_COMPLETED"
            )
        finally:
            waiter.cancel()
        for task in done:
            task.result()  # a reader only ends by raising
        if not confirmed.is_set():
            raise TimeoutError("subscriptions not confirmed")

    async def _first_failure(self, readers: list[asyncio.Task[None]]) -> None:
        done, _ = await asyncio.wait(readers, return_when="FIRST_COMPLETED")
        for task in done:
            task.result()
        raise TopologyChanged("a shard reader stopped")

    async def _read(self, shard: _Shard, waiting: set[str], confirmed: asyncio.Event) -> None:
        while True:
            message = await shard.pubsub.get_message(timeout=1.0)
            if message is not None:
                self._dispatch(message, waiting, confirmed)

    def _dispatch(
        self, message: dict[str, Any], waiting: set[str], confirmed: asyncio.Event
    ) -> None:
        kind = message["type"]
        channel = message["channel"]
        name = channel.decode() if isinstance(channel, bytes) else str(channel)
        if kind == "smessage":
            self._on_message(name, message["data"])
        elif kind == "ssubscribe":
            if waiting:
                waiting.discard(name)
                if not waiting:
                    confirmed.set()
            for fut in self._confirm.pop(name, []):
                if not fut.done():
                    fut.set_result(None)
        elif kind == "sunsubscribe":
            if self._unsubscribing[name] > 0:
                self._unsubscribing[name] -= 1
                if not self._unsubscribing[name]:
                    del self._unsubscribing[name]
            elif name in self._channels or name.startswith("g:"):
                # the server dropped it: its slot moved to another node
                raise TopologyChanged(f"slot {key_slot(name.encode())} moved")

    async def _watch_topology(self, owners: list[Address]) -> None:
        while True:
            await asyncio.sleep(TOPOLOGY_CHECK_S)
            if await self._slot_map() != owners:
                raise TopologyChanged("the slot map changed")

    def _release_waiters(self) -> None:
        """Subscribers still waiting for a confirmation return: the next cycle subscribes them,
        and resyncs their clients."""
        for futures in self._confirm.values():
            for fut in futures:
                if not fut.done():
                    fut.set_result(None)
        self._confirm.clear()

    def _shard_of(self, channel: str) -> _Shard | None:
        if not self._owners:
            return None
        return self._shards.get(self._owners[key_slot(channel.encode())])

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)
        shard = self._shard_of(channel)
        if shard is None:
            return
        fut = asyncio.get_running_loop().create_future()
        self._confirm.setdefault(channel, []).append(fut)
        try:
            await shard.pubsub.ssubscribe(channel)
            await asyncio.wait_for(asyncio.shield(fut), SUBSCRIBE_CONFIRM_S)
        except _ERRORS:
            # The subscriber notices the broken shard, resubscribes everything and resyncs
            # every client, this one included.
            pass

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        shard = self._shard_of(channel)
        if shard is None:
            return
        self._unsubscribing[channel] += 1
        with contextlib.suppress(*_ERRORS):
            await shard.pubsub.sunsubscribe(channel)

    # Publishing ---------------------------------------------------------------------------------

    def publish(self, messages: Sequence[tuple[str, bytes]]) -> None:
        self._outgoing.put(messages)

    @property
    def dropped(self) -> int:
        return self._outgoing.dropped

    async def _spublish(self, batch: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        """Publish a batch (the cluster client sends one pipeline per shard, in parallel);
        returns the messages to try again."""
        try:
            pipe = self._pub_client.pipeline(transaction=False)
            for channel, payload in batch:
                pipe.execute_command("SPUBLISH", channel, payload)
            results = await pipe.execute(raise_on_error=False)
        except _ERRORS as exc:
            log.warning("redis_publish_failed", error=type(exc).__name__, held=len(batch))
            return batch
        failed = [m for m, r in zip(batch, results, strict=True) if isinstance(r, Exception)]
        if failed:
            error = next(r for r in results if isinstance(r, Exception))
            log.warning("redis_publish_failed", error=type(error).__name__, held=len(failed))
        return failed

    async def ping(self) -> bool:
        """Every primary of the current slot map answers."""
        shards = list(self._shards.values())
        if not shards:
            return False
        try:
            async with asyncio.timeout(1.0):
                replies = await asyncio.gather(*(s.client.ping() for s in shards))
        except Exception:  # a readiness probe answers, whatever broke (a cycle closing, say)
            return False
        return all(replies)

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self._pub_client.aclose()
