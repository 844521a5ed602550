"""Helpers of the adversity tests; the shared gateways, secret and school fixtures come from
tests/conftest.py. Tests that kill or stop a gateway or Redis start their own."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.servers import Client, Gateway, connect

# Helpers shared by the adversity tests (imported as `tests.adversity.conftest`) ----------------

# frames a fresh connection may send at once: the per-connection bucket holds 40 (burst)
BURST = 36


async def send_many(
    gw: Gateway,
    secret: str,
    user: str,
    conv: str,
    count: int,
    *,
    prefix: str,
    body: str | None = None,
) -> dict[str, int]:
    """Send `count` messages as `user`, each connection sending at most BURST at once so that
    the per-connection rate limit never refuses one; returns {cid: acknowledged seq}."""
    acked: dict[str, int] = {}
    done = 0
    while done < count:
        n = min(BURST, count - done)
        cids = [f"{prefix}-{i}" for i in range(done, done + n)]
        async with connect(gw, secret, user, encoding="msgpack") as c:
            replies = await asyncio.gather(
                *(
                    c.request(
                        {"t": "send", "conv": conv, "cid": cid, "body": body or f"{prefix} {cid}"},
                        timeout=30,
                    )
                    for cid in cids
                )
            )
        for cid, reply in zip(cids, replies, strict=True):
            assert reply["t"] == "ok", reply
            acked[cid] = reply["seq"]
        done += n
    return acked


async def barrier(client: Client, conv: str) -> None:
    """A request answered after every frame the server queued for `client` before it."""
    reply = await client.request({"t": "fetch", "conv": conv, "limit": 1})
    assert reply["t"] == "ok", reply


async def fetch_after(client: Client, conv: str, after: int, limit: int = 200) -> list[Any]:
    """Every event of `conv` after `after`, paging with `fetch` until `more` is false."""
    events: list[Any] = []
    while True:
        page = await client.request({"t": "fetch", "conv": conv, "after": after, "limit": limit})
        assert page["t"] == "ok", page
        events += page["events"]
        if not page["more"]:
            return events
        assert page["events"], "`more` with an empty page"
        after = page["events"][-1]["seq"]


async def metric(gw: Gateway, name: str, labels: str = "") -> float:
    """The value of one sample of the gateway's /metrics (0 when absent)."""
    async with httpx.AsyncClient(timeout=5) as http:
        text = (await http.get(f"{gw.url}/metrics")).text
    wanted = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    return 0.0


async def open_direct(client: Client, school: str, other: str) -> str:
    opened = await client.request({"t": "open", "school": school, "members": [other]})
    assert opened["t"] == "ok", opened
    return str(opened["conv"])
