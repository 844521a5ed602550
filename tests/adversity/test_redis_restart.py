"""Redis dies and comes back: nothing acknowledged is lost, clients are told to resync.

This test owns its Redis (killed with SIGKILL, restarted on the same port) and its two gateways,
so the shared servers of the session are never disturbed.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from messaging.devservices import LocalRedis, start_redis
from tests.adversity.conftest import fetch_after, metric, open_direct
from tests.e2e.conftest import import_school
from tests.rosters import make_school
from tests.servers import Client, Gateway, connect, start_gateway

pytestmark = pytest.mark.asyncio(loop_scope="session")

SENDS_WHILE_DOWN = 6


@contextlib.asynccontextmanager
async def own_servers(
    service_env: dict[str, str], log_dir: Path
) -> AsyncIterator[tuple[list[LocalRedis], Gateway, Gateway]]:
    """A private Redis (in a list, so that the test can replace it) and two gateways on it."""
    datadir = Path(tempfile.mkdtemp(prefix="messaging-test-redis-own-", dir="/tmp"))
    redis = [start_redis(datadir, persistent=False)]
    gws: list[Gateway] = []
    try:
        for _ in range(2):
            gws.append(start_gateway(service_env, log_dir, MESSAGING_REDIS_URL=redis[0].url))
        yield redis, gws[0], gws[1]
    finally:
        for gw in gws:
            gw.terminate()
        for server in redis:
            server.stop()
        shutil.rmtree(datadir, ignore_errors=True)


async def readyz(gw: Gateway) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5) as http:
        return await http.get(f"{gw.url}/readyz")


def known_seqs(client: Client, conv: str, own: dict[str, int]) -> set[int]:
    """Seqs a client knows of: events it received live and the acks of its own sends."""
    return set(client.seqs(conv)) | set(own.values())


def contiguous_top(seqs: set[int]) -> int:
    """The highest seq k such that 1..k are all known: where a client resumes fetching."""
    k = 0
    while k + 1 in seqs:
        k += 1
    return k


async def test_redis_restart_loses_no_acknowledged_message(
    service_env: dict[str, str], secret: str, tmp_path: Path
) -> None:
    """Sends during a Redis outage are acked; after resync plus fetch every client has them all."""
    async with own_servers(service_env, tmp_path) as (redis, gw1, gw2):
        school = make_school()
        import_school(gw1, secret, school)
        async with (
            connect(gw1, secret, school.parent) as parent,
            connect(gw2, secret, school.teacher, encoding="msgpack") as teacher,
        ):
            conv = await open_direct(parent, school.school, school.teacher)
            await teacher.wait_for(lambda c: c.seqs(conv) == [1])
            # the opener has the `ok` of seq 1 (the `created` event) instead of the event
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
            seq = await say("teacher", "up-2")
            await parent.wait_for(lambda c: seq in c.seqs(conv))

            old_port = redis[0].port
            redis[0].kill()
            for gw in (gw1, gw2):
                not_ready = await readyz(gw)
                assert not_ready.status_code == 503, not_ready.text
                assert not_ready.json()["checks"]["redis"] is False
            for i in range(SENDS_WHILE_DOWN):
                await say("parent" if i % 2 == 0 else "teacher", f"down-{i}")
                await asyncio.sleep(0.05)

            redis[0] = start_redis(redis[0].datadir, port=old_port, persistent=False)
            for client in (parent, teacher):
                await client.wait_for(
                    lambda c: any(f["t"] == "resync" for f in c.others), timeout=20
                )
            for client in clients.values():
                resync = next(f for f in client.others if f["t"] == "resync")
                assert resync.get("conv") in (None, conv), resync

            last = max(s for own in acks.values() for s in own.values())
            assert last == 1 + 2 + SENDS_WHILE_DOWN
            assert sorted(s for own in acks.values() for s in own.values()) == list(
                range(1, last + 1)
            ), "every seq was acknowledged to exactly one of the two"
            everything = set(range(1, last + 1))
            for who, client in clients.items():
                known = known_seqs(client, conv, acks[who])
                fetched = await fetch_after(client, conv, contiguous_top(known), limit=3)
                fetched_seqs = [e["seq"] for e in fetched]
                assert fetched_seqs == sorted(set(fetched_seqs)), "fetch: ascending, no duplicate"
                assert known | set(fetched_seqs) == everything, (who, known, fetched_seqs)
                assert set(client.seqs(conv)).isdisjoint(acks[who].values()), (
                    "a client never gets its own sends as events"
                )
                bodies = {e["cid"]: e["body"] for e in fetched if e["kind"] == "message"}
                for cid, body in bodies.items():
                    assert body.endswith(cid), (cid, body)

            # live delivery works again, both ways across the two gateways
            seq = await say("parent", "after-1")
            await teacher.wait_for(lambda c: seq in c.seqs(conv), timeout=15)
            seq = await say("teacher", "after-2")
            await parent.wait_for(lambda c: seq in c.seqs(conv), timeout=15)

        for gw in (gw1, gw2):
            assert await metric(gw, "messaging_redis_reconnects_total") >= 1
            ready = await readyz(gw)
            assert ready.status_code == 200, ready.text
