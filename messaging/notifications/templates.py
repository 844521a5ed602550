"""What a notification says, in the recipient's language: the e-mail's subject, plain-text and
HTML bodies, and the Web Push payload.

Message text appears only when the school turned `notify_text` on (off by default: these are
minors' records); otherwise the notification names the senders and the school, and links to the
conversation. Withdrawn messages never show their text.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import orjson

from messaging.domain import notify
from messaging.domain.models import UserKind
from messaging.i18n import text
from messaging.store.notifications import Group, Message

MAX_LISTED_MESSAGES = 10
MAX_MESSAGE_CHARS = 1_000
MAX_PUSH_TEXT_CHARS = 200


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    plain: str
    html: str
    push: bytes
    summary: str
    messages: int


def conversation_link(public_url: str, conv: str) -> str:
    """The web client's page opened on `conv` (`#conv=` beside the `#token=` it already reads);
    a MESSAGING_PUBLIC_URL with `{conv}` in it is a template instead (a school portal's page)."""
    if "{conv}" in public_url:
        return public_url.replace("{conv}", conv)
    return f"{public_url}/#conv={conv}"


def _clip(body: str, limit: int) -> str:
    return body if len(body) <= limit else body[: limit - 1].rstrip() + "…"


def render(group: Group, link: str) -> Rendered | None:
    """The notification of `group`; None when every message in it was withdrawn since."""
    visible = [m for m in group.messages if not m.withdrawn]
    if not visible:
        return None
    lang = "en" if group.locale == "en" else "fr"
    line = notify.summary(notify.senders_of([m.actor_name for m in visible]), group.title, lang)
    waiting = "notify_waiting" if len(visible) == 1 else "notify_waiting_many"
    intro = text(waiting, lang, summary=line, school=group.school_name)
    listed = visible[:MAX_LISTED_MESSAGES] if group.notify_text else []
    notes = [text("notify_with_text" if group.notify_text else "notify_private", lang)]
    if group.recipient.kind is UserKind.STAFF:
        notes.append(text("notify_staff_hours", lang))
    notes.append(text("notify_footer", lang))
    more = len(visible) - len(listed) if listed else 0
    return Rendered(
        subject=text("notify_subject", lang, summary=line, school=group.school_name),
        plain=_plain(group, lang, intro, listed, more, link, notes),
        html=_html(group, lang, intro, listed, more, link, notes),
        push=_push(group, line, listed, link),
        summary=line,
        messages=len(visible),
    )


def _plain(
    group: Group,
    lang: str,
    intro: str,
    listed: list[Message],
    more: int,
    link: str,
    notes: list[str],
) -> str:
    lines = [text("notify_greeting", lang, name=group.name), "", intro, ""]
    for m in listed:
        lines.append(f"{m.actor_name} :" if lang == "fr" else f"{m.actor_name}:")
        body = _clip(m.body or "", MAX_MESSAGE_CHARS)
        lines += [f"> {part}" for part in body.splitlines() or [""]]
        lines.append("")
    if more:
        lines += [text("notify_more_messages", lang, n=more), ""]
    lines += [text("notify_read_at", lang, link=link), "", "-- ", *notes]
    return "\n".join(lines) + "\n"


def _html(
    group: Group,
    lang: str,
    intro: str,
    listed: list[Message],
    more: int,
    link: str,
    notes: list[str],
) -> str:
    e = html.escape
    quotes = "".join(
        f'<p style="margin:12px 0 4px"><strong>{e(m.actor_name)}</strong></p>'
        f'<blockquote style="margin:0;padding:8px 12px;border-left:3px solid #ccc;'
        f'white-space:pre-wrap">{e(_clip(m.body or "", MAX_MESSAGE_CHARS))}</blockquote>'
        for m in listed
    )
    if more:
        quotes += f"<p>{e(text('notify_more_messages', lang, n=more))}</p>"
    footer = "".join(f'<p style="color:#666;font-size:12px">{e(n)}</p>' for n in notes)
    return (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        f"<title>{e(group.school_name)}</title></head>"
        '<body style="font-family:system-ui,sans-serif;max-width:40rem;margin:0 auto;'
        'padding:16px;color:#222">'
        f"<p>{e(text('notify_greeting', lang, name=group.name))}</p>"
        f"<p>{e(intro)}</p>{quotes}"
        f'<p style="margin:24px 0"><a href="{e(link)}" style="background:#1a5fb4;color:#fff;'
        f'padding:10px 16px;border-radius:6px;text-decoration:none">'
        f"{e(text('notify_open', lang))}</a></p>"
        f'<p style="font-size:12px">{e(text("notify_read_at", lang, link=link))}</p>'
        f"<hr>{footer}</body></html>"
    )


def _push(group: Group, line: str, listed: list[Message], link: str) -> bytes:
    body = line
    if listed:
        body = f"{line}\n{_clip(listed[-1].body or '', MAX_PUSH_TEXT_CHARS)}"
    payload: bytes = orjson.dumps(
        {
            "t": "notification",
            "conv": group.conv,
            "school": group.school,
            "title": group.school_name,
            "body": body,
            "url": link,
            "tag": group.conv,
        }
    )
    return payload
