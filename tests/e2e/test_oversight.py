"""The principal's oversight end to end: who may lock, unlock, moderate and audit; what the
members see live and in every later read; and a lock racing many senders on two gateways."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg
import httpx
import pytest

from messaging.devservices import LocalPostgres
from messaging.gateway.auth import mint_token
from tests.e2e.conftest import import_school
from tests.rosters import SchoolIds, make_school
from tests.servers import Client, Gateway, connect

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _http(gw: Gateway, secret: str, user: str, path: str, **params: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=gw.url, timeout=30) as http:
        return await http.get(
            path, params=params, headers={"Authorization": f"Bearer {mint_token(secret, user)}"}
        )


def _outcome(reply: dict[str, Any] | httpx.Response) -> str:
    if isinstance(reply, httpx.Response):
        return "ok" if reply.status_code == 200 else str(reply.json()["error"]["code"])
    return "ok" if reply["t"] == "ok" else str(reply["code"])


async def _open(client: Client, school: str, members: list[str], **extra: Any) -> str:
    opened = await client.request({"t": "open", "school": school, "members": members, **extra})
    assert opened["t"] == "ok", opened
    return str(opened["conv"])


async def _send(client: Client, conv: str, cid: str, body: str) -> dict[str, Any]:
    return await client.request({"t": "send", "conv": conv, "cid": cid, "body": body})


def _event(client: Client, conv: str, seq: int) -> dict[str, Any]:
    return next(e for e in client.events if e["conv"] == conv and e["seq"] == seq)


CONTROL = {
    "lock": lambda conv: {"t": "lock", "conv": conv, "reason": "Vérification"},
    "unlock": lambda conv: {"t": "unlock", "conv": conv},
    "moderate": lambda conv: {
        "t": "moderate",
        "conv": conv,
        "seq": 2,
        "action": "remove",
        "reason": "Propos à retirer",
    },
}

# Members that are not the principal learn that they may not (`forbidden`); non-members learn
# nothing of the conversation (`not_found`), and the audit API answers alike.
EXPECTED = {
    "principal": dict.fromkeys(["lock", "unlock", "moderate", "list", "view", "export"], "ok"),
    "other_principal": {
        **dict.fromkeys(["lock", "unlock", "moderate", "view", "export"], "not_found"),
        "list": "forbidden",
    },
    **{
        role: {
            **dict.fromkeys(["lock", "unlock", "moderate"], "forbidden"),
            "list": "forbidden",
            **dict.fromkeys(["view", "export"], "not_found"),
        }
        for role in ("office", "teacher", "parent")
    },
    "parent_b": {
        **dict.fromkeys(["lock", "unlock", "moderate", "view", "export"], "not_found"),
        "list": "forbidden",
    },
}


async def test_authorization_matrix(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds, pg: LocalPostgres
) -> None:
    """Only the school's principal locks, unlocks, moderates, lists, views and exports; every
    other role is refused as the protocol says, and a refused audit leaves no audit record."""
    s = school
    roles = list(EXPECTED)
    users = {role: getattr(s, role) for role in roles}
    async with (
        connect(gateways[0], secret, s.teacher) as teacher,
        connect(gateways[1], secret, s.parent) as parent,
    ):
        conv = await _open(teacher, s.school, [s.office, s.parent], title="Matrice")
        assert _outcome(await _send(parent, conv, "m", "Un message")) == "ok"
    seen: dict[str, dict[str, str]] = {role: {} for role in roles}
    async with contextlib.AsyncExitStack() as stack:
        clients = {
            role: await stack.enter_async_context(connect(gateways[i % 2], secret, users[role]))
            for i, role in enumerate(roles)
        }
        for op in ("lock", "unlock", "moderate"):
            # the principal last, so that the others meet the state the operation expects
            for role in [*roles[1:], "principal"]:
                seen[role][op] = _outcome(await clients[role].request(CONTROL[op](conv)))
    for i, role in enumerate(roles):
        gw = gateways[i % 2]
        listed = await _http(gw, secret, users[role], "/api/audit/conversations", school=s.school)
        seen[role]["list"] = _outcome(listed)
        view = await _http(gw, secret, users[role], f"/api/audit/conversations/{conv}")
        seen[role]["view"] = _outcome(view)
        export = await _http(gw, secret, users[role], f"/api/audit/conversations/{conv}/export")
        seen[role]["export"] = _outcome(export)
    assert seen == EXPECTED
    conn = await asyncpg.connect(pg.owner_dsn)
    try:
        readers = await conn.fetch(
            "SELECT reader, action FROM audit_reads WHERE school = $1 ORDER BY id", s.school
        )
    finally:
        await conn.close()
    assert [(r["reader"], r["action"]) for r in readers] == [
        (s.principal, "list"),
        (s.principal, "view"),
        (s.principal, "export_pdf"),
    ]


async def test_lock_and_removal_reach_members_live_and_redact_every_read(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds
) -> None:
    """Members get `locked` and `removed` live with their reasons; while locked nobody posts,
    deletes or adds; the removed message is redacted in every participant's fetch, HTTP read
    and resume, and only the audit view keeps its text."""
    s = school
    async with (
        connect(gateways[0], secret, s.teacher) as teacher,
        connect(gateways[1], secret, s.parent) as parent,
        connect(gateways[0], secret, s.parent_en, encoding="msgpack") as parent_en,
        connect(gateways[1], secret, s.principal) as principal,
    ):
        conv = await _open(teacher, s.school, [s.parent, s.parent_en], title="Sortie")
        assert (await _send(parent, conv, "bad", "Message inapproprié"))["seq"] == 2
        locked = await principal.request({"t": "lock", "conv": conv, "reason": "Enquête"})
        assert locked["t"] == "ok" and locked["seq"] == 3, locked
        for member in (teacher, parent, parent_en):
            await member.wait_for(lambda c: 3 in c.seqs(conv))
            event = _event(member, conv, 3)
            assert (event["kind"], event["actor"], event["reason"]) == (
                "locked",
                s.principal,
                "Enquête",
            )
        assert _outcome(await _send(parent, conv, "late", "Allô?")) == "locked"
        assert _outcome(await teacher.request({"t": "delete", "conv": conv, "seq": 2})) == "locked"
        added = await teacher.request({"t": "add", "conv": conv, "users": [s.office]})
        assert _outcome(added) == "locked"
        removed = await principal.request(
            {"t": "moderate", "conv": conv, "seq": 2, "action": "remove", "reason": "Blessant"}
        )
        assert removed["t"] == "ok" and removed["seq"] == 4, removed
        for member in (teacher, parent, parent_en):
            await member.wait_for(lambda c: 4 in c.seqs(conv))
            event = _event(member, conv, 4)
            assert (event["kind"], event["target"], event["reason"]) == ("removed", 2, "Blessant")
            fetched = await member.request({"t": "fetch", "conv": conv})
            message = fetched["events"][1]
            assert message["body"] is None and message["removed"] is True, message
            assert message["attachments"] == []
        assert _outcome(await principal.request({"t": "fetch", "conv": conv})) == "not_found"
        unlocked = await principal.request({"t": "unlock", "conv": conv})
        assert unlocked["t"] == "ok" and unlocked["seq"] == 5
        await parent.wait_for(lambda c: 5 in c.seqs(conv))
        assert _event(parent, conv, 5)["kind"] == "unlocked"
        assert (await _send(parent, conv, "after", "Désolé."))["seq"] == 6
    for user, gw in ((s.teacher, gateways[0]), (s.parent_en, gateways[1])):
        over_http = await _http(gw, secret, user, f"/api/conversations/{conv}/events")
        message = over_http.json()["events"][1]
        assert message["body"] is None and message["removed"] is True
        async with connect(gw, secret, user, resume={conv: 0}) as again:
            await again.wait_for(lambda c: 6 in c.seqs(conv))
            resumed = _event(again, conv, 2)
            assert resumed["body"] is None and resumed["removed"] is True
    audit = (
        await _http(gateways[0], secret, s.principal, f"/api/audit/conversations/{conv}")
    ).json()
    original = audit["events"][1]
    assert original["body"] == "Message inapproprié"
    assert (original["removed"]["by"], original["removed"]["reason"]) == (s.principal, "Blessant")


async def test_principal_cannot_post_in_a_locked_conversation(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds
) -> None:
    """The principal, a member of the conversation, is refused with `locked` until unlocking."""
    s = school
    async with connect(gateways[0], secret, s.principal) as principal:
        conv = await _open(principal, s.school, [s.parent])
        assert _outcome(await principal.request({"t": "lock", "conv": conv})) == "ok"
        assert _outcome(await _send(principal, conv, "a", "Bonjour")) == "locked"
        assert _outcome(await principal.request({"t": "unlock", "conv": conv})) == "ok"
        sent = await _send(principal, conv, "a", "Bonjour")
        assert sent["t"] == "ok" and sent["seq"] == 4, sent


async def test_control_frames_on_unknown_or_wrong_targets(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds
) -> None:
    """Unknown conversations and seqs are `not_found`; a second lock, an unlock of an open
    conversation and a second removal are `conflict`; moderating a non-message is `invalid`."""
    s = school
    async with (
        connect(gateways[0], secret, s.teacher) as teacher,
        connect(gateways[1], secret, s.principal) as principal,
    ):
        conv = await _open(teacher, s.school, [s.parent])
        await _send(teacher, conv, "a", "Premier")
        await _send(teacher, conv, "b", "Second")
        assert _outcome(await teacher.request({"t": "delete", "conv": conv, "seq": 3})) == "ok"

        def moderate(c: str, seq: int) -> dict[str, Any]:
            return {"t": "moderate", "conv": c, "seq": seq, "action": "remove", "reason": "r"}

        unknown = "c_" + "0" * 20
        cases = [
            ({"t": "lock", "conv": unknown, "reason": "x"}, "not_found"),
            ({"t": "unlock", "conv": unknown}, "not_found"),
            (moderate(unknown, 2), "not_found"),
            (moderate(conv, 99), "not_found"),
            (moderate(conv, 1), "invalid"),
            (moderate(conv, 3), "conflict"),
            ({"t": "unlock", "conv": conv}, "conflict"),
            (moderate(conv, 2), "ok"),
            (moderate(conv, 2), "conflict"),
            ({"t": "lock", "conv": conv}, "ok"),
            ({"t": "lock", "conv": conv, "reason": "encore"}, "conflict"),
        ]
        outcomes = [_outcome(await principal.request(frame)) for frame, _ in cases]
        assert outcomes == [expected for _, expected in cases]


SENDERS = 6
SEND_EVERY_S = 0.06  # about 17 frames per second each: under the per-connection rate limit
RACE_BURST = 10  # sent back to back by each sender as the lock goes out (within the burst limit)


async def _keep_sending(
    client: Client, conv: str, name: str, race: asyncio.Event, stop: asyncio.Event
) -> list[tuple[float, str, dict[str, Any]]]:
    """Send without waiting for replies until `stop`, with a burst the moment `race` is set;
    (time sent, cid, reply) of each send in the order sent."""
    loop = asyncio.get_running_loop()
    pending = []
    raced = False
    while not stop.is_set():
        burst = RACE_BURST if race.is_set() and not raced else 1
        raced = race.is_set()
        for _ in range(burst):
            cid = f"{name}-{len(pending)}"
            frame = {"t": "send", "conv": conv, "cid": cid, "body": f"Message {cid}"}
            pending.append((loop.time(), cid, asyncio.create_task(client.request(frame))))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for((stop if raced else race).wait(), SEND_EVERY_S)
    return [(sent_at, cid, await task) for sent_at, cid, task in pending]


async def test_lock_orders_against_racing_senders_across_gateways(
    gateways: tuple[Gateway, Gateway], secret: str
) -> None:
    """Six members on two gateways send continuously while the principal locks: every
    acknowledged message has a seq below the lock's, every refused one got `locked`, each
    sender's refusals follow all its acknowledgements, and the log ends with the lock."""
    s = make_school(parents_in_a=1)
    import_school(gateways[0], secret, s)
    names = [s.teacher, s.office, s.daycare, s.parent, s.parent_en, f"{s.prefix}-par-x0"]
    assert len(names) == SENDERS
    loop = asyncio.get_running_loop()
    async with contextlib.AsyncExitStack() as stack:
        principal = await stack.enter_async_context(connect(gateways[1], secret, s.principal))
        clients = [
            await stack.enter_async_context(connect(gateways[i % 2], secret, user))
            for i, user in enumerate(names)
        ]
        conv = await _open(clients[0], s.school, names[1:], title="Course")
        for client in clients[1:]:
            await client.wait_for(lambda c: 1 in c.seqs(conv))
        race, stop = asyncio.Event(), asyncio.Event()
        tasks = [
            asyncio.create_task(_keep_sending(c, conv, f"u{i}", race, stop))
            for i, c in enumerate(clients)
        ]
        await asyncio.sleep(1.0)
        race.set()
        lock = await principal.request({"t": "lock", "conv": conv, "reason": "Course"})
        locked_at = loop.time()
        await asyncio.sleep(0.6)
        stop.set()
        results = [await task for task in tasks]
        assert lock["t"] == "ok", lock
        lock_seq = lock["seq"]
        for client in clients:
            await client.wait_for(lambda c: lock_seq in c.seqs(conv))
            assert _event(client, conv, lock_seq)["reason"] == "Course"
    acknowledged: dict[str, int] = {}
    for sent in results:
        outcomes = [_outcome(reply) for _, _, reply in sent]
        assert set(outcomes) == {"ok", "locked"}, outcomes
        first_refused = outcomes.index("locked")
        assert outcomes[first_refused:] == ["locked"] * (len(outcomes) - first_refused)
        for sent_at, cid, reply in sent:
            if reply["t"] == "ok":
                assert reply["seq"] < lock_seq, (cid, reply, lock_seq)
                acknowledged[cid] = reply["seq"]
            else:
                assert reply["code"] == "locked", reply
            if sent_at > locked_at:
                assert reply["t"] == "error", (cid, reply)
    assert sorted(acknowledged.values()) == list(range(2, lock_seq))
    view = (
        await _http(gateways[0], secret, s.principal, f"/api/audit/conversations/{conv}")
    ).json()
    events = view["events"]
    assert [e["seq"] for e in events] == list(range(1, lock_seq + 1))
    assert {e["cid"]: e["seq"] for e in events if e["kind"] == "message"} == acknowledged
    assert (events[-1]["kind"], events[-1]["data"]) == ("locked", {"reason": "Course"})
    assert view["conversation"]["locked"] is True
