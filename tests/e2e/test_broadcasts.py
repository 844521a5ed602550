"""Bulk sends end to end: audiences, languages, privacy of recipients, replies, statistics."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from messaging.devservices import LocalPostgres
from messaging.gateway.auth import mint_token
from messaging.store.broadcasts import release_due
from messaging.store.pool import create_pool
from tests.e2e.conftest import import_school
from tests.rosters import SchoolIds, make_school
from tests.servers import Client, Gateway, connect

pytestmark = pytest.mark.asyncio(loop_scope="session")

FR = "Sortie au musée vendredi : prévoir un lunch."
EN = "Museum trip on Friday: please pack a lunch."


def post(
    gw: Gateway, secret: str, user: str, doc: dict[str, Any], **headers: str
) -> httpx.Response:
    return httpx.post(
        f"{gw.url}/api/broadcasts",
        json=doc,
        headers={"Authorization": f"Bearer {mint_token(secret, user)}", **headers},
        timeout=30,
    )


def get(gw: Gateway, secret: str, user: str, path: str) -> httpx.Response:
    return httpx.get(
        f"{gw.url}{path}",
        headers={"Authorization": f"Bearer {mint_token(secret, user)}"},
        timeout=30,
    )


def delete(gw: Gateway, secret: str, user: str, path: str) -> httpx.Response:
    return httpx.delete(
        f"{gw.url}{path}",
        headers={"Authorization": f"Bearer {mint_token(secret, user)}"},
        timeout=30,
    )


def messages(c: Client, conv: str) -> list[dict[str, Any]]:
    return [e for e in c.events if e["conv"] == conv and e["kind"] == "message"]


async def test_school_wide_broadcast_reaches_everyone_once_in_their_language(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds
) -> None:
    """Parents on both gateways get the message once, in French or English, and see only the
    sender among the members."""
    gw1, gw2 = gateways
    async with (
        connect(gw1, secret, school.parent) as fr_parent,
        connect(gw2, secret, school.parent_en) as en_parent,
        connect(gw2, secret, school.parent_b, encoding="msgpack") as other,
    ):
        r = post(
            gw1,
            secret,
            school.office,
            {
                "school": school.school,
                "audience": {"school": True},
                "body": FR,
                "body_en": EN,
                "replies": "private",
            },
        )
        assert r.status_code == 202, r.text
        sent = r.json()
        conv = sent["conv"]
        assert sent["recipients"] == 3
        for client in (fr_parent, en_parent, other):
            await client.wait_for(lambda c: len(messages(c, conv)) == 1)
        assert messages(fr_parent, conv)[0]["body"] == FR
        assert messages(fr_parent, conv)[0]["lang"] == "fr"
        assert messages(en_parent, conv)[0]["body"] == EN
        assert messages(en_parent, conv)[0]["lang"] == "en"
        assert "body_en" not in messages(en_parent, conv)[0]
        created = next(e for e in en_parent.events if e["conv"] == conv and e["kind"] == "created")
        assert created["members"] == [school.office]
        await asyncio.sleep(0.3)
        for client in (fr_parent, en_parent, other):
            assert len(messages(client, conv)) == 1, "exactly once"
    async with connect(gw1, secret, school.parent_b) as back:
        listed = next(c for c in back.ready["conversations"] if c["conv"] == conv)
        assert listed["members"] == [school.office] and listed["kind"] == "broadcast"
        fetched = await back.request({"t": "fetch", "conv": conv})
        assert [e["kind"] for e in fetched["events"]] == ["created", "message"]
        assert fetched["events"][0]["members"] == [school.office]


async def test_private_reply_goes_to_the_senders_direct_conversation(
    gateways: tuple[Gateway, Gateway], secret: str
) -> None:
    """A parent answers in the broadcast and the reply lands, quoting it, in a direct
    conversation with the sender, even where parents may not start conversations."""
    school = make_school(parent_initiated=False)
    gw1, gw2 = gateways
    import_school(gw1, secret, school)
    sent = post(
        gw1,
        secret,
        school.office,
        {
            "school": school.school,
            "audience": {"groups": [school.group_a]},
            "body": FR,
            "body_en": EN,
            "replies": "private",
        },
    ).json()
    async with (
        connect(gw2, secret, school.office) as office,
        connect(gw1, secret, school.parent_en) as parent,
    ):
        reply = await parent.request(
            {"t": "send", "conv": sent["conv"], "cid": "r1", "body": "We'll be there."}
        )
        assert reply["t"] == "ok", reply
        direct = reply["conv"]
        assert direct != sent["conv"]
        await office.wait_for(lambda c: len(messages(c, direct)) == 1)
        got = messages(office, direct)[0]
        assert got["body"] == "We'll be there." and got["actor"] == school.parent_en
        assert got["quote"]["conv"] == sent["conv"] and got["quote"]["body"] == EN
        again = await parent.request(
            {"t": "send", "conv": sent["conv"], "cid": "r2", "body": "And thanks."}
        )
        assert again["conv"] == direct, "the same direct conversation every time"
        opened = await parent.request(
            {"t": "open", "school": school.school, "members": [school.office]}
        )
        assert opened["code"] == "feature_disabled", "still no parent-initiated conversation"


async def test_replies_none_refuses_answers(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds
) -> None:
    """With replies: none, a recipient cannot answer; nobody but the sender posts."""
    gw1, _ = gateways
    sent = post(
        gw1,
        secret,
        school.principal,
        {
            "school": school.school,
            "audience": {"parents": [school.parent]},
            "body": FR,
            "replies": "none",
        },
    ).json()
    async with connect(gw1, secret, school.parent) as parent:
        refused = await parent.request(
            {"t": "send", "conv": sent["conv"], "cid": "x", "body": "Allô?"}
        )
        assert refused["t"] == "error" and refused["code"] == "forbidden"
    async with connect(gw1, secret, school.principal) as sender:
        follow_up = await sender.request(
            {"t": "send", "conv": sent["conv"], "cid": "f", "body": "Rappel : demain."}
        )
        assert follow_up["t"] == "ok" and follow_up["seq"] == 3


async def test_statistics_move_as_parents_read(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds
) -> None:
    """Delivered counts a live socket or a fetch; read follows the read markers."""
    gw1, gw2 = gateways
    async with connect(gw2, secret, school.parent) as online:
        sent = post(
            gw1,
            secret,
            school.office,
            {"school": school.school, "audience": {"grades": [3]}, "body": FR},
        ).json()
        conv = sent["conv"]
        assert sent["recipients"] == 2  # the two parents of grade 3
        await online.wait_for(lambda c: len(messages(c, conv)) == 1)

        async def stats() -> dict[str, Any]:
            r = get(gw1, secret, school.office, f"/api/broadcasts/{sent['broadcast']}")
            assert r.status_code == 200, r.text
            return dict(r.json())

        deadline = asyncio.get_running_loop().time() + 5
        while (s := await stats())["delivered"] < 1:
            assert asyncio.get_running_loop().time() < deadline, s
            await asyncio.sleep(0.2)
        assert (s["recipients"], s["delivered"], s["read"]) == (2, 1, 0)
        assert {u["id"] for u in s["unread"]} == {school.parent, school.parent_en}
        assert (await online.request({"t": "read", "conv": conv, "seq": 2}))["t"] == "ok"
        s = await stats()
        assert (s["read"], [u["id"] for u in s["unread"]]) == (1, [school.parent_en])
    history = get(gw2, secret, school.principal, f"/api/broadcasts?school={school.school}")
    assert history.status_code == 200
    listed = {b["broadcast"]: b for b in history.json()["broadcasts"]}
    assert listed[sent["broadcast"]]["read"] == 1
    assert (
        get(gw1, secret, school.parent, f"/api/broadcasts/{sent['broadcast']}").status_code == 404
    )


async def test_teacher_sends_to_own_groups_only(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds
) -> None:
    """A teacher reaches their own group, never another group, a grade or the school."""
    gw1, _ = gateways
    ok = post(
        gw1,
        secret,
        school.teacher,
        {"school": school.school, "audience": {"groups": [school.group_a]}, "body": FR},
    )
    assert ok.status_code == 202 and ok.json()["recipients"] == 2
    for audience in (
        {"groups": [school.group_b]},
        {"school": True},
        {"grades": [3]},
        {"groups": [school.group_a, school.group_b]},
    ):
        r = post(
            gw1, secret, school.teacher, {"school": school.school, "audience": audience, "body": FR}
        )
        assert r.status_code == 403, (audience, r.text)
        assert r.json()["error"]["code"] == "forbidden"
    parent = post(
        gw1,
        secret,
        school.parent,
        {"school": school.school, "audience": {"school": True}, "body": FR},
    )
    assert parent.status_code == 403


@pytest.mark.parametrize(
    ("doc", "status", "code"),
    [
        ({"audience": {}}, 400, "invalid"),
        ({"audience": {"groups": []}}, 400, "invalid"),
        ({"audience": {"grades": [11]}}, 400, "invalid"),
        ({"audience": {"groups": ["nope"]}}, 400, "invalid"),
        ({"audience": {"school": True, "grades": [3]}}, 400, "invalid"),
        ({"audience": {"parents": ["unknown-parent"]}}, 400, "invalid"),
        ({"body": "x" * 10_001}, 413, "too_large"),
        ({"body": "   "}, 400, "invalid"),
        ({"send_at": "2020-01-01T00:00:00+00:00"}, 400, "invalid"),
        ({"send_at": "2099-01-01T00:00:00+00:00"}, 400, "invalid"),
        ({"send_at": "2027-01-01T00:00:00"}, 400, "invalid"),
        ({"replies": "public"}, 400, "invalid"),
        ({"attachments": ["a_not_mine"]}, 404, "not_found"),
    ],
)
async def test_bad_requests_leave_nothing_behind(
    gateways: tuple[Gateway, Gateway],
    secret: str,
    school: SchoolIds,
    pg: LocalPostgres,
    doc: dict[str, Any],
    status: int,
    code: str,
) -> None:
    """Each malformed broadcast gets a clear error and creates no conversation or member."""
    gw1, _ = gateways
    base = {"school": school.school, "audience": {"school": True}, "body": FR}
    conn = await asyncpg.connect(pg.owner_dsn)
    try:
        before = await conn.fetchval(
            "SELECT count(*) FROM conversations WHERE school = $1", school.school
        )
        r = post(gw1, secret, school.office, {**base, **doc})
        assert r.status_code == status, r.text
        assert r.json()["error"]["code"] == code
        assert r.json()["error"]["message"]
        after = await conn.fetchval(
            "SELECT count(*) FROM conversations WHERE school = $1", school.school
        )
        assert after == before
        assert (
            await conn.fetchval("SELECT count(*) FROM broadcasts WHERE school = $1", school.school)
            == 0
        )
    finally:
        await conn.close()


async def test_group_of_another_school_and_feature_off_are_refused(
    gateways: tuple[Gateway, Gateway], secret: str
) -> None:
    """Another school's group is unknown here; a school without bulk sends refuses them."""
    gw1, _ = gateways
    school = make_school(bulk_send=False)
    import_school(gw1, secret, school)
    off = post(
        gw1,
        secret,
        school.office,
        {"school": school.school, "audience": {"school": True}, "body": FR},
    )
    assert off.status_code == 403 and off.json()["error"]["code"] == "feature_disabled"
    other = make_school()
    import_school(gw1, secret, other)
    foreign = post(
        gw1,
        secret,
        other.office,
        {"school": other.school, "audience": {"groups": [school.group_a]}, "body": FR},
    )
    assert foreign.status_code == 400


