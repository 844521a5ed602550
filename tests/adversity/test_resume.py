"""Resume: a client that comes back with {conversation: last seq seen} gets exactly what it missed.

After `ready`, the server sends for each resumed conversation the events after the given seq (at
most 200; the client pages the rest with `fetch`), on whichever gateway the client comes back to,
and nothing for conversations the user is not a member of.
"""

from __future__ import annotations

import pytest

from tests.adversity.conftest import barrier, fetch_after, open_direct, send_many
from tests.rosters import SchoolIds
from tests.servers import Gateway, connect

pytestmark = pytest.mark.asyncio(loop_scope="session")

MISSED = 6


@pytest.mark.parametrize("back_on", [0, 1], ids=["same-gateway", "other-gateway"])
async def test_resume_delivers_exactly_the_missed_events_after_ready(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds, back_on: int
) -> None:
    """A parent who was away gets, right after `ready`, the missed seqs in order and only them."""
    gw1, gw2 = gateways
    async with connect(gw2, secret, school.teacher) as teacher:
        async with connect(gw1, secret, school.parent) as parent:
            conv = await open_direct(parent, school.school, school.teacher)
            mine = await parent.request({"t": "send", "conv": conv, "cid": "p1", "body": "Allô"})
            assert mine["seq"] == 2
            await send_many(gw2, secret, school.teacher, conv, 1, prefix="before")
            await parent.wait_for(lambda c: c.seqs(conv) == [3])
            last_seen = 3
        # the parent is away: the teacher writes, then deletes one of these messages
        acked = await send_many(gw2, secret, school.teacher, conv, MISSED, prefix="away")
        assert sorted(acked.values()) == list(range(last_seen + 1, last_seen + 1 + MISSED))
        deleted = await teacher.request({"t": "delete", "conv": conv, "seq": acked["away-1"]})
        assert deleted["t"] == "ok", deleted
        last = deleted["seq"]
        assert last == last_seen + MISSED + 1

        async with connect(gateways[back_on], secret, school.parent, resume={conv: last_seen}) as p:
            summary = next(c for c in p.ready["conversations"] if c["conv"] == conv)
            assert summary["last_seq"] == last
            await barrier(p, conv)
            assert p.others == [], "nothing but the missed events between ready and the reply"
            assert p.seqs(conv) == list(range(last_seen + 1, last + 1))
            assert all(e["conv"] == conv for e in p.events)
            by_seq = {e["seq"]: e for e in p.events}
            assert by_seq[last]["kind"] == "deleted" and by_seq[last]["target"] == acked["away-1"]
            withdrawn = by_seq[acked["away-1"]]
            assert withdrawn["body"] is None and withdrawn["deleted"] is True
            kept = by_seq[acked["away-2"]]
            assert kept["kind"] == "message" and kept["cid"] == "away-2"
            assert kept["body"] == "away away-2" and kept["actor"] == school.teacher

            # live delivery continues right after the resumed events, without a gap
            more = await teacher.request({"t": "send", "conv": conv, "cid": "live", "body": "Et?"})
            await p.wait_for(lambda c: last + 1 in c.seqs(conv))
            assert more["seq"] == last + 1
            assert p.seqs(conv) == list(range(last_seen + 1, last + 2))


async def test_resume_beyond_200_missed_events_is_paged_with_fetch(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds
) -> None:
    """With 230 missed events, resume sends the first 200 and `fetch` `after` pages the rest."""
    gw1, gw2 = gateways
    async with connect(gw1, secret, school.parent) as parent:
        conv = await open_direct(parent, school.school, school.teacher)
    missed = 230
    acked = await send_many(gw2, secret, school.teacher, conv, missed, prefix="bulk")
    last = 1 + missed
    assert sorted(acked.values()) == list(range(2, last + 1))

    async with connect(gw2, secret, school.parent, resume={conv: 1}) as p:
        await barrier(p, conv)
        assert p.seqs(conv) == list(range(2, 202)), "exactly the first 200 after the given seq"
        assert p.others == []
        first_page = await p.request({"t": "fetch", "conv": conv, "after": 201, "limit": 20})
        assert [e["seq"] for e in first_page["events"]] == list(range(202, 222))
        assert first_page["more"] is True
        rest = await p.request({"t": "fetch", "conv": conv, "after": 221, "limit": 20})
        assert [e["seq"] for e in rest["events"]] == list(range(222, last + 1))
        assert rest["more"] is False
        paged = await fetch_after(p, conv, 201, limit=7)
        assert [e["seq"] for e in paged] == list(range(202, last + 1))
        cids = [e["cid"] for e in p.events + paged if e["kind"] == "message"]
        assert sorted(cids) == sorted(acked), "every acknowledged message exactly once"


async def test_resume_of_a_conversation_the_user_is_not_in_returns_nothing(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds
) -> None:
    """Resuming someone else's conversation (or an unknown id) yields no event and no error."""
    gw1, gw2 = gateways
    async with connect(gw1, secret, school.parent) as parent:
        private = await open_direct(parent, school.school, school.teacher)
        await parent.request({"t": "send", "conv": private, "cid": "s", "body": "Confidentiel"})
    async with connect(gw2, secret, school.parent_b) as other:
        own = await open_direct(other, school.school, school.teacher_b)
        await other.request({"t": "send", "conv": own, "cid": "o", "body": "Bonjour"})

    resume = {private: 0, own: 1, "no-such-conversation": 0}
    for gw in gateways:
        async with connect(gw, secret, school.parent_b, resume=resume) as intruder:
            assert private not in {c["conv"] for c in intruder.ready["conversations"]}
            await barrier(intruder, own)
            assert intruder.seqs(private) == []
            assert intruder.seqs(own) == [2], "the user's own conversation is still resumed"
            assert not any(f["t"] == "error" for f in intruder.others), intruder.others
            assert all("Confidentiel" not in str(e) for e in intruder.events)
            peek = await intruder.request({"t": "fetch", "conv": private, "after": 0})
            assert peek["t"] == "error" and peek["code"] == "not_found"
