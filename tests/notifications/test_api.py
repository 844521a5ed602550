"""The hours and notification routes refuse bad input with every problem named, and keep the
record of holds for the school's principal."""

from __future__ import annotations

import pytest

from tests.notifications.conftest import ALL_WEEK, api, new_school
from tests.notifications.support import BrowserKeys, b64url
from tests.rosters import make_school, roster_doc
from tests.servers import Gateway

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_malformed_working_hours_are_refused_with_every_problem(
    gateway: Gateway, secret: str
) -> None:
    """24:30, an end before its start, overlapping periods and an unknown day, all at once."""
    school = new_school(gateway, secret)
    async with api(gateway, secret, school.teacher) as http:
        response = await http.put(
            "/api/me/working-hours",
            json={
                "mon": [["08:00", "24:30"], ["16:00", "12:00"]],
                "tue": [["08:00", "12:00"], ["11:00", "15:00"]],
                "funday": [],
            },
        )
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "invalid"
        assert error["message"].startswith("Les heures de travail contiennent 4 problème(s)")
        assert [e["path"] for e in error["errors"]] == ["mon[0]", "mon[1]", "tue[1]", "funday"]
        # nothing was changed: still the roster's hours
        current = (await http.get("/api/me/working-hours")).json()
        assert current == {"working_hours": ALL_WEEK, "default": False}
        assert (await http.put("/api/me/working-hours", content=b"{")).status_code == 400
        assert (await http.put("/api/me/working-hours", json=["mon"])).status_code == 400


async def test_hours_belong_to_staff_and_quiet_hours_to_parents(
    gateway: Gateway, secret: str
) -> None:
    """Each kind of user has their own kind of hours; the other is forbidden."""
    school = new_school(gateway, secret)
    async with api(gateway, secret, school.parent) as http:
        response = await http.put("/api/me/working-hours", json=ALL_WEEK)
        assert response.status_code == 403
        bad = await http.put(
            "/api/me/quiet-hours", json={d: [["00:00", "24:00"]] for d in ALL_WEEK}
        )
        assert bad.status_code == 400
        assert bad.json()["error"]["errors"] == [
            {"path": "", "message": "quiet hours must leave some time in the week"}
        ]
        good = await http.put("/api/me/quiet-hours", json={"mon": [["21:00", "24:00"]]})
        assert good.status_code == 200
        assert (await http.get("/api/me/quiet-hours")).json()["quiet_hours"]["mon"] == [
            ["21:00", "24:00"]
        ]
    async with api(gateway, secret, school.teacher) as http:
        assert (await http.put("/api/me/quiet-hours", json={})).status_code == 403


async def test_a_school_zone_that_does_not_exist_is_refused(gateway: Gateway, secret: str) -> None:
    """The roster names the zone working hours are read in; an unknown one is refused."""
    doc = roster_doc(make_school())
    doc["schools"][0]["timezone"] = "America/Atlantis"
    async with api(gateway, secret, "admin") as http:
        response = await http.post("/api/admin/roster", json=doc)
    assert response.status_code == 400
    assert {"path": "schools[0].timezone", "message": "unknown time zone 'America/Atlantis'"} in (
        response.json()["error"]["errors"]
    )


async def test_malformed_push_subscriptions_are_refused(gateway: Gateway, secret: str) -> None:
    """A subscription without keys, with a key that is no P-256 point, or a short auth."""
    school = new_school(gateway, secret)
    keys = BrowserKeys.new()
    endpoint = "https://push.example.org/sub/1"
    cases = [
        {"endpoint": endpoint},
        {"endpoint": endpoint, "keys": {"p256dh": b64url(b"\x04" + b"x" * 64), "auth": "x"}},
        {"endpoint": endpoint, "keys": {"p256dh": keys.p256dh, "auth": b64url(b"short")}},
        {"endpoint": "ftp://push.example.org/1", "keys": {"p256dh": keys.p256dh, "auth": "x"}},
    ]
    async with api(gateway, secret, school.parent) as http:
        for case in cases:
            response = await http.post("/api/me/push-subscriptions", json=case)
            assert response.status_code == 400, case
            assert response.json()["error"]["code"] == "invalid"
        response = await http.delete("/api/me/push-subscriptions", params={})
        assert response.status_code == 400
        listed = (await http.get("/api/me/push-subscriptions")).json()
        assert listed["subscriptions"] == [] and listed["vapid_public_key"]


async def test_the_record_of_holds_is_for_the_principal(gateway: Gateway, secret: str) -> None:
    """The school's principal and admins read it; teachers, parents and other schools cannot."""
    school = new_school(gateway, secret)
    params = {"school": school.school}
    for user in (school.teacher, school.parent, school.other_principal):
        async with api(gateway, secret, user) as http:
            response = await http.get("/api/notifications/holds", params=params)
            assert response.status_code == 403, user
    for user in (school.principal, "admin"):
        async with api(gateway, secret, user) as http:
            response = await http.get("/api/notifications/holds", params=params)
            assert response.status_code == 200
            assert response.json() == {"holds": [], "next_cursor": None}
    async with api(gateway, secret, school.principal) as http:
        assert (await http.get("/api/notifications/holds")).status_code == 400


async def test_a_conversation_of_someone_else_is_not_found(gateway: Gateway, secret: str) -> None:
    """GET /api/conversations/{conv} answers only to members."""
    school = new_school(gateway, secret)
    async with api(gateway, secret, school.parent) as http:
        assert (await http.get("/api/conversations/c_00000000000000000000")).status_code == 404