async def test_idempotency_key_gives_one_broadcast(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds
) -> None:
    """The same Idempotency-Key twice makes one broadcast and the same answer."""
    gw1, gw2 = gateways
    doc = {"school": school.school, "audience": {"school": True}, "body": FR}
    first = post(gw1, secret, school.office, doc, **{"Idempotency-Key": "k-1"})
    second = post(gw2, secret, school.office, doc, **{"Idempotency-Key": "k-1"})
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    history = get(gw1, secret, school.office, f"/api/broadcasts?school={school.school}").json()
    assert len(history["broadcasts"]) == 1


async def test_scheduled_broadcast_is_sent_once_and_can_be_cancelled(
    gateways: tuple[Gateway, Gateway],
    secret: str,
    school: SchoolIds,
    service_env: dict[str, str],
) -> None:
    """A scheduled send waits; two workers racing to release it send it once; a cancelled one
    never goes."""
    gw1, _ = gateways
    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    kept = post(
        gw1,
        secret,
        school.office,
        {"school": school.school, "audience": {"school": True}, "body": FR, "send_at": soon},
    ).json()
    dropped = post(
        gw1,
        secret,
        school.office,
        {"school": school.school, "audience": {"school": True}, "body": EN, "send_at": soon},
    ).json()
    assert kept["conv"] is None and kept["scheduled"] is True
    r = delete(gw1, secret, school.office, f"/api/broadcasts/{dropped['broadcast']}")

    assert r.status_code == 200
    await asyncio.sleep(1.2)
    pool = await create_pool(service_env["MESSAGING_DATABASE_URL"], min_size=2, max_size=4)
    try:
        later = datetime.now(UTC)
        results = await asyncio.gather(release_due(pool, later), release_due(pool, later))
    finally:
        await pool.close()
    mine = [
        s
        for batch in results
        for s in batch
        if s.broadcast in (kept["broadcast"], dropped["broadcast"])
    ]
    assert [s.broadcast for s in mine] == [kept["broadcast"]]
    stats = get(gw1, secret, school.office, f"/api/broadcasts/{kept['broadcast']}").json()
    assert stats["state"] == "sent" and stats["recipients"] == 3
    gone = get(gw1, secret, school.office, f"/api/broadcasts/{dropped['broadcast']}").json()
    assert gone["state"] == "cancelled" and gone["conv"] is None


