"""Bulk sends in Postgres: a broadcast is one conversation of kind `broadcast`.

Sending one is a single transaction: resolve the recipients (each parent once, however many
children they have in the audience), create the conversation, write one membership row per
recipient with COPY, append the `created` and `message` events, and mark the broadcast sent.
A failure leaves nothing behind. A scheduled broadcast waits in `broadcasts` until the worker
claims it (FOR UPDATE SKIP LOCKED) and sends it in that same kind of transaction, so a restart
neither loses nor doubles it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from messaging.domain.broadcast import (
    Audience,
    BroadcastRequest,
    Replies,
    may_broadcast,
    may_view_broadcast,
)
from messaging.domain.models import ConvKind, Person
from messaging.errors import ErrorCode, MessagingError
from messaging.store.conversations import create_in, new_conv_id
from messaging.store.log import Append, Appended, accept, append_batch
from messaging.store.pool import translated_errors
from messaging.store.roster import load_people, load_school

MESSAGE_SEQ = 2  # a broadcast's log: 1 created, 2 the message


@dataclass(frozen=True, slots=True)
class Recipient:
    id: str
    locale: str


@dataclass(frozen=True, slots=True)
class Sent:
    """A committed broadcast, and what to publish: its events and its recipients."""

    broadcast: str
    conv: str | None
    recipient_count: int
    recipients: tuple[Recipient, ...]
    events: tuple[Appended, ...]
    scheduled: bool
    # true when an Idempotency-Key repeated an earlier request: nothing new was done
    replayed: bool = False


def new_broadcast_id() -> str:
    return "b_" + secrets.token_hex(10)


async def _school_groups(conn: asyncpg.Connection, school: str) -> dict[str, int | None]:
    rows = await conn.fetch(
        "SELECT id, grade FROM class_groups WHERE school = $1 AND active", school
    )
    return {r["id"]: r["grade"] for r in rows}


async def resolve_recipients(
    conn: asyncpg.Connection, school: str, audience: Audience
) -> list[Recipient]:
    """The active parents of the audience's active students, each once, in id order."""
    rows = await conn.fetch(
        """SELECT DISTINCT u.id, u.locale
           FROM students s
           JOIN parent_children pc ON pc.student = s.id
           JOIN users u ON u.id = pc.parent AND u.active
           WHERE s.school = $1 AND s.active
             AND ($2 OR s.grade = ANY($3::int[]) OR s.groups && $4::text[]
                  OR u.id = ANY($5::text[]))
           ORDER BY u.id""",
        school,
        audience.school,
        sorted(audience.grades),
        sorted(audience.groups),
        sorted(audience.parents),
    )
    return [Recipient(r["id"], r["locale"]) for r in rows]


async def create_broadcast(
    pool: asyncpg.Pool,
    sender: Person,
    req: BroadcastRequest,
    idempotency_key: str | None,
) -> Sent:
    """Check, then send now or schedule; the same Idempotency-Key gives the same broadcast."""
    async with translated_errors(), pool.acquire() as conn, conn.transaction():
        if idempotency_key is not None:
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))", f"{sender.id}|{idempotency_key}"
            )
            replay = await _replay(conn, sender.id, idempotency_key)
            if replay is not None:
                return replay
        school = await load_school(conn, req.school)
        if school is None:
            raise MessagingError(ErrorCode.NOT_FOUND)
        groups = await _school_groups(conn, school.id)
        denial = may_broadcast(sender, school, req.audience, groups)
        if denial is not None:
            raise MessagingError(denial.code, denial.reason)
        recipients = await resolve_recipients(conn, school.id, req.audience)
        if req.audience.parents and len(recipients) != len(req.audience.parents):
            raise MessagingError(ErrorCode.INVALID, "broadcast_unknown_parent")
        if not recipients:
            raise MessagingError(ErrorCode.INVALID, "audience_no_recipients")
        attachments = await _own_attachments(conn, sender.id, req.attachments)
        broadcast_id = new_broadcast_id()
        await conn.execute(
            """INSERT INTO broadcasts (id, school, sender, audience, body, body_en, attachments,
                                       replies, send_at, state, idempotency_key, recipients)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'scheduled', $10, $11)""",
            broadcast_id,
            school.id,
            sender.id,
            req.audience.to_json(),
            req.body,
            req.body_en,
            attachments,
            req.replies.value,
            req.send_at,
            idempotency_key,
            len(recipients),
        )
        if req.send_at is not None:
            return Sent(broadcast_id, None, len(recipients), (), (), scheduled=True)
        return await _send(conn, broadcast_id)


