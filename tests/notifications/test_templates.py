"""The words of a notification: what the e-mail and the push say, and what they never say."""

from __future__ import annotations

import json
from dataclasses import replace
from zoneinfo import ZoneInfo

from messaging.domain.models import UserKind
from messaging.domain.notify import Calendar, Recipient
from messaging.notifications.mail import build_email, parse_smtp_url
from messaging.notifications.templates import conversation_link, render
from messaging.store.notifications import Group, Message, Pending

LINK = "https://messagerie.example.org/#conv=c_1"


def group(messages: list[Message], *, kind: UserKind = UserKind.STAFF, **changes: object) -> Group:
    base = Group(
        recipient=Recipient("t-1", kind),
        name="Marie Tremblay",
        email="marie@example.org",
        locale="fr",
        member=True,
        conv="c_1",
        conv_kind="direct",
        title=None,
        school="erables",
        school_name="École des Érables",
        calendar=Calendar(ZoneInfo("America/Toronto")),
        notify_text=False,
        rows=tuple(Pending(i, m.seq, 0) for i, m in enumerate(messages, 1)),
        messages=tuple(messages),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def msg(seq: int, body: str, *, name: str = "Sam Roy", withdrawn: bool = False) -> Message:
    return Message(seq, "p-1", name, body, withdrawn)


def test_text_stays_out_unless_the_school_allows_it() -> None:
    """By default the e-mail names the sender and links to the conversation, no more."""
    rendered = render(group([msg(2, "Léa est malade"), msg(3, "Elle revient lundi")]), LINK)
    assert rendered is not None
    assert rendered.subject == "2 nouveaux messages de Sam Roy · École des Érables"
    for part in (rendered.plain, rendered.html, rendered.push.decode()):
        assert "malade" not in part
    assert LINK in rendered.plain and LINK in rendered.html
    assert "vie privée des élèves" in rendered.plain
    assert "heures de travail" in rendered.plain  # staff are told why it comes now


def test_allowed_text_is_quoted_escaped_and_withdrawn_messages_are_left_out() -> None:
    """With `notify_text` on, each message is quoted (HTML escaped); a withdrawn one is not."""
    messages = [msg(2, "<b>Sortie</b> vendredi"), msg(3, "secret", withdrawn=True)]
    rendered = render(group(messages, notify_text=True, locale="en", kind=UserKind.PARENT), LINK)
    assert rendered is not None
    assert rendered.subject == "New message from Sam Roy · École des Érables"
    assert "> <b>Sortie</b> vendredi" in rendered.plain
    assert "&lt;b&gt;Sortie&lt;/b&gt;" in rendered.html and "<b>Sortie</b>" not in rendered.html
    assert "secret" not in rendered.plain + rendered.html
    assert "working hours" not in rendered.plain
    assert json.loads(rendered.push)["body"].endswith("<b>Sortie</b> vendredi")


def test_nothing_is_said_when_every_message_was_withdrawn() -> None:
    """A notification of deleted messages only is not sent at all."""
    assert render(group([msg(2, "oups", withdrawn=True)]), LINK) is None


def test_long_messages_and_long_lists_are_cut() -> None:
    """At most ten messages of at most a thousand characters are quoted."""
    messages = [msg(i, "x" * 5000) for i in range(2, 14)]
    rendered = render(group(messages, notify_text=True), LINK)
    assert rendered is not None
    assert rendered.subject.startswith("12 nouveaux messages")
    assert rendered.plain.count("> x") == 10
    assert "… et 2 autre(s) message(s)." in rendered.plain
    assert max(len(line) for line in rendered.plain.splitlines()) <= 1002


def test_the_email_carries_a_stable_message_id_and_both_bodies() -> None:
    """A copy sent again after a crash has the same Message-ID as the first."""
    rendered = render(group([msg(2, "Bonjour")]), LINK)
    assert rendered is not None
    email = build_email(
        rendered,
        to_name="Marie Tremblay",
        to_addr="marie@example.org",
        from_addr="messagerie@example.org",
        lang="fr",
        conv="c_1",
        notification_id=41,
    )
    assert email["Message-ID"] == "<notification-41@example.org>"
    assert email["Auto-Submitted"] == "auto-generated"
    assert email["Content-Language"] == "fr"
    assert str(email["To"]) == "Marie Tremblay <marie@example.org>"
    assert email.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in email.iter_parts()] == ["text/plain", "text/html"]
    assert email.as_bytes().isascii()  # quoted-printable: no 8BITMIME needed


def test_links_and_smtp_urls() -> None:
    """A link template with {conv}, and SMTP URLs with their defaults."""
    assert conversation_link("https://m.example.org", "c_9") == "https://m.example.org/#conv=c_9"
    assert conversation_link("https://portail.example.org/m?c={conv}", "c_9").endswith("c=c_9")
    target = parse_smtp_url("smtps://user%40x:p%2Fw@mail.example.org")
    assert (target.hostname, target.port, target.use_tls) == ("mail.example.org", 465, True)
    assert (target.username, target.password) == ("user@x", "p/w")
    assert parse_smtp_url("smtp://127.0.0.1").port == 25