def remind_as(gw: Gateway, secret: str, user: str, broadcast: str) -> httpx.Response:
    return httpx.post(
        f"{gw.url}/api/broadcasts/{broadcast}/remind",
        headers={"Authorization": f"Bearer {mint_token(secret, user)}"},
        timeout=30,
    )


def start_worker(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "messaging", "worker"],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def test_worker_restart_neither_loses_nor_doubles_a_scheduled_send(
    gateways: tuple[Gateway, Gateway],
    secret: str,
    school: SchoolIds,
    service_env: dict[str, str],
    tmp_path: Path,
) -> None:
    """A worker killed before a send is due, then two workers racing: the send goes out once
    and reaches the connected parent once."""
    gw1, gw2 = gateways
    log_path = tmp_path / "worker.log"
    first = start_worker(service_env, log_path)
    try:
        async with connect(gw2, secret, school.parent) as parent:
            when = (datetime.now(UTC) + timedelta(seconds=3)).isoformat()
            sent = post(
                gw1,
                secret,
                school.office,
                {
                    "school": school.school,
                    "audience": {"school": True},
                    "body": FR,
                    "send_at": when,
                },
            ).json()
            await asyncio.sleep(1)
            first.kill()
            first.wait(10)
            racers = [start_worker(service_env, log_path) for _ in range(2)]
            try:
                stats: dict[str, Any] = {}
                deadline = asyncio.get_running_loop().time() + 30
                while stats.get("state") != "sent":
                    assert asyncio.get_running_loop().time() < deadline, log_path.read_text()
                    await asyncio.sleep(0.3)
                    stats = get(
                        gw1, secret, school.office, f"/api/broadcasts/{sent['broadcast']}"
                    ).json()
                conv = stats["conv"]
                await parent.wait_for(lambda c: len(messages(c, conv)) == 1)
                await asyncio.sleep(2.5)  # a second send would show by now
                assert len(messages(parent, conv)) == 1
                assert sum(1 for c in parent.events if c["kind"] == "created") == 1
            finally:
                for racer in racers:
                    racer.send_signal(signal.SIGTERM)
                for racer in racers:
                    racer.wait(15)
    finally:
        if first.poll() is None:
            first.kill()