async def _replay(conn: asyncpg.Connection, sender: str, key: str) -> Sent | None:
    row = await conn.fetchrow(
        "SELECT id, conv, recipients, state FROM broadcasts"
        " WHERE sender = $1 AND idempotency_key = $2",
        sender,
        key,
    )
    if row is None:
        return None
    return Sent(
        row["id"],
        row["conv"],
        row["recipients"],
        (),
        (),
        scheduled=row["state"] == "scheduled",
        replayed=True,
    )


async def _own_attachments(
    conn: asyncpg.Connection, sender: str, ids: tuple[str, ...]
) -> list[dict[str, Any]]:
    """The sender's own uploads, as a message lists them; anything else is not found."""
    if not ids:
        return []
    rows = await conn.fetch(
        "SELECT id, name, type, size FROM attachments WHERE id = ANY($1::text[]) AND owner = $2",
        list(ids),
        sender,
    )
    found = {r["id"]: r for r in rows}
    if len(found) != len(ids):
        raise MessagingError(ErrorCode.NOT_FOUND, "attachment_unknown")
    return [
        {"id": i, "name": found[i]["name"], "type": found[i]["type"], "size": found[i]["size"]}
        for i in ids
    ]


async def _send(conn: asyncpg.Connection, broadcast_id: str) -> Sent:
    """Inside the caller's transaction, with the broadcast row locked or just written."""
    b = await conn.fetchrow("SELECT * FROM broadcasts WHERE id = $1", broadcast_id)
    assert b is not None
    audience = _audience(b["audience"])
    recipients = await resolve_recipients(conn, b["school"], audience)
    conv = new_conv_id()
    await conn.execute(
        """INSERT INTO conversations (id, school, kind, title, owner)
           VALUES ($1, $2, 'broadcast', NULL, $3)""",
        conv,
        b["school"],
        b["sender"],
    )
    await conn.copy_records_to_table(
        "members",
        records=[(conv, b["sender"], "sender")] + [(conv, r.id, "recipient") for r in recipients],
        columns=["conv", "user_id", "role"],
    )
    data: dict[str, Any] = {
        "attachments": b["attachments"],
        "broadcast": broadcast_id,
        "replies": b["replies"],
    }
    if b["body_en"] is not None:
        data["body_en"] = b["body_en"]
    outcomes = await append_batch(
        conn,
        [
            Append(
                conv=conv,
                actor=b["sender"],
                kind="created",
                rule=accept,
                data={
                    "title": None,
                    "members": [b["sender"]],
                    "school": b["school"],
                    "conv_kind": ConvKind.BROADCAST.value,
                    "recipients": len(recipients),
                    "broadcast": broadcast_id,
                },
            ),
            Append(
                conv=conv,
                actor=b["sender"],
                kind="message",
                rule=accept,
                body=b["body"],
                data=data,
                cid=broadcast_id,
                lang="fr",
            ),
        ],
    )
    events = tuple(o for o in outcomes if isinstance(o, Appended))
    assert len(events) == 2
    await conn.execute(
        """UPDATE broadcasts SET state = 'sent', conv = $2, sent_at = now(), recipients = $3
           WHERE id = $1""",
        broadcast_id,
        conv,
        len(recipients),
    )
    return Sent(broadcast_id, conv, len(recipients), tuple(recipients), events, scheduled=False)


def _audience(raw: dict[str, Any]) -> Audience:
    return Audience(
        school=bool(raw.get("school")),
        grades=frozenset(raw.get("grades", ())),
        groups=frozenset(raw.get("groups", ())),
        parents=frozenset(raw.get("parents", ())),
    )


