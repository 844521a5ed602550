"""A client that stops reading is closed with 4008; a fast client beside it misses nothing.

The stalled client is a raw WebSocket built here: a tiny receive buffer on its socket and
`max_queue=1`, so that the server's bounded outbox (1,000 frames) fills after a modest flood of
large messages instead of after the tens of megabytes that loopback buffers could absorb.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import websockets

from messaging.gateway.auth import mint_token
from tests.adversity.conftest import BURST, barrier, metric, send_many
from tests.rosters import SchoolIds
from tests.servers import Gateway, connect

pytestmark = pytest.mark.asyncio(loop_scope="session")

BODY = "x" * 9_990
# a safety stop: the outbox holds 1,000 frames, so the close must come long before this
MAX_MESSAGES = 4_000
SENDERS = 2
# the server waits 5 s (CLOSE_WAIT_S) for a stalled client to take its close frame
RELEASE_DEADLINE_S = 10.0


async def stalled_connection(gw: Gateway, secret: str, user: str) -> tuple[Any, dict[str, Any]]:
    """A JSON connection past `ready` that reads nothing more until the test says so."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", gw.port))
    ws = await websockets.connect(
        gw.ws_url,
        sock=sock,
        subprotocols=["messaging.v1.json"],
        compression=None,
        max_queue=1,
        ping_interval=None,
    )
    await ws.send(json.dumps({"t": "hello", "token": mint_token(secret, user)}))
    ready = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert ready["t"] == "ready", ready
    return ws, ready


async def flood_until_slow_close(
    gw_watch: Gateway, gw_send: Gateway, secret: str, sender: str, conv: str
) -> tuple[dict[str, int], float]:
    """Send large messages until `gw_watch` counts one more slow consumer; {cid: seq}, seconds."""
    slow_before = await metric(gw_watch, "messaging_slow_consumers_total")
    acked: dict[str, int] = {}
    started = time.monotonic()

    async def flood(worker: int) -> None:
        round_ = 0
        while len(acked) < MAX_MESSAGES:
            if await metric(gw_watch, "messaging_slow_consumers_total") > slow_before:
                return
            batch = await send_many(
                gw_send, secret, sender, conv, BURST, prefix=f"w{worker}-{round_}", body=BODY
            )
            acked.update(batch)
            round_ += 1

    await asyncio.gather(*(flood(w) for w in range(SENDERS)))
    assert await metric(gw_watch, "messaging_slow_consumers_total") == slow_before + 1, (
        f"no slow-consumer close after {len(acked)} messages"
    )
    return acked, time.monotonic() - started


def server_side_connection_open(gw: Gateway, ws: Any) -> bool:
    """Whether the kernel still holds the server's end of this client's TCP connection."""
    client_port = ws.transport.get_extra_info("sockname")[1]
    wanted_local, wanted_remote = f"{gw.port:04X}", f"{client_port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, remote = line.split()[1:3]
        if local.endswith(":" + wanted_local) and remote.endswith(":" + wanted_remote):
            return True
    return False


async def open_conversation(gw: Gateway, secret: str, school: SchoolIds) -> str:
    async with connect(gw, secret, school.teacher) as teacher:
        opened = await teacher.request(
            {"t": "open", "school": school.school, "members": [school.parent]}
        )
    assert opened["t"] == "ok", opened
    return str(opened["conv"])


async def test_stalled_client_is_closed_4008_while_fast_client_gets_everything(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds
) -> None:
    """Flooding a conversation closes its stalled reader with 4008 and nobody else loses a seq."""
    gw1, gw2 = gateways
    closes_before = await metric(gw1, "messaging_closes_total", 'code="4008"')
    stalled, _ = await stalled_connection(gw1, secret, school.parent)
    try:
        async with connect(gw1, secret, school.parent) as fast:
            conv = await open_conversation(gw2, secret, school)
            acked, flood_s = await flood_until_slow_close(gw1, gw2, secret, school.teacher, conv)
            last = 1 + len(acked)
            assert sorted(acked.values()) == list(range(2, last + 1))
            assert await metric(gw1, "messaging_closes_total", 'code="4008"') == closes_before + 1

            # The stalled client reads again at once (well within the server's 5 s wait for a
            # stalled client to take its close frame): what was already on its way, then 4008.
            received: list[int] = []
            with pytest.raises(websockets.ConnectionClosed) as closed:
                async with asyncio.timeout(30):
                    while True:
                        frame = json.loads(await stalled.recv())
                        if frame["t"] == "event":
                            received.append(frame["seq"])
            rcvd = closed.value.rcvd
            print(
                f"\nflood: {len(acked)} messages of {len(BODY)} characters in {flood_s:.1f}s; the "
                f"stalled client had {len(received)} events on their way, then close frame {rcvd}"
            )
            assert rcvd is not None, "the server closed the TCP connection without a close frame"
            assert rcvd.code == 4008, rcvd
            assert received == list(range(1, len(received) + 1)), "a prefix, in order, no gap"
            assert len(received) < last, "the stalled client cannot have had everything"

            await fast.wait_for(lambda c: len(c.events) >= last, timeout=60)
            await barrier(fast, conv)
            assert fast.seqs(conv) == list(range(1, last + 1)), "the fast client has every seq"
            assert fast.close_code is None
    finally:
        stalled.transport.abort()  # a no-op once the server closed it

    # the process still serves, and the closed client recovers by resuming
    resume_from = received[-1] if received else 0
    async with connect(gw1, secret, school.parent, resume={conv: resume_from}) as back:
        await barrier(back, conv)
        assert back.seqs(conv) == list(range(resume_from + 1, min(last, resume_from + 200) + 1))
    async with connect(gw1, secret, school.office) as newcomer:
        assert newcomer.ready["user"]["id"] == school.office


# Observed: after the 4008 decision Connection._close (messaging/gateway/socket.py) cancels the
# writer and awaits `ws.close(4008)` for CLOSE_WAIT_S = 5 s; uvicorn's send() waits for the paused
# transport to become writable, so the close frame is never written. On that timeout `_abort`
# looks for the transport at `ws._send.__self__`, but Starlette hands the endpoint a plain
# closure (`sender` in starlette/_exception_handler.py), so nothing is aborted; uvicorn then
# calls transport.close(), which waits for a flush that a client who never reads never allows.
# The server's socket stays ESTABLISHED (zero-window probes answered, ~2.8 MB in Send-Q) for as
# long as the client keeps it; a client that reads later gets the old frames, then EOF without a
# close frame (1006), not 4008.
async def test_stalled_client_that_never_reads_is_cut_off(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds
) -> None:
    """A client that never reads again is disconnected by the server soon after its 4008."""
    gw1, gw2 = gateways
    stalled, _ = await stalled_connection(gw1, secret, school.parent)
    try:
        assert server_side_connection_open(gw1, stalled), "the lookup in /proc/net/tcp works"
        conv = await open_conversation(gw2, secret, school)
        await flood_until_slow_close(gw1, gw2, secret, school.teacher, conv)
        decided = time.monotonic()
        deadline = decided + RELEASE_DEADLINE_S
        while server_side_connection_open(gw1, stalled):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        still_open = server_side_connection_open(gw1, stalled)
        print(
            f"\nserver end of the stalled connection "
            f"{'still open' if still_open else 'released'} "
            f"{time.monotonic() - decided:.1f}s after the 4008 decision"
        )
        assert not still_open, "the server still holds the stalled client's connection"
    finally:
        stalled.transport.abort()
