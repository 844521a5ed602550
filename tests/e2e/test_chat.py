"""Chat across two gateway processes: live delivery, seqs, idempotency, receipts, typing."""

from __future__ import annotations

import asyncio

import pytest

from tests.rosters import SchoolIds
from tests.servers import Gateway, connect

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_parent_and_teacher_exchange_across_gateways(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds
) -> None:
    """A parent on one gateway and a teacher on the other exchange messages, seqs 1..N."""
    gw1, gw2 = gateways
    async with (
        connect(gw1, secret, school.parent) as parent,
        connect(gw2, secret, school.teacher, encoding="msgpack") as teacher,
    ):
        opened = await parent.request(
            {"t": "open", "school": school.school, "members": [school.teacher]}
        )
        assert opened["t"] == "ok", opened
        conv = opened["conv"]
        assert opened["created"] is True
        await teacher.wait_for(lambda c: c.seqs(conv) == [1])
        for i in range(5):
            sender = parent if i % 2 == 0 else teacher
            reply = await sender.request(
                {"t": "send", "conv": conv, "cid": f"m{i}", "body": f"Bonjour {i}"}
            )
            assert reply["t"] == "ok", reply
            assert reply["seq"] == i + 2
        await teacher.wait_for(lambda c: c.seqs(conv) == [1, 2, 4, 6])
        await parent.wait_for(lambda c: c.seqs(conv) == [3, 5])
        bodies = [e["body"] for e in teacher.events if e["kind"] == "message"]
        assert bodies == ["Bonjour 0", "Bonjour 2", "Bonjour 4"]
        again = await parent.request(
            {"t": "open", "school": school.school, "members": [school.teacher]}
        )
        assert again["conv"] == conv and again["created"] is False


async def test_same_cid_twice_stores_one_message(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds
) -> None:
    """Sending the same cid twice stores one message and both replies carry the same seq."""
    gw1, _ = gateways
    async with connect(gw1, secret, school.teacher) as teacher:
        conv = (
            await teacher.request(
                {"t": "open", "school": school.school, "members": [school.parent]}
            )
        )["conv"]
        first = await teacher.request({"t": "send", "conv": conv, "cid": "x", "body": "Un"})
        second = await teacher.request({"t": "send", "conv": conv, "cid": "x", "body": "Un"})
        assert first["seq"] == second["seq"] == 2
        fetched = await teacher.request({"t": "fetch", "conv": conv})
        assert [e["seq"] for e in fetched["events"]] == [1, 2]
        changed = await teacher.request({"t": "send", "conv": conv, "cid": "x", "body": "Deux"})
        assert changed["t"] == "error" and changed["code"] == "conflict"


async def test_concurrent_senders_get_gap_free_seqs(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds
) -> None:
    """Many clients sending at once into one group get seqs with no gap and no duplicate."""
    gw1, gw2 = gateways
    staff = [school.teacher, school.office, school.principal, school.daycare]
    async with connect(gw1, secret, school.teacher) as opener:
        conv = (
            await opener.request(
                {"t": "open", "school": school.school, "members": staff[1:], "title": "Équipe"}
            )
        )["conv"]
    per_sender = 25

    async def sender(user: str, gw: Gateway) -> list[int]:
        async with connect(gw, secret, user) as c:
            replies = await asyncio.gather(
                *(
                    c.request({"t": "send", "conv": conv, "cid": f"{user}-{i}", "body": str(i)})
                    for i in range(per_sender)
                )
            )
            assert all(r["t"] == "ok" for r in replies), replies
            return [r["seq"] for r in replies]

    results = await asyncio.gather(*(sender(u, gateways[i % 2]) for i, u in enumerate(staff)))
    seqs = sorted(s for r in results for s in r)
    assert seqs == list(range(2, 2 + per_sender * len(staff)))
    for r in results:
        assert r == sorted(r), "one sender's messages keep their order"
    async with connect(gw2, secret, school.office) as reader:
        last = (await reader.request({"t": "fetch", "conv": conv, "limit": 200}))["events"]
        assert [e["seq"] for e in last] == list(range(1, 2 + per_sender * len(staff)))


async def test_read_receipts_and_typing_reach_the_other_member(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds
) -> None:
    """A read marker moves forward only and tells the other side; typing is relayed."""
    gw1, gw2 = gateways
    async with (
        connect(gw1, secret, school.parent) as parent,
        connect(gw2, secret, school.teacher) as teacher,
    ):
        conv = (
            await parent.request(
                {"t": "open", "school": school.school, "members": [school.teacher]}
            )
        )["conv"]
        await parent.request({"t": "send", "conv": conv, "cid": "a", "body": "Allô"})
        await parent.send_raw({"t": "typing", "conv": conv})
        await teacher.wait_for(lambda c: any(f["t"] == "typing" for f in c.others))
        assert (await teacher.request({"t": "read", "conv": conv, "seq": 2}))["t"] == "ok"
        await parent.wait_for(lambda c: any(f["t"] == "receipt" for f in c.others))
        receipt = next(f for f in parent.others if f["t"] == "receipt")
        assert receipt == {"t": "receipt", "conv": conv, "user": school.teacher, "seq": 2}
        beyond = await teacher.request({"t": "read", "conv": conv, "seq": 99})
        assert beyond["code"] == "invalid"


async def test_delete_redacts_for_everyone_but_keeps_the_log(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds
) -> None:
    """Only the sender deletes; later fetches show the message redacted."""
    gw1, gw2 = gateways
    async with (
        connect(gw1, secret, school.parent) as parent,
        connect(gw2, secret, school.teacher) as teacher,
    ):
        conv = (
            await parent.request(
                {"t": "open", "school": school.school, "members": [school.teacher]}
            )
        )["conv"]
        await parent.request({"t": "send", "conv": conv, "cid": "a", "body": "Oups"})
        refused = await teacher.request({"t": "delete", "conv": conv, "seq": 2})
        assert refused["code"] == "forbidden"
        deleted = await parent.request({"t": "delete", "conv": conv, "seq": 2})
        assert deleted["t"] == "ok" and deleted["seq"] == 3
        await teacher.wait_for(lambda c: 3 in c.seqs(conv))
        assert teacher.events[-1]["kind"] == "deleted" and teacher.events[-1]["target"] == 2
        events = (await teacher.request({"t": "fetch", "conv": conv}))["events"]
        message = next(e for e in events if e["seq"] == 2)
        assert message["body"] is None and message["deleted"] is True
        assert message["attachments"] == []