async def release_due(pool: asyncpg.Pool, now: datetime, limit: int = 5) -> list[Sent]:
    """Send scheduled broadcasts that are due, each in its own transaction (worker job)."""
    sent: list[Sent] = []
    for _ in range(limit):
        async with translated_errors(), pool.acquire() as conn, conn.transaction():
            due = await conn.fetchval(
                """SELECT id FROM broadcasts WHERE state = 'scheduled' AND send_at <= $1
                   ORDER BY send_at LIMIT 1 FOR UPDATE SKIP LOCKED""",
                now,
            )
            if due is None:
                break
            sent.append(await _send(conn, due))
    return sent


async def cancel(pool: asyncpg.Pool, viewer: Person, broadcast_id: str) -> None:
    """A scheduled broadcast, by its sender (or the school's office or principal)."""
    async with translated_errors(), pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "SELECT school, sender, state FROM broadcasts WHERE id = $1 FOR UPDATE",
            broadcast_id,
        )
        if row is None or not may_view_broadcast(viewer, row["school"], row["sender"]):
            raise MessagingError(ErrorCode.NOT_FOUND)
        if row["state"] != "scheduled":
            raise MessagingError(ErrorCode.CONFLICT, "broadcast_already_sent")
        await conn.execute(
            "UPDATE broadcasts SET state = 'cancelled', cancelled_at = now() WHERE id = $1",
            broadcast_id,
        )


_COUNTS = """
    count(*) FILTER (WHERE m.role = 'recipient') AS recipients,
    count(*) FILTER (WHERE m.role = 'recipient'
                     AND (m.delivered_at IS NOT NULL OR m.read_seq >= 2)) AS delivered,
    count(*) FILTER (WHERE m.role = 'recipient' AND m.read_seq >= 2) AS read
"""


def _summary(row: asyncpg.Record, counts: asyncpg.Record | None) -> dict[str, Any]:
    return {
        "broadcast": row["id"],
        "school": row["school"],
        "sender": row["sender"],
        "conv": row["conv"],
        "state": row["state"],
        "audience": row["audience"],
        "replies": row["replies"],
        "send_at": row["send_at"],
        "sent_at": row["sent_at"],
        "created_at": row["created_at"],
        "recipients": counts["recipients"] if counts is not None else row["recipients"],
        "delivered": counts["delivered"] if counts is not None else 0,
        "read": counts["read"] if counts is not None else 0,
    }


async def stats(pool: asyncpg.Pool, viewer: Person, broadcast_id: str) -> dict[str, Any]:
    """Counts, and who has not read it yet (names for the sender's follow-up)."""
    async with translated_errors(), pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM broadcasts WHERE id = $1", broadcast_id)
        if row is None or not may_view_broadcast(viewer, row["school"], row["sender"]):
            raise MessagingError(ErrorCode.NOT_FOUND)
        if row["conv"] is None:
            return {**_summary(row, None), "unread": []}
        counts = await conn.fetchrow(
            f"SELECT {_COUNTS} FROM members m WHERE m.conv = $1", row["conv"]
        )
        unread = await conn.fetch(
            """SELECT u.id, u.name FROM members m JOIN users u ON u.id = m.user_id
               WHERE m.conv = $1 AND m.role = 'recipient' AND m.read_seq < 2
               ORDER BY u.name, u.id""",
            row["conv"],
        )
    return {
        **_summary(row, counts),
        "unread": [{"id": r["id"], "name": r["name"]} for r in unread],
    }


async def history(pool: asyncpg.Pool, viewer: Person, school: str) -> list[dict[str, Any]]:
    """The school's sends for its office and principal; a teacher's own sends for a teacher."""
    async with translated_errors(), pool.acquire() as conn:
        everyone = may_view_broadcast(viewer, school, "")
        if not everyone and not viewer.roles_in(school):
            raise MessagingError(ErrorCode.FORBIDDEN)
        rows = await conn.fetch(
            """SELECT b.*, c.recipients AS r_count, c.delivered, c.read FROM broadcasts b
               LEFT JOIN LATERAL (
                   SELECT count(*) FILTER (WHERE m.role = 'recipient') AS recipients,
                          count(*) FILTER (WHERE m.role = 'recipient' AND
                                (m.delivered_at IS NOT NULL OR m.read_seq >= 2)) AS delivered,
                          count(*) FILTER (WHERE m.role = 'recipient' AND m.read_seq >= 2)
                            AS read
                   FROM members m WHERE m.conv = b.conv) c ON b.conv IS NOT NULL
               WHERE b.school = $1 AND ($2 OR b.sender = $3)
               ORDER BY b.created_at DESC LIMIT 200""",
            school,
            everyone,
            viewer.id,
        )
    return [
        {
            **_summary(r, None),
            "recipients": r["r_count"] if r["r_count"] is not None else r["recipients"],
            "delivered": r["delivered"] or 0,
            "read": r["read"] or 0,
        }
        for r in rows
    ]


