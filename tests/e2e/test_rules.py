"""The rules of PROTOCOL.md section 6, end to end through the WebSocket."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from messaging.devservices import LocalPostgres
from messaging.gateway.auth import mint_token
from tests.rosters import SchoolIds
from tests.servers import Client, Gateway, connect

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _refused(reply: dict[str, Any], code: str) -> None:
    assert reply["t"] == "error" and reply["code"] == code, reply
    assert isinstance(reply["message"], str) and reply["message"]


async def _open(client: Client, school: str, members: list[str], **extra: Any) -> dict[str, Any]:
    return await client.request({"t": "open", "school": school, "members": members, **extra})


async def test_parents_never_converse_without_staff(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds
) -> None:
    """A parent cannot open a direct conversation nor a group with parents only (`no_staff`)."""
    s = school
    async with connect(gateways[0], secret, s.parent) as parent:
        _refused(await _open(parent, s.school, [s.parent_b]), "no_staff")
        _refused(await _open(parent, s.school, [s.parent_en]), "no_staff")
        _refused(await _open(parent, s.school, [s.parent_b, s.parent_en]), "no_staff")
        _refused(await _open(parent, s.school, [s.parent_b], title="Parents"), "no_staff")
        assert parent.events == []
    async with connect(gateways[1], secret, s.parent_b) as other:
        assert other.ready["conversations"] == []


async def test_staff_may_not_open_a_parents_only_group(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds
) -> None:
    """Whoever opens it, a group whose members would hold no staff is refused (`no_staff`)."""
    s = school
    async with connect(gateways[0], secret, s.parent_en) as parent:
        _refused(await _open(parent, s.school, [s.parent, s.parent_b], title="Sortie"), "no_staff")


async def test_teacher_reaches_only_parents_of_their_groups(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds
) -> None:
    """A teacher may open with a parent of their group but not with one of another group."""
    s = school
    async with (
        connect(gateways[0], secret, s.teacher) as teacher,
        connect(gateways[1], secret, s.parent) as parent,
    ):
        _refused(await _open(teacher, s.school, [s.parent_b]), "forbidden")
        _refused(await _open(teacher, s.school, [s.parent, s.parent_b], title="3e"), "forbidden")
        opened = await _open(teacher, s.school, [s.parent])
        assert opened["t"] == "ok" and opened["created"] is True, opened
        await parent.wait_for(lambda c: c.seqs(opened["conv"]) == [1])
        created = parent.events[0]
        assert created["kind"] == "created" and created["conv_kind"] == "direct"
        assert sorted(created["members"]) == sorted([s.teacher, s.parent])
    async with connect(gateways[1], secret, s.teacher_b) as teacher_b:
        _refused(await _open(teacher_b, s.school, [s.parent]), "forbidden")
        ok = await _open(teacher_b, s.school, [s.parent_b])
        assert ok["t"] == "ok", ok


async def test_office_reaches_any_parent_of_the_school(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds
) -> None:
    """Office, daycare and the principal may open with any parent of their school."""
    s = school
    for staff in (s.office, s.daycare, s.principal):
        async with connect(gateways[0], secret, staff) as client:
            for parent in (s.parent, s.parent_b, s.parent_en):
                opened = await _open(client, s.school, [parent])
                assert opened["t"] == "ok", (staff, parent, opened)
            group = await _open(client, s.school, [s.parent, s.parent_b], title="Tous")
            assert group["t"] == "ok", group


async def test_parent_of_another_school_is_refused(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds
) -> None:
    """Nobody opens a conversation in a school with a parent who has no child there."""
    s = school
    async with connect(gateways[0], secret, s.office) as office:
        _refused(await _open(office, s.school, [s.other_parent]), "forbidden")
        _refused(await _open(office, s.other_school, [s.other_parent]), "forbidden")
        _refused(
            await _open(office, s.school, [s.parent, s.other_parent], title="Mixte"), "forbidden"
        )
    async with connect(gateways[1], secret, s.other_parent) as stranger:
        _refused(await _open(stranger, s.school, [s.office]), "forbidden")
    async with connect(gateways[1], secret, s.other_principal) as principal:
        _refused(await _open(principal, s.school, [s.parent]), "forbidden")
        ok = await _open(principal, s.other_school, [s.other_parent])
        assert ok["t"] == "ok", ok


async def test_staff_adds_a_parent_of_their_group_to_a_group(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds
) -> None:
    """A teacher adds a parent of their group, who then gets the group's events; a parent of
    another group cannot be added; a parent cannot add anyone."""
    s = school
    async with (
        connect(gateways[0], secret, s.teacher) as teacher,
        connect(gateways[1], secret, s.parent) as parent,
        connect(gateways[1], secret, s.office) as office,
    ):
        opened = await _open(teacher, s.school, [s.office], title="3e A")
        assert opened["t"] == "ok", opened
        conv = opened["conv"]
        _refused(
            await teacher.request({"t": "add", "conv": conv, "users": [s.parent_b]}), "forbidden"
        )
        added = await teacher.request({"t": "add", "conv": conv, "users": [s.parent]})
        assert added["t"] == "ok", added
        await parent.wait_for(lambda c: 2 in c.seqs(conv))
        joined = next(e for e in parent.events if e["conv"] == conv and e["seq"] == 2)
        assert joined["kind"] == "member_added" and joined["user"] == s.parent
        await office.wait_for(lambda c: c.seqs(conv) == [1, 2])
        sent = await teacher.request(
            {"t": "send", "conv": conv, "cid": "bienvenue", "body": "Bienvenue"}
        )
        assert sent["t"] == "ok" and sent["seq"] == 3
        await parent.wait_for(lambda c: 3 in c.seqs(conv))
        for users in ([s.parent_en], [s.parent_b], [s.teacher_b]):
            _refused(await parent.request({"t": "add", "conv": conv, "users": users}), "forbidden")
        fetched = await parent.request({"t": "fetch", "conv": conv})
        assert [e["kind"] for e in fetched["events"]] == ["created", "member_added", "message"]


async def test_last_staff_leaving_locks_the_group(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds
) -> None:
    """When the last staff member leaves a group, the remaining members get a `locked` event
    with reason no_staff, and a parent's `send` is then refused with `locked`."""
    s = school
    async with (
        connect(gateways[0], secret, s.teacher) as teacher,
        connect(gateways[1], secret, s.parent) as parent,
        connect(gateways[0], secret, s.parent_en, encoding="msgpack") as parent_en,
    ):
        opened = await _open(teacher, s.school, [s.parent, s.parent_en], title="Sortie")
        assert opened["t"] == "ok", opened
        conv = opened["conv"]
        said = await parent.request({"t": "send", "conv": conv, "cid": "q", "body": "Quand?"})
        assert said["t"] == "ok" and said["seq"] == 2
        left = await teacher.request({"t": "leave", "conv": conv})
        assert left["t"] == "ok", left
        for client in (parent, parent_en):
            await client.wait_for(lambda c: 4 in c.seqs(conv))
            tail = [e for e in client.events if e["conv"] == conv and e["seq"] >= 3]
            assert [e["kind"] for e in tail] == ["member_removed", "locked"]
            assert tail[0]["user"] == s.teacher
            assert tail[1]["reason"] == "no_staff"
        _refused(
            await parent.request({"t": "send", "conv": conv, "cid": "r", "body": "Allô?"}), "locked"
        )
        _refused(
            await parent_en.request({"t": "send", "conv": conv, "cid": "r", "body": "Hi"}), "locked"
        )
        _refused(await teacher.request({"t": "fetch", "conv": conv}), "not_found")
        fetched = await parent.request({"t": "fetch", "conv": conv})
        assert [e["seq"] for e in fetched["events"]] == [1, 2, 3, 4]
    async with connect(gateways[1], secret, s.parent) as again:
        summary = next(c for c in again.ready["conversations"] if c["conv"] == conv)
        assert summary["locked"] is True and summary["last_seq"] == 4
        assert s.teacher not in summary["members"]