async def test_reminder_goes_only_to_those_who_have_not_read(
    gateways: tuple[Gateway, Gateway],
    secret: str,
    school: SchoolIds,
    pg: LocalPostgres,
) -> None:
    """A reminder plans one notification per recipient who has not read, and none twice."""
    gw1, _ = gateways
    sent = post(
        gw1,
        secret,
        school.office,
        {"school": school.school, "audience": {"school": True}, "body": FR},
    ).json()
    async with connect(gw1, secret, school.parent) as reader:
        assert (await reader.request({"t": "read", "conv": sent["conv"], "seq": 2}))["t"] == "ok"
    conn = await asyncpg.connect(pg.owner_dsn)
    try:
        pending_before = await conn.fetchval(
            "SELECT count(*) FROM notifications WHERE conv = $1 AND state = 'pending'",
            sent["conv"],
        )
        r = remind_as(gw1, secret, school.office, sent["broadcast"])
        assert r.status_code == 202, r.text
        reminded = r.json()["reminded"]
        rows = await conn.fetch(
            "SELECT recipient FROM notifications WHERE conv = $1 AND state = 'pending'",
            sent["conv"],
        )
        assert school.parent not in {x["recipient"] for x in rows}, "who read is not reminded"
        assert len(rows) == 2 and reminded == 2 - pending_before
        again = remind_as(gw1, secret, school.office, sent["broadcast"])
        assert again.json()["reminded"] == 0
        refused = remind_as(gw1, secret, school.teacher, sent["broadcast"])
        assert refused.status_code == 404
    finally:
        await conn.close()
