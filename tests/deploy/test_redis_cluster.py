"""Gateways on a real Redis Cluster (`redis+cluster://`): fan-out by sharded pub/sub.

Each test starts its own cluster (Debian's redis-server in cluster mode) and its own two
gateways on it, runs the cross-gateway chat test of tests/e2e, then kills one primary with
SIGKILL while the conversation goes on: with no replica the node must come back; with replicas,
one is promoted. Either way every client is told to resync and, fetching from Postgres, misses
nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
import redis
from redis.crc import key_slot

from messaging.bus.base import user_channel
from messaging.bus.cluster import RedisClusterBus, create_bus, publish_once
from messaging.bus.hub import envelope
from messaging.bus.redis import RedisBus
from messaging.config import ConfigError, RedisClusterURL, parse_redis_cluster_url
from messaging.devservices import LocalRedisCluster, start_redis_cluster
from tests.adversity.conftest import fetch_after, metric
from tests.adversity.test_redis_restart import contiguous_top, known_seqs
from tests.e2e import test_chat as chat
from tests.e2e.conftest import import_school
from tests.rosters import SchoolIds, make_school
from tests.servers import Gateway, connect, start_gateway

pytestmark = pytest.mark.asyncio(loop_scope="session")

SENDS_WHILE_DOWN = 4
# with 42 users, all three shards carry some of their channels (but once in ~10^7)
EXTRA_PARENTS = 40


async def test_cluster_url_names_its_seeds_and_picks_the_sharded_bus() -> None:
    """`redis+cluster://` lists seed nodes (credentials and TLS optional) and selects the
    sharded backend; a malformed one is refused with the variable's name, never its password."""
    url = "rediss+cluster://app:s%40cret@10.0.0.1:7000,[fd00::2]:7001"
    parsed = parse_redis_cluster_url(url)
    assert parsed == RedisClusterURL(
        seeds=(("10.0.0.1", 7000), ("fd00::2", 7001)), username="app", password="s@cret", tls=True
    )
    assert "s@cret" not in repr(parsed)
    assert parse_redis_cluster_url("redis://127.0.0.1:6379/0") is None
    for bad in ("redis+cluster://h", "redis+cluster://a:p4ss@h:1/0", "redis+cluster://h:1?x=1"):
        with pytest.raises(ConfigError, match="MESSAGING_REDIS_URL") as refused:
            parse_redis_cluster_url(bad)
        assert "p4ss" not in str(refused.value)

    def ignore(*_: object) -> None:
        pass

    single = create_bus("redis://127.0.0.1:6379/0", ignore, ignore, retry_max_s=1)
    sharded = create_bus("redis+cluster://127.0.0.1:7000", ignore, ignore, retry_max_s=1)
    assert isinstance(single, RedisBus) and isinstance(sharded, RedisClusterBus)
    await single.aclose()
    await sharded.aclose()


@contextlib.asynccontextmanager
async def gateways_on_a_cluster(
    service_env: dict[str, str], log_dir: Path, nodes: int
) -> AsyncIterator[tuple[LocalRedisCluster, Gateway, Gateway]]:
    datadir = Path(tempfile.mkdtemp(prefix="messaging-test-redis-cluster-", dir="/tmp"))
    gws: list[Gateway] = []
    try:
        cluster = await asyncio.to_thread(start_redis_cluster, datadir, nodes)
        try:
            for _ in range(2):
                gws.append(start_gateway(service_env, log_dir, MESSAGING_REDIS_URL=cluster.url))
            yield cluster, gws[0], gws[1]
        finally:
            for gw in gws:
                gw.terminate()
            cluster.stop()
    finally:
        shutil.rmtree(datadir, ignore_errors=True)


def redis_call(port: int, *parts: str) -> object:
    """One command on one node (no cluster routing)."""
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
    try:
        return client.execute_command(*parts)
    finally:
        client.close()


def owner_of(cluster: LocalRedisCluster, channel: str) -> int:
    """The port of the primary that owns `channel`'s slot, as the cluster says now."""
    slot = key_slot(channel.encode())
    table = redis_call(cluster.primary_ports()[0], "CLUSTER", "SLOTS")
    assert isinstance(table, list)
    for first, last, primary, *_replicas in table:
        if first <= slot <= last:
            return int(primary[1])
    raise AssertionError(f"no primary owns slot {slot}")


def shards_carrying(cluster: LocalRedisCluster, channels: set[str]) -> dict[int, int]:
    """How many of these channels each primary carries as sharded channels."""
    counts = {}
    for port in cluster.primary_ports():
        names = redis_call(port, "PUBSUB", "SHARDCHANNELS", "u:*")
        assert isinstance(names, list)
        counts[port] = len({n.decode() for n in names} & channels)
    return counts


async def readyz(gw: Gateway) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5) as http:
        return await http.get(f"{gw.url}/readyz")


async def wait_until_unready(gw: Gateway) -> None:
    for _ in range(100):
        response = await readyz(gw)
        if response.status_code == 503:
            assert response.json()["checks"]["redis"] is False, response.text
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{gw.url} stayed ready with a shard down")


async def chat_then_lose_a_primary(
    service_env: dict[str, str],
    secret: str,
    log_dir: Path,
    nodes: int,
    recover: Callable[[LocalRedisCluster, int], Awaitable[None]],
) -> None:
    async with gateways_on_a_cluster(service_env, log_dir, nodes) as (cluster, gw1, gw2):
        school = make_school(parents_in_a=EXTRA_PARENTS)
        import_school(gw1, secret, school)
        # the end-to-end chat test, as it runs on a single Redis
        await chat.test_parent_and_teacher_exchange_across_gateways((gw1, gw2), secret, school)
        await conversation_survives_a_lost_primary(cluster, gw1, gw2, secret, school, recover)