async def test_group_stays_open_while_staff_remains(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds
) -> None:
    """A staff member leaving a group that keeps another staff member does not lock it."""
    s = school
    async with (
        connect(gateways[0], secret, s.teacher) as teacher,
        connect(gateways[1], secret, s.parent) as parent,
    ):
        conv = (await _open(teacher, s.school, [s.parent, s.office], title="Suivi"))["conv"]
        assert (await teacher.request({"t": "leave", "conv": conv}))["t"] == "ok"
        await parent.wait_for(lambda c: 2 in c.seqs(conv))
        sent = await parent.request({"t": "send", "conv": conv, "cid": "s", "body": "Merci"})
        assert sent["t"] == "ok" and sent["seq"] == 3, sent
        assert [e["kind"] for e in parent.events if e["conv"] == conv] == [
            "created",
            "member_removed",
        ]


def _broadcast(gw: Gateway, secret: str, school: SchoolIds) -> str:
    """A bulk send from the office to two parents, closed to replies."""
    response = httpx.post(
        f"{gw.url}/api/broadcasts",
        json={
            "school": school.school,
            "audience": {"parents": [school.parent, school.parent_en]},
            "body": "Sortie vendredi.",
            "replies": "none",
        },
        headers={"Authorization": f"Bearer {mint_token(secret, school.office)}"},
        timeout=30,
    )
    assert response.status_code == 202, response.text
    return str(response.json()["conv"])


async def test_direct_and_broadcast_cannot_be_left(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds, pg: LocalPostgres
) -> None:
    """`leave` on a direct conversation or a broadcast is refused with `forbidden`."""
    s = school
    broadcast = _broadcast(gateways[0], secret, s)
    async with (
        connect(gateways[0], secret, s.teacher) as teacher,
        connect(gateways[1], secret, s.parent) as parent,
        connect(gateways[0], secret, s.office) as office,
    ):
        direct = (await _open(teacher, s.school, [s.parent]))["conv"]
        for client, conv in (
            (teacher, direct),
            (parent, direct),
            (parent, broadcast),
            (office, broadcast),
        ):
            _refused(await client.request({"t": "leave", "conv": conv}), "forbidden")
        _refused(
            await parent.request({"t": "send", "conv": broadcast, "cid": "x", "body": "Non"}),
            "forbidden",
        )
        _refused(
            await parent.request({"t": "add", "conv": direct, "users": [s.parent_en]}), "forbidden"
        )
        _refused(
            await teacher.request({"t": "add", "conv": direct, "users": [s.parent_en]}), "forbidden"
        )
        fetched = await parent.request({"t": "fetch", "conv": direct})
        assert [e["kind"] for e in fetched["events"]] == ["created"]
        listed = {c["conv"]: c for c in parent.ready["conversations"]}
        assert listed[broadcast]["members"] == [s.office]
