"""Notifications end to end: a real gateway, a real `messaging worker` and an SMTP server."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest

from messaging.domain.hours import DAYS
from tests.notifications.conftest import (
    ALL_WEEK,
    TORONTO,
    StartWorker,
    api,
    eventually,
    new_school,
    off_hours_now,
    open_direct,
    outbox_rows,
    send,
)
from tests.notifications.support import SmtpServer
from tests.servers import Gateway, connect

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def holds_of(gateway: Gateway, secret: str, principal: str, school: str, conv: str) -> list:
    async with api(gateway, secret, principal) as http:
        response = await http.get("/api/notifications/holds", params={"school": school})
    assert response.status_code == 200, response.text
    return [h for h in response.json()["holds"] if h["conv"] == conv]


async def test_off_hours_teacher_gets_one_merged_email_once_their_hours_widen(
    gateway: Gateway, secret: str, smtp: SmtpServer, workers: StartWorker
) -> None:
    """Three messages to a teacher outside hours send nothing; widened hours send one e-mail."""
    school = new_school(gateway, secret, teacher_hours=off_hours_now())
    workers()
    teacher_mail = f"{school.teacher}@example.org"
    async with connect(gateway, secret, school.parent) as parent:
        conv = await open_direct(parent, school, school.teacher)
        for body in ("Bonjour Madame", "Léa sera absente demain", "Merci"):
            await send(parent, conv, body)
    # the parent learns when the teacher will see it: in `ready` and in the conversation
    async with connect(gateway, secret, school.parent) as parent:
        [listed] = [c for c in parent.ready["conversations"] if c["conv"] == conv]
    async with api(gateway, secret, school.parent) as http:
        item = (await http.get(f"/api/conversations/{conv}")).json()
    assert item["availability"] == listed["availability"]
    [who] = item["availability"]
    assert who["user"] == school.teacher and who["working"] is False
    start = datetime.fromisoformat(who["next_start"]).astimezone(TORONTO)
    assert (start.hour, start.minute) == (10, 0)
    assert who["notice"].startswith("Marie Enseignante verra votre message ")
    assert who["notice"].endswith(" à 10 h.")

    await asyncio.sleep(3)  # a delay of 1 s, a poll every 0.2 s: it would have gone by now
    assert smtp.sink.to(teacher_mail) == []
    [held] = await holds_of(gateway, secret, school.principal, school.school, conv)
    assert held["reason"] == "off_hours" and held["released_at"] is None
    assert held["held_until"] == who["next_start"]

    async with api(gateway, secret, school.teacher) as http:
        response = await http.put("/api/me/working-hours", json=ALL_WEEK)
    assert response.status_code == 200, response.text
    assert response.json()["replanned"] == 3
    await eventually(lambda: smtp.sink.to(teacher_mail))
    await asyncio.sleep(1.5)
    [mail] = smtp.sink.to(teacher_mail)
    assert mail.conv == conv
    assert mail.message["Subject"] == "3 nouveaux messages de Sam Fictif · École Fictive"
    assert f"https://messagerie.example.org/#conv={conv}" in mail.text()
    assert "absente" not in mail.text() + mail.html()  # message text is off by default
    [released] = await holds_of(gateway, secret, school.principal, school.school, conv)
    assert released["outcome"] == "sent" and released["messages"] == 3
    assert released["released_at"] is not None and released["replanned_at"] is not None


async def test_parent_is_emailed_after_the_delay_in_their_language(
    gateway: Gateway, secret: str, smtp: SmtpServer, workers: StartWorker, owner_dsn: str
) -> None:
    """A parent's e-mail leaves once the delay has passed, in English, with the text allowed."""
    school = new_school(gateway, secret, notify_text=True)
    workers()
    parent_mail = "kim@example.org"
    async with connect(gateway, secret, school.teacher) as teacher:
        conv = await open_direct(teacher, school, school.parent_en)
        sent_at = time.time()
        await send(teacher, conv, "Field trip on Friday: bring a lunch.")
    await eventually(lambda: smtp.sink.to(parent_mail, conv))
    [mail] = smtp.sink.to(parent_mail, conv)
    assert mail.at >= sent_at + 1.0
    assert mail.message["Subject"] == "New message from Marie Enseignante · École Fictive"
    assert mail.message["Content-Language"] == "en"
    assert mail.message["To"].addresses[0].display_name == "Kim Fictional"
    assert "Field trip on Friday: bring a lunch." in mail.text()
    assert "Field trip on Friday: bring a lunch." in mail.html()
    [row] = await outbox_rows(owner_dsn, conv)
    assert (row["recipient"], row["state"], row["attempts"]) == (school.parent_en, "sent", 1)


async def test_reading_within_the_delay_cancels_the_notification(
    gateway: Gateway, secret: str, smtp: SmtpServer, workers: StartWorker, owner_dsn: str
) -> None:
    """A parent who reads the message live is never e-mailed about it."""
    school = new_school(gateway, secret)
    workers(MESSAGING_NOTIFY_DELAY_S="2")
    async with (
        connect(gateway, secret, school.parent) as parent,
        connect(gateway, secret, school.teacher) as teacher,
    ):
        conv = await open_direct(teacher, school, school.parent)
        seq = await send(teacher, conv, "Rappel : photo scolaire jeudi")
        reply = await parent.request({"t": "read", "conv": conv, "seq": seq})
        assert reply["t"] == "ok"
    await asyncio.sleep(3.5)
    assert smtp.sink.for_conv(conv) == []
    rows = await outbox_rows(owner_dsn, conv)
    assert [(r["recipient"], r["state"], r["error"]) for r in rows] == [
        (school.parent, "cancelled", "read")
    ]


async def test_quiet_hours_hold_a_parents_notification_until_they_change(
    gateway: Gateway, secret: str, smtp: SmtpServer, workers: StartWorker
) -> None:
    """A parent in quiet hours gets nothing; clearing them releases the held e-mail at once."""
    school = new_school(gateway, secret)
    workers()
    today = DAYS[datetime.now(UTC).astimezone(TORONTO).weekday()]
    async with api(gateway, secret, school.parent) as http:
        response = await http.put("/api/me/quiet-hours", json={today: [["00:00", "24:00"]]})
        assert response.status_code == 200, response.text
        async with connect(gateway, secret, school.teacher) as teacher:
            conv = await open_direct(teacher, school, school.parent)
            await send(teacher, conv, "Réunion de parents mardi")
        await asyncio.sleep(2.5)
        assert smtp.sink.for_conv(conv) == []
        response = await http.put("/api/me/quiet-hours", json={})
        assert response.json() == {"quiet_hours": {}, "replanned": 1}
    await eventually(lambda: smtp.sink.for_conv(conv))
    # quiet hours are the parent's own: the principal's record lists staff holds only
    assert await holds_of(gateway, secret, school.principal, school.school, conv) == []
