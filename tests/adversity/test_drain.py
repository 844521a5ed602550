"""SIGTERM drains a gateway: its clients get 1012, the process exits 0, nothing acked is lost.

The drained gateway is each test's own; the clients come back on the session's shared pair.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import websockets

from tests.adversity.conftest import barrier, fetch_after, open_direct
from tests.rosters import SchoolIds
from tests.servers import ClosedError, Gateway, connect, start_gateway

pytestmark = pytest.mark.asyncio(loop_scope="session")

EXIT_DEADLINE_S = 15.0
# one send every 60 ms: about 16 per second, under the per-connection rate limit
SEND_EVERY_S = 0.06
SENDS_BEFORE_SIGTERM = 10
BURST_AT_SIGTERM = 20
SENDS_AFTER_SIGTERM_MAX = 60
NEW_MESSAGES = 3


def body(cid: str) -> str:
    return f"Message {cid}"


@dataclass
class Drain:
    """What the clients of a gateway saw while it was drained under them."""

    conv: str
    acked: dict[str, int]
    unanswered: list[str]
    parent_events: list[dict[str, Any]]
    close_codes: tuple[int | None, int | None]
    exit_s: float
    returncode: int | None
    log: str


async def drain_while_sending(
    service_env: dict[str, str], secret: str, school: SchoolIds, tmp_path: Path
) -> Drain:
    """A parent and a teacher on a gateway of their own; the teacher keeps sending (a burst in
    flight at the signal) while the gateway gets SIGTERM; returns once the process is gone."""
    drained = start_gateway(service_env, tmp_path)
    try:
        async with (
            connect(drained, secret, school.parent) as parent,
            connect(drained, secret, school.teacher, encoding="msgpack") as teacher,
        ):
            conv = await open_direct(teacher, school.school, school.parent)
            await parent.wait_for(lambda c: c.seqs(conv) == [1])
            acked: dict[str, int] = {}
            unanswered: list[str] = []

            async def send(cid: str) -> None:
                try:
                    reply = await teacher.request(
                        {"t": "send", "conv": conv, "cid": cid, "body": body(cid)}, timeout=15
                    )
                except (ClosedError, websockets.ConnectionClosed):
                    unanswered.append(cid)
                    return
                assert reply["t"] == "ok", reply
                acked[cid] = reply["seq"]

            pending: list[asyncio.Task[None]] = []
            for i in range(SENDS_BEFORE_SIGTERM):
                pending.append(asyncio.create_task(send(f"d{i}")))
                await asyncio.sleep(SEND_EVERY_S)
            # a burst in flight when the signal lands
            for i in range(SENDS_BEFORE_SIGTERM, SENDS_BEFORE_SIGTERM + BURST_AT_SIGTERM):
                pending.append(asyncio.create_task(send(f"d{i}")))
            await asyncio.sleep(0)
            drained.proc.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            # keep sending through the drain until the connection is gone
            first = SENDS_BEFORE_SIGTERM + BURST_AT_SIGTERM
            for i in range(first, first + SENDS_AFTER_SIGTERM_MAX):
                if teacher.close_code is not None:
                    break
                pending.append(asyncio.create_task(send(f"d{i}")))
                await asyncio.sleep(SEND_EVERY_S)
            await asyncio.gather(*pending)
            for client in (parent, teacher):
                await client.wait_for(lambda c: c.close_code is not None, timeout=EXIT_DEADLINE_S)
            assert set(acked) | set(unanswered) == {f"d{i}" for i in range(len(pending))}

        with contextlib.suppress(subprocess.TimeoutExpired):
            remaining = EXIT_DEADLINE_S - (time.monotonic() - signalled)
            await asyncio.to_thread(drained.proc.wait, max(remaining, 0.1))
        result = Drain(
            conv=conv,
            acked=acked,
            unanswered=unanswered,
            parent_events=list(parent.events),
            close_codes=(parent.close_code, teacher.close_code),
            exit_s=time.monotonic() - signalled,
            returncode=drained.proc.poll(),
            log=drained.log(),
        )
        print(
            f"\ndrain: exit code {result.returncode} {result.exit_s:.2f}s after SIGTERM; "
            f"{len(acked)} sends acknowledged, {len(unanswered)} unanswered"
        )
        return result
    finally:
        drained.terminate()


async def test_sigterm_closes_clients_1012_and_they_resume_elsewhere(
    service_env: dict[str, str],
    gateways: tuple[Gateway, Gateway],
    secret: str,
    school: SchoolIds,
    tmp_path: Path,
) -> None:
    """Clients of a draining gateway get 1012; resuming elsewhere they miss no message."""
    shared1, shared2 = gateways
    d = await drain_while_sending(service_env, secret, school, tmp_path)
    assert d.close_codes == (1012, 1012)
    # the promise is an exit within 10 s; only the generous deadline is asserted
    assert d.returncode is not None, f"still running {EXIT_DEADLINE_S}s after SIGTERM"
    assert d.returncode == 0, d.log
    assert "Application shutdown complete" in d.log and '"gateway_stopped"' in d.log, d.log
    assert d.acked, "sends before the SIGTERM were acknowledged"
    conv, acked = d.conv, dict(d.acked)
    parent_seen = [e["seq"] for e in d.parent_events if e["conv"] == conv]
    assert parent_seen == list(range(1, len(parent_seen) + 1)), "a prefix, in order"

    # The teacher comes back on another gateway and re-sends what went unanswered (same cid:
    # stored once), then writes more while the parent is still away.
    async with connect(shared2, secret, school.teacher, encoding="msgpack") as teacher:
        for cid in [*d.unanswered, *(f"new{i}" for i in range(NEW_MESSAGES))]:
            reply = await teacher.request(
                {"t": "send", "conv": conv, "cid": cid, "body": body(cid)}
            )
            assert reply["t"] == "ok", reply
            acked[cid] = reply["seq"]
    last = max(acked.values())
    assert sorted(acked.values()) == list(range(2, last + 1)), "one seq per cid, no gap"

    resume_from = parent_seen[-1]
    async with connect(shared1, secret, school.parent, resume={conv: resume_from}) as back:
        await barrier(back, conv)
        assert back.seqs(conv) == list(range(resume_from + 1, last + 1))
        cids = Counter(
            e["cid"]
            for e in d.parent_events + back.events
            if e["conv"] == conv and e["kind"] == "message"
        )
        assert set(cids) == set(acked), "every message the teacher sent reaches the parent"
        assert all(n == 1 for n in cids.values()), cids
        assert all(e["body"] == body(e["cid"]) for e in back.events if e["kind"] == "message")


# Observed: 10 to 18 of the ~21 sends in flight at the SIGTERM are stored but never answered.
# Connection._settle_sends (messaging/gateway/socket.py) now waits for their commits, but their
# `ok` goes through Connection.deliver, which drops every frame once `_close_code` is set (the
# drain set it to 1012 first), so the answers are discarded before the close frame.
async def test_drain_acknowledges_every_send_it_stored(
    service_env: dict[str, str],
    gateways: tuple[Gateway, Gateway],
    secret: str,
    school: SchoolIds,
    tmp_path: Path,
) -> None:
    """A send the draining gateway committed is acknowledged before the 1012, never left open."""
    d = await drain_while_sending(service_env, secret, school, tmp_path)
    assert d.close_codes == (1012, 1012)
    if not d.unanswered:
        pytest.skip("every send was answered before the drain: nothing was in flight")
    async with connect(gateways[0], secret, school.teacher) as teacher:
        stored = {e["cid"] for e in await fetch_after(teacher, d.conv, 0) if e.get("cid")}
    committed_unanswered = sorted(set(d.unanswered) & stored)
    print(f"{len(committed_unanswered)} of {len(d.unanswered)} unanswered sends were stored")
    assert committed_unanswered == [], "stored, but the sender was never told"