async def remind(pool: asyncpg.Pool, viewer: Person, broadcast_id: str) -> int:
    """Notify again the recipients who have not read the broadcast (and have no notification
    of it pending): outbox rows due now, which the worker sends within their quiet hours' rules.
    Returns how many were reminded."""
    async with translated_errors(), pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "SELECT school, sender, conv FROM broadcasts WHERE id = $1", broadcast_id
        )
        if row is None or not may_view_broadcast(viewer, row["school"], row["sender"]):
            raise MessagingError(ErrorCode.NOT_FOUND)
        if row["conv"] is None:
            raise MessagingError(ErrorCode.CONFLICT, "broadcast_not_sent")
        status = await conn.execute(
            """INSERT INTO notifications (recipient, conv, seq, actor, school, created_at,
                                          not_before)
               SELECT m.user_id, m.conv, e.seq, e.actor, $2, e.ts, now()
               FROM members m JOIN events e ON e.conv = m.conv AND e.seq = $3
               JOIN users u ON u.id = m.user_id AND u.active
               WHERE m.conv = $1 AND m.role = 'recipient' AND m.left_at IS NULL
                 AND m.read_seq < $3
                 AND NOT EXISTS (SELECT 1 FROM notifications n
                                 WHERE n.recipient = m.user_id AND n.conv = m.conv
                                   AND n.state = 'pending')""",
            row["conv"],
            row["school"],
            MESSAGE_SEQ,
        )
    return int(status.split()[-1])


@dataclass(frozen=True, slots=True)
class ReplyTarget:
    """Where a recipient's private reply goes: the direct conversation with the sender."""

    conv: str
    quote: dict[str, Any]
    events: tuple[Appended, ...]


async def reply_target(pool: asyncpg.Pool, recipient: Person, broadcast_conv: str) -> ReplyTarget:
    """Open (or find) the direct conversation between a recipient and the broadcast's sender,
    even where the school does not let parents start conversations: the sender asked for
    private replies."""
    async with translated_errors(), pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            """SELECT b.id, b.school, b.sender, b.replies, b.body, b.body_en
               FROM broadcasts b JOIN members m ON m.conv = b.conv
               WHERE b.conv = $1 AND m.user_id = $2 AND m.role = 'recipient'
                 AND m.left_at IS NULL""",
            broadcast_conv,
            recipient.id,
        )
        if row is None:
            raise MessagingError(ErrorCode.NOT_FOUND)
        if row["replies"] != Replies.PRIVATE.value:
            raise MessagingError(ErrorCode.FORBIDDEN, "replies_closed")
        people = await load_people(conn, [row["sender"]])
        sender = people.get(row["sender"])
        if sender is None or not sender.active or not sender.is_staff_of(row["school"]):
            raise MessagingError(ErrorCode.FORBIDDEN, "replies_closed")
        opened = await create_in(conn, recipient, [sender], row["school"], None, group=False)
    body = row["body_en"] if recipient.locale == "en" and row["body_en"] else row["body"]
    quote = {
        "conv": broadcast_conv,
        "seq": MESSAGE_SEQ,
        "broadcast": row["id"],
        "body": body[:280],
    }
    return ReplyTarget(opened.conv, quote, opened.events)


async def mark_delivered(pool: asyncpg.Pool, pairs: list[tuple[str, str]]) -> None:
    """Record that these (conversation, user) broadcasts reached a live socket or a fetch."""
    if not pairs:
        return
    async with translated_errors(), pool.acquire() as conn:
        await conn.execute(
            """UPDATE members m SET delivered_at = now()
               FROM unnest($1::text[], $2::text[]) AS d(conv, user_id)
               WHERE m.conv = d.conv AND m.user_id = d.user_id AND m.delivered_at IS NULL""",
            [c for c, _ in pairs],
            [u for _, u in pairs],
        )
