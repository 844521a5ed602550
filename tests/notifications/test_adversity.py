"""Notifications when things go wrong: a worker killed mid-batch, an SMTP server that refuses,
drops the connection or stops answering, and a push subscription the push service forgot."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import http_ece
import pytest
from py_vapid import Vapid02

from tests.notifications.conftest import (
    StartWorker,
    api,
    eventually,
    new_school,
    open_direct,
    send,
)
from tests.notifications.conftest import deliveries as deliveries_of
from tests.notifications.conftest import outbox_rows as rows_of
from tests.notifications.support import BrowserKeys, PushEndpoint, SmtpServer, b64url
from tests.servers import Gateway, connect

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_worker_killed_mid_batch_sends_no_flood(
    gateway: Gateway, secret: str, smtp: SmtpServer, workers: StartWorker, owner_dsn: str
) -> None:
    """Killed while the server holds its third e-mail, a worker's successor resends that one
    only: every conversation is told, none more than twice, with one Message-ID."""
    school = new_school(gateway, secret, parents_in_a=4)
    parents = [school.parent] + [f"{school.prefix}-par-x{i}" for i in range(4)]
    async with connect(gateway, secret, school.teacher) as teacher:
        convs = [await open_direct(teacher, school, p) for p in parents]
        for conv in convs:
            await send(teacher, conv, "Sortie au musée vendredi")
            await send(teacher, conv, "Prévoir un lunch froid")
    smtp.sink.stall_after = 2
    first = workers(MESSAGING_NOTIFY_CONCURRENCY="1")
    assert await asyncio.to_thread(smtp.sink.stalled.wait, 20)
    first.kill()
    smtp.sink.stall_after = None
    smtp.sink.release.set()  # the held answer now goes to a dead connection
    workers()
    await eventually(lambda: all(smtp.sink.for_conv(c) for c in convs), timeout=15)
    await asyncio.sleep(1.5)
    counts = {c: len(smtp.sink.for_conv(c)) for c in convs}
    assert all(1 <= n <= 2 for n in counts.values()), counts
    assert sum(counts.values()) == len(convs) + 1, counts
    for conv in convs:
        assert len({str(m.message["Message-ID"]) for m in smtp.sink.for_conv(conv)}) == 1
        assert [r["state"] for r in await rows_of(owner_dsn, conv)] == ["sent", "sent"]
        assert "2 nouveaux messages" in str(smtp.sink.for_conv(conv)[0].message["Subject"])


async def test_a_refused_recipient_is_a_recorded_failure(
    gateway: Gateway, secret: str, smtp: SmtpServer, workers: StartWorker, owner_dsn: str
) -> None:
    """A 550 for the recipient ends the notification as failed, recorded, without retries."""
    smtp.sink.refuse_rcpt = True
    school = new_school(gateway, secret)
    workers()
    async with connect(gateway, secret, school.teacher) as teacher:
        conv = await open_direct(teacher, school, school.parent)
        await send(teacher, conv, "Bulletin disponible")
    await eventually(lambda: _all_in(owner_dsn, conv, "failed"))
    [row] = await rows_of(owner_dsn, conv)
    assert (row["error"], row["attempts"]) == ("smtp_refused", 1)
    tries = [(d["channel"], d["outcome"], d["error"]) for d in await deliveries_of(owner_dsn, conv)]
    assert tries == [("email", "failed", "smtp_refused")]
    assert smtp.sink.mails == []


async def test_dropped_connections_are_retried_until_the_email_goes(
    gateway: Gateway, secret: str, smtp: SmtpServer, workers: StartWorker, owner_dsn: str
) -> None:
    """Two disconnects at DATA, two retries with backoff, then exactly one e-mail."""
    smtp.sink.disconnects = 2
    school = new_school(gateway, secret)
    workers()
    async with connect(gateway, secret, school.teacher) as teacher:
        conv = await open_direct(teacher, school, school.parent)
        await send(teacher, conv, "Bulletin disponible")
    await eventually(lambda: smtp.sink.for_conv(conv), timeout=15)
    await asyncio.sleep(1)
    assert len(smtp.sink.for_conv(conv)) == 1
    tries = [(d["outcome"], d["error"], d["attempt"]) for d in await deliveries_of(owner_dsn, conv)]
    assert tries == [
        ("retry", "smtp_disconnected", 1),
        ("retry", "smtp_disconnected", 2),
        ("sent", None, 3),
    ]
    [row] = await rows_of(owner_dsn, conv)
    assert (row["state"], row["attempts"]) == ("sent", 3)


async def test_a_server_that_stops_answering_ends_in_a_recorded_failure(
    gateway: Gateway, secret: str, smtp: SmtpServer, workers: StartWorker, owner_dsn: str
) -> None:
    """Each try times out; after the last allowed one the notification is recorded as failed."""
    smtp.sink.hang = True
    school = new_school(gateway, secret)
    workers(MESSAGING_SMTP_TIMEOUT_S="0.5", MESSAGING_NOTIFY_MAX_ATTEMPTS="2")
    async with connect(gateway, secret, school.teacher) as teacher:
        conv = await open_direct(teacher, school, school.parent)
        await send(teacher, conv, "Bulletin disponible")
    await eventually(lambda: _all_in(owner_dsn, conv, "failed"), timeout=15)
    tries = [(d["outcome"], d["error"]) for d in await deliveries_of(owner_dsn, conv)]
    assert tries == [("retry", "smtp_timeout"), ("failed", "smtp_timeout")]


async def test_push_is_encrypted_for_the_browser_and_a_forgotten_one_is_removed(
    gateway: Gateway,
    secret: str,
    smtp: SmtpServer,
    workers: StartWorker,
    owner_dsn: str,
    push_endpoint: PushEndpoint,
    vapid_key: Path,
) -> None:
    """The browser decrypts the push with its keys and checks the VAPID signature; a 410
    removes the subscription; the e-mail goes as well."""
    school = new_school(gateway, secret)
    kept, forgotten = BrowserKeys.new(), BrowserKeys.new()
    async with api(gateway, secret, school.parent) as http:
        server_key = (await http.get("/api/me/push-subscriptions")).json()["vapid_public_key"]
        for path, keys in (("/ok/1", kept), ("/gone/1", forgotten)):
            response = await http.post(
                "/api/me/push-subscriptions",
                json={
                    "endpoint": push_endpoint.base + path,
                    "keys": {"p256dh": keys.p256dh, "auth": b64url(keys.auth)},
                    "expirationTime": None,
                },
            )
            assert response.status_code == 201, response.text
    workers()
    async with connect(gateway, secret, school.teacher) as teacher:
        conv = await open_direct(teacher, school, school.parent)
        await send(teacher, conv, "Bulletin disponible")
    await eventually(lambda: len(push_endpoint.received) >= 2 and smtp.sink.for_conv(conv))
    [pushed] = [p for p in push_endpoint.received if p.path == "/ok/1"]
    headers = {k.lower(): v for k, v in pushed.headers.items()}
    assert headers["content-encoding"] == "aes128gcm"
    plain = http_ece.decrypt(
        pushed.body, private_key=kept.private, auth_secret=kept.auth, version="aes128gcm"
    )
    payload = json.loads(plain)
    assert payload["conv"] == conv
    assert payload["body"] == "Nouveau message de Marie Enseignante"
    assert payload["url"] == f"https://messagerie.example.org/#conv={conv}"
    assert "Bulletin" not in plain.decode()
    # VAPID: signed by the key the browser subscribed with, for this push service
    assert Vapid02.verify(headers["authorization"])
    params = dict(p.split("=", 1) for p in headers["authorization"].split(" ", 1)[1].split(","))
    assert params["k"] == server_key
    claims = json.loads(_b64decode(params["t"].split(".")[1]))
    assert claims["aud"] == push_endpoint.base
    assert claims["sub"] == "mailto:direction@example.org"
    assert len(headers["topic"]) <= 32 and int(headers["ttl"]) > 0
    async with api(gateway, secret, school.parent) as http:
        listed = (await http.get("/api/me/push-subscriptions")).json()["subscriptions"]
    assert [s["endpoint"] for s in listed] == [push_endpoint.base + "/ok/1"]
    tries = sorted((d["channel"], d["outcome"]) for d in await deliveries_of(owner_dsn, conv))
    assert tries == [("email", "sent"), ("push", "gone"), ("push", "sent")]


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


async def _all_in(dsn: str, conv: str, state: str) -> bool:
    rows = await rows_of(dsn, conv)
    return bool(rows) and all(r["state"] == state for r in rows)