async def conversation_survives_a_lost_primary(
    cluster: LocalRedisCluster,
    gw1: Gateway,
    gw2: Gateway,
    secret: str,
    school: SchoolIds,
    recover: Callable[[LocalRedisCluster, int], Awaitable[None]],
) -> None:
    extra = (f"{school.prefix}-par-x{i}" for i in range(EXTRA_PARENTS))
    # a pair the chat test did not use, so that their conversation starts here
    users = [school.parent_b, school.parent_en, *extra]
    async with contextlib.AsyncExitStack() as stack:
        parent = await stack.enter_async_context(connect(gw1, secret, school.parent_b))
        teacher = await stack.enter_async_context(
            connect(gw2, secret, school.teacher_b, encoding="msgpack")
        )
        for i, user in enumerate(users[1:]):
            await stack.enter_async_context(connect((gw1, gw2)[i % 2], secret, user))
        # fan-out is sharded: no classic subscription, and the users' channels spread over the
        # three shards
        assert redis_call(
            cluster.primary_ports()[0], "PUBSUB", "NUMSUB", "u:" + school.parent_b
        ) == [
            ("u:" + school.parent_b).encode(),
            0,
        ]
        channels = {user_channel(u) for u in [school.teacher_b, *users]}
        spread = shards_carrying(cluster, channels)
        assert sum(spread.values()) == len(channels), spread
        assert min(spread.values()) > 0, f"users' channels per shard: {spread}"

        opened = await parent.request(
            {"t": "open", "school": school.school, "members": [school.teacher_b]}
        )
        assert opened.get("created") is True, opened
        conv = opened["conv"]
        await teacher.wait_for(lambda c: 1 in c.seqs(conv))
        acks: dict[str, dict[str, int]] = {"parent": {"(open)": 1}, "teacher": {}}
        clients = {"parent": parent, "teacher": teacher}

        async def say(who: str, cid: str) -> int:
            reply = await clients[who].request(
                {"t": "send", "conv": conv, "cid": cid, "body": f"{who}: {cid}"}
            )
            assert reply["t"] == "ok", reply
            acks[who][cid] = reply["seq"]
            return int(reply["seq"])

        seq = await say("parent", "up-1")
        await teacher.wait_for(lambda c: seq in c.seqs(conv))
        # outside a gateway (the CLI), a publish takes the cluster URL too
        typing = {"t": "typing", "conv": conv, "user": school.parent_b}
        await publish_once(cluster.url, [(user_channel(school.teacher_b), envelope(None, typing))])
        await teacher.wait_for(lambda c: typing in c.others)

        # the primary that carries the teacher's channel dies
        victim = owner_of(cluster, "u:" + school.teacher_b)
        cluster.node(victim).kill()
        for gw in (gw1, gw2):
            await wait_until_unready(gw)
        for i in range(SENDS_WHILE_DOWN):
            await say("parent" if i % 2 == 0 else "teacher", f"down-{i}")

        killed = time.monotonic()
        await recover(cluster, victim)
        recovered = time.monotonic()
        for client in (parent, teacher):
            await client.wait_for(lambda c: any(f["t"] == "resync" for f in c.others), timeout=30)
        print(
            f"\nredis cluster of {len(cluster.nodes)}: shard served again "
            f"{recovered - killed:.1f} s after the kill, clients resynced "
            f"{time.monotonic() - recovered:.1f} s later"
        )

        last = max(s for own in acks.values() for s in own.values())
        everything = set(range(1, last + 1))
        for who, client in clients.items():
            known = known_seqs(client, conv, acks[who])
            fetched = [e["seq"] for e in await fetch_after(client, conv, contiguous_top(known))]
            assert known | set(fetched) == everything, (who, sorted(known), fetched)

        # live delivery again, both ways, and the gateways are ready
        seq = await say("parent", "after-1")
        await teacher.wait_for(lambda c: seq in c.seqs(conv), timeout=15)
        seq = await say("teacher", "after-2")
        await parent.wait_for(lambda c: seq in c.seqs(conv), timeout=15)
    for gw in (gw1, gw2):
        assert await metric(gw, "messaging_redis_reconnects_total") >= 1
        ready = await readyz(gw)
        assert ready.status_code == 200, ready.text


async def test_chat_on_a_three_node_cluster_survives_a_primary_killed_and_restarted(
    service_env: dict[str, str], secret: str, tmp_path: Path
) -> None:
    """On three primaries, the chat test passes; a primary killed then restarted costs clients a
    resync and no message."""

    async def restart(cluster: LocalRedisCluster, port: int) -> None:
        await asyncio.sleep(1.0)  # down long enough for the cluster to notice
        await asyncio.to_thread(cluster.restart, cluster.node(port))
        await asyncio.to_thread(cluster.wait_ok)

    await chat_then_lose_a_primary(service_env, secret, tmp_path, 3, restart)


async def test_chat_on_a_cluster_with_replicas_survives_a_failover(
    service_env: dict[str, str], secret: str, tmp_path: Path
) -> None:
    """On three primaries with a replica each, a killed primary's replica takes over; clients
    resync and miss no message, with the dead node never coming back."""

    async def failover(cluster: LocalRedisCluster, port: int) -> None:
        for _ in range(300):
            if port not in cluster.primary_ports() and len(cluster.primary_ports()) == 3:
                return
            await asyncio.sleep(0.05)
        raise AssertionError("no replica was promoted")

    await chat_then_lose_a_primary(service_env, secret, tmp_path, 6, failover)
