"""The notification outbox in Postgres: planning rows with each new message, cancelling them on
read, re-planning held ones, claiming due ones for the worker, and the records that prove it.

    plan_notifications   called by `log.append_batch` in the message's own transaction: one row
                         per member to be told (domain/notify.py decides who and from when), and
                         an open hold for each member held outside their hours
    cancel_read          called by `mark_read`: a read marker reaching a message cancels its
                         pending rows (rows the worker is sending are skipped, never waited for)
    replan               working hours changed: due times of held rows computed again
    claim                the worker's unit of work, in its transaction: the pending rows of one
                         recipient and conversation, locked (advisory lock on the pair, then FOR
                         UPDATE SKIP LOCKED), and the facts the notification needs; `finish`
                         marks them in the same transaction, so a worker that dies mid-send
                         leaves them pending for the next one (docs/notifications.md)

Also here: staff availability for conversation lists, parents' quiet hours, push
subscriptions, and the principal's list of holds.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import asyncpg
import structlog

from messaging.domain import notify
from messaging.domain.hours import WeeklySchedule, schedule_to_json
from messaging.domain.models import ConvFacts, UserKind
from messaging.domain.notify import Calendar, Plan, Recipient
from messaging.protocol.frames import iso_utc
from messaging.store.pool import translated_errors

if TYPE_CHECKING:
    from messaging.store.log import Appended

log = structlog.get_logger(__name__)

MAX_PUSH_SUBSCRIPTIONS = 10
_PAIR_LOCK_SEED = 724013


def calendar_of(timezone: str, closed_days: Iterable[Any] | None) -> Calendar:
    return Calendar(ZoneInfo(timezone), notify.closed_days_of(closed_days))


def _recipient(r: Mapping[str, Any], *, reachable: bool = True) -> Recipient:
    staff = r["kind"] == UserKind.STAFF.value
    return Recipient(
        id=r["user_id"],
        kind=UserKind(r["kind"]),
        active=r["active"],
        reachable=reachable,
        working_hours=_stored(r["user_id"], r["working_hours"]) if staff else None,
        quiet_hours=None if staff else _stored(r["user_id"], r["quiet_hours"]),
    )


def _stored(user_id: str, raw: Mapping[str, Any] | None) -> WeeklySchedule | None:
    """Hours as stored (validated on the way in). One edited by hand into something invalid
    counts as absent rather than failing the append of a message."""
    try:
        return notify.schedule_of(raw)
    except ValueError:
        log.error("stored_hours_invalid", user=user_id)
        return None


# Planning, with each new message ---------------------------------------------------------------

# Parents without quiet hours are told once the delay has passed, whatever the time: the common
# case (a broadcast reaches 100,000 of them) is `notify.plan_message`'s rule for them written in
# SQL, so that their rows never travel to Python and back. Everyone else (staff, and parents with
# quiet hours) comes back to be planned by the rule itself, in the same round trip.
_PLAN = """
WITH ev AS (
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::timestamptz[], $5::text[])
        AS e(conv, seq, actor, ts, school)),
told AS (
    INSERT INTO notifications (recipient, conv, seq, actor, school, created_at, not_before)
    SELECT m.user_id, ev.conv, ev.seq, ev.actor, ev.school, ev.ts, ev.ts
    FROM members m
    JOIN ev ON ev.conv = m.conv AND m.user_id <> ev.actor
    JOIN users u ON u.id = m.user_id
    WHERE m.conv = ANY($6::text[]) AND m.left_at IS NULL
      AND u.kind = 'parent' AND u.active
      AND NOT EXISTS (SELECT 1 FROM notification_prefs p
                      WHERE p.user_id = m.user_id AND p.quiet_hours IS NOT NULL)
      AND (u.email IS NOT NULL
           OR EXISTS (SELECT 1 FROM push_subscriptions ps WHERE ps.user_id = m.user_id)))
SELECT m.conv, m.user_id, u.kind, u.active, u.working_hours, p.quiet_hours,
       u.email IS NOT NULL
         OR EXISTS (SELECT 1 FROM push_subscriptions ps WHERE ps.user_id = m.user_id)
         AS reachable,
       s.timezone, CASE WHEN u.kind = 'staff' THEN s.closed_days END AS closed_days
FROM members m
JOIN users u ON u.id = m.user_id
JOIN conversations c ON c.id = m.conv
JOIN schools s ON s.id = c.school
LEFT JOIN notification_prefs p ON p.user_id = m.user_id
WHERE m.conv = ANY($6::text[]) AND m.left_at IS NULL
  AND (u.kind = 'staff' OR p.quiet_hours IS NOT NULL)
"""

_INSERT_PLANNED = """
WITH planned AS (
    INSERT INTO notifications (recipient, conv, seq, actor, school, created_at, not_before, held)
    SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[],
                         $6::timestamptz[], $7::timestamptz[], $8::text[]))
INSERT INTO notification_holds (school, recipient, conv, reason, held_from, held_until)
SELECT * FROM unnest($9::text[], $10::text[], $11::text[], $12::text[], $13::timestamptz[],
                     $14::timestamptz[])
ON CONFLICT (recipient, conv) WHERE released_at IS NULL DO NOTHING
"""


async def plan_notifications(
    conn: asyncpg.Connection, events: Sequence[Appended], facts: Mapping[str, ConvFacts]
) -> None:
    """Outbox rows for the new `message` events among `events`, in the caller's transaction:
    one round trip, and a second only when staff (or parents with quiet hours) are to be told."""
    messages = [e for e in events if e.kind == "message" and not e.duplicate]
    if not messages:
        return
    rows = await conn.fetch(
        _PLAN,
        [e.conv for e in messages],
        [e.seq for e in messages],
        [e.actor for e in messages],
        [e.ts for e in messages],
        [facts[e.conv].school for e in messages],
        sorted({e.conv for e in messages}),
    )
    if not rows:
        return
    members: dict[str, list[Recipient]] = {}
    calendars: dict[str, Calendar] = {}
    for r in rows:
        members.setdefault(r["conv"], []).append(_recipient(r, reachable=r["reachable"]))
        if r["conv"] not in calendars or r["closed_days"] is not None:
            calendars[r["conv"]] = calendar_of(r["timezone"], r["closed_days"])
    planned: list[tuple[Any, ...]] = []
    holds: dict[tuple[str, str], tuple[Any, ...]] = {}
    for ev in messages:
        school = facts[ev.conv].school
        found = members.get(ev.conv, [])
        for plan in notify.plan_message(ev.actor, found, calendars.get(ev.conv, _NOWHERE), ev.ts):
            if not plan.told:
                continue
            held = plan.reason.value if plan.held else None
            planned.append(
                (plan.recipient, ev.conv, ev.seq, ev.actor, school, ev.ts, plan.not_before, held)
            )
            if held is not None:
                holds.setdefault(
                    (plan.recipient, ev.conv),
                    (school, plan.recipient, ev.conv, held, ev.ts, plan.not_before),
                )
    if planned:
        await conn.execute(
            _INSERT_PLANNED,
            *_columns(planned, 8),
            *_columns(list(holds.values()), 6),
        )


_NOWHERE = Calendar(ZoneInfo("UTC"))


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    if not rows:
        return [[] for _ in range(width)]
    return [list(col) for col in zip(*rows, strict=True)]


# Cancelling, on read ---------------------------------------------------------------------------

_CANCEL_READ = """
WITH cancelled AS (
    UPDATE notifications SET state = 'cancelled', error = 'read', done_at = now()
    WHERE id IN (SELECT id FROM notifications
                 WHERE recipient = $1 AND conv = $2 AND state = 'pending' AND seq <= $3
                 FOR UPDATE SKIP LOCKED)
    RETURNING id)
UPDATE notification_holds SET released_at = now(), outcome = 'cancelled',
       messages = (SELECT count(*) FROM cancelled)
WHERE recipient = $1 AND conv = $2 AND released_at IS NULL
  AND EXISTS (SELECT 1 FROM cancelled)
  AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.recipient = $1 AND n.conv = $2
                  AND n.state = 'pending' AND n.seq > $3)
"""


async def cancel_read(conn: asyncpg.Connection, user_id: str, conv: str, seq: int) -> None:
    """The reader saw everything up to `seq`: their pending notifications of it are cancelled
    (one statement); a hold left with nothing to release is closed as cancelled."""
    await conn.execute(_CANCEL_READ, user_id, conv, seq)


# Availability of staff, for conversation lists --------------------------------------------------

_AVAILABILITY_FACTS = """
SELECT (SELECT locale FROM users WHERE id = $3) AS locale,
       (SELECT coalesce(jsonb_agg(jsonb_build_array(id, name, working_hours)), '[]'::jsonb)
          FROM users WHERE id = ANY($1::text[]) AND kind = 'staff' AND active) AS staff,
       (SELECT coalesce(jsonb_agg(jsonb_build_array(id, timezone, closed_days)), '[]'::jsonb)
          FROM schools WHERE id = ANY($2::text[])) AS schools
"""


async def add_availability(
    conn: asyncpg.Connection, viewer: str, listed: list[dict[str, Any]]
) -> None:
    """Add `availability` to each conversation of `listed` (items of `conversations_of`): for
    each staff member but the viewer, whether they work now and when their next period begins,
    with the sentence the viewer is shown ("Marie Tremblay will see your message Monday at
    7:30")."""
    if not listed:
        return
    others = sorted({m for item in listed for m in item["members"] if m != viewer})
    schools = sorted({item["school"] for item in listed})
    row = await conn.fetchrow(_AVAILABILITY_FACTS, others, schools, viewer)
    locale = row["locale"] or "fr"
    staff = {s[0]: (s[1], _stored(s[0], s[2])) for s in row["staff"]}
    calendars = {s[0]: calendar_of(s[1], s[2]) for s in row["schools"]}
    now = datetime.now(UTC)
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for item in listed:
        found = []
        for member in item["members"]:
            if member == viewer or member not in staff:
                continue
            key = (member, item["school"])
            if key not in seen:
                name, hours = staff[member]
                calendar = calendars[item["school"]]
                state = notify.availability(hours, calendar, now)
                seen[key] = {
                    "user": member,
                    "name": name,
                    "working": state.working,
                    "next_start": iso_utc(state.next_start) if state.next_start else None,
                    "notice": notify.availability_notice(name, state, calendar.zone, locale, now),
                }
            found.append(seen[key])
        item["availability"] = found


# Working hours, quiet hours, and re-planning ----------------------------------------------------


async def working_hours_of(pool: asyncpg.Pool, user_id: str) -> Mapping[str, Any] | None:
    async with translated_errors(), pool.acquire() as conn:
        value: Mapping[str, Any] | None = await conn.fetchval(
            "SELECT working_hours FROM users WHERE id = $1", user_id
        )
        return value


async def quiet_hours_of(pool: asyncpg.Pool, user_id: str) -> Mapping[str, Any] | None:
    async with translated_errors(), pool.acquire() as conn:
        value: Mapping[str, Any] | None = await conn.fetchval(
            "SELECT quiet_hours FROM notification_prefs WHERE user_id = $1", user_id
        )
        return value


async def set_working_hours(pool: asyncpg.Pool, user_id: str, hours: WeeklySchedule) -> int:
    """Store a staff member's hours and re-plan their pending notifications in the same
    transaction; the change is recorded. Returns how many rows were re-planned."""
    doc = schedule_to_json(hours)
    async with translated_errors(), pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "UPDATE users SET working_hours = $2, updated_at = now() WHERE id = $1", user_id, doc
        )
        return await _replanned_and_recorded(conn, user_id, "working_hours", doc)


async def set_quiet_hours(pool: asyncpg.Pool, user_id: str, quiet: WeeklySchedule | None) -> int:
    """Store a parent's quiet hours (None: none) and re-plan as for working hours."""
    doc = schedule_to_json(quiet) if quiet is not None else None
    async with translated_errors(), pool.acquire() as conn, conn.transaction():
        await conn.execute(
            """INSERT INTO notification_prefs (user_id, quiet_hours) VALUES ($1, $2)
               ON CONFLICT (user_id) DO UPDATE
               SET quiet_hours = EXCLUDED.quiet_hours, updated_at = now()""",
            user_id,
            doc,
        )
        return await _replanned_and_recorded(conn, user_id, "quiet_hours", doc)


async def _replanned_and_recorded(
    conn: asyncpg.Connection, user_id: str, kind: str, doc: Any
) -> int:
    count = await replan(conn, datetime.now(UTC), users=[user_id])
    await conn.execute(
        """INSERT INTO notification_hours_changes (user_id, kind, hours, replanned)
           VALUES ($1, $2, $3, $4)""",
        user_id,
        kind,
        doc,
        count,
    )
    return count


_REPLAN_ROWS = """
SELECT n.id, n.recipient AS user_id, n.conv, n.school, n.not_before, n.held,
       u.kind, u.active, u.working_hours, p.quiet_hours, s.timezone, s.closed_days
FROM notifications n
JOIN users u ON u.id = n.recipient
JOIN schools s ON s.id = n.school
LEFT JOIN notification_prefs p ON p.user_id = n.recipient
WHERE n.state = 'pending' AND n.attempts = 0
  AND ($1::text[] IS NULL OR n.recipient = ANY($1::text[]))
  AND ($2::timestamptz IS NULL OR (n.not_before IS NULL OR n.not_before > now())
       AND (u.updated_at >= $2 OR s.updated_at >= $2 OR p.updated_at >= $2))
FOR UPDATE OF n SKIP LOCKED
"""

_APPLY_REPLAN = """
WITH rows AS (
    UPDATE notifications n SET not_before = v.not_before, held = v.held
    FROM unnest($1::bigint[], $2::timestamptz[], $3::text[]) AS v(id, not_before, held)
    WHERE n.id = v.id),
held AS (
    INSERT INTO notification_holds (school, recipient, conv, reason, held_from, held_until)
    SELECT * FROM unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::timestamptz[],
                         $9::timestamptz[])
    ON CONFLICT (recipient, conv) WHERE released_at IS NULL
    DO UPDATE SET reason = EXCLUDED.reason, held_until = EXCLUDED.held_until,
                  replanned_at = now())
UPDATE notification_holds h SET held_until = now(), replanned_at = now()
FROM unnest($10::text[], $11::text[]) AS f(recipient, conv)
WHERE h.recipient = f.recipient AND h.conv = f.conv AND h.released_at IS NULL
"""


async def replan(
    conn: asyncpg.Connection,
    now: datetime,
    *,
    users: Sequence[str] | None = None,
    changed_since: datetime | None = None,
) -> int:
    """Compute again when pending notifications may go, from today's facts.

    `users`: all pending rows of these recipients (their hours just changed). `changed_since`:
    held rows whose recipient, prefs or school changed since then (a roster import). Rows being
    sent, and rows waiting for a retry, are left alone. Open holds follow: extended, or marked
    due now (the worker records their release when it sends). Returns the rows changed.
    """
    rows = await conn.fetch(_REPLAN_ROWS, users, changed_since)
    plans: dict[tuple[str, str], Plan] = {}
    changes: list[tuple[Any, ...]] = []
    for r in rows:
        key = (r["user_id"], r["school"])
        if key not in plans:
            recipient = _recipient(r)
            plans[key] = notify.hold(recipient, calendar_of(r["timezone"], r["closed_days"]), now)
        plan = plans[key]
        held = plan.reason.value if plan.held else None
        if (plan.not_before, held) != (r["not_before"], r["held"]):
            changes.append((r["id"], plan.not_before, held, r["user_id"], r["conv"], r["school"]))
    if not changes:
        return 0
    holds: dict[tuple[str, str], tuple[Any, ...]] = {}
    freed: set[tuple[str, str]] = set()
    for _, not_before, held, user, conv, school in changes:
        if held is not None:
            holds[(user, conv)] = (school, user, conv, held, now, not_before)
        else:
            freed.add((user, conv))
    await conn.execute(
        _APPLY_REPLAN,
        *_columns([c[:3] for c in changes], 3),
        *_columns(list(holds.values()), 6),
        *_columns(sorted(freed), 2),
    )
    return len(changes)


# Push subscriptions -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    endpoint: str
    p256dh: str
    auth: str


async def add_push_subscription(
    pool: asyncpg.Pool, user_id: str, endpoint: str, p256dh: str, auth: str
) -> str:
    """Register a browser; an endpoint registered before (by anyone) now belongs to this user.
    A user keeps their MAX_PUSH_SUBSCRIPTIONS latest browsers."""
    async with translated_errors(), pool.acquire() as conn, conn.transaction():
        sub_id: str = await conn.fetchval(
            """INSERT INTO push_subscriptions (id, user_id, endpoint, p256dh, auth)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (endpoint) DO UPDATE SET user_id = EXCLUDED.user_id,
                   p256dh = EXCLUDED.p256dh, auth = EXCLUDED.auth, created_at = now()
               RETURNING id""",
            "ps_" + secrets.token_hex(10),
            user_id,
            endpoint,
            p256dh,
            auth,
        )
        await conn.execute(
            """DELETE FROM push_subscriptions WHERE user_id = $1 AND id NOT IN (
                   SELECT id FROM push_subscriptions WHERE user_id = $1
                   ORDER BY created_at DESC, id LIMIT $2)""",
            user_id,
            MAX_PUSH_SUBSCRIPTIONS,
        )
        return sub_id


async def remove_push_subscription(pool: asyncpg.Pool, user_id: str, endpoint: str) -> bool:
    async with translated_errors(), pool.acquire() as conn:
        removed = await conn.fetchval(
            "DELETE FROM push_subscriptions WHERE user_id = $1 AND endpoint = $2 RETURNING id",
            user_id,
            endpoint,
        )
        return removed is not None


async def push_subscriptions_of(pool: asyncpg.Pool, user_id: str) -> list[dict[str, Any]]:
    async with translated_errors(), pool.acquire() as conn:
        rows = await conn.fetch(
            """SELECT id, endpoint, created_at, last_ok_at FROM push_subscriptions
               WHERE user_id = $1 ORDER BY created_at, id""",
            user_id,
        )
    return [
        {
            "id": r["id"],
            "endpoint": r["endpoint"],
            "created_at": iso_utc(r["created_at"]),
            "last_ok_at": iso_utc(r["last_ok_at"]) if r["last_ok_at"] else None,
        }
        for r in rows
    ]


# The principal's record of holds ----------------------------------------------------------------


async def list_holds(
    pool: asyncpg.Pool, school: str, *, before: int | None, limit: int
) -> list[dict[str, Any]]:
    """Holds of staff notifications in `school`, newest first (parents' own quiet hours are
    theirs and not listed)."""
    async with translated_errors(), pool.acquire() as conn:
        rows = await conn.fetch(
            """SELECT h.*, u.name FROM notification_holds h LEFT JOIN users u ON u.id = h.recipient
               WHERE h.school = $1 AND h.reason <> 'quiet_hours'
                 AND ($2::bigint IS NULL OR h.id < $2)
               ORDER BY h.id DESC LIMIT $3""",
            school,
            before,
            limit,
        )
    return [
        {
            "id": r["id"],
            "user": r["recipient"],
            "name": r["name"],
            "conv": r["conv"],
            "reason": r["reason"],
            "held_from": iso_utc(r["held_from"]),
            "held_until": iso_utc(r["held_until"]) if r["held_until"] else None,
            "replanned_at": iso_utc(r["replanned_at"]) if r["replanned_at"] else None,
            "released_at": iso_utc(r["released_at"]) if r["released_at"] else None,
            "outcome": r["outcome"],
            "messages": r["messages"],
        }
        for r in rows
    ]


# The worker's side ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pending:
    id: int
    seq: int
    attempts: int


@dataclass(frozen=True, slots=True)
class Message:
    seq: int
    actor: str
    actor_name: str
    # the text, only when the school lets notifications carry it
    body: str | None
    withdrawn: bool


@dataclass(frozen=True, slots=True)
class Group:
    """One notification to send: the pending rows of one recipient in one conversation (locked
    by the caller's transaction), and what the notification needs."""

    recipient: Recipient
    name: str
    email: str | None
    locale: str
    member: bool
    conv: str
    conv_kind: str
    title: str | None
    school: str
    school_name: str
    calendar: Calendar
    notify_text: bool
    rows: tuple[Pending, ...]
    messages: tuple[Message, ...] = ()
    subscriptions: tuple[Subscription, ...] = field(default_factory=tuple)

    @property
    def attempts(self) -> int:
        return max(r.attempts for r in self.rows)

    @property
    def first_id(self) -> int:
        return min(r.id for r in self.rows)


async def due_pairs(pool: asyncpg.Pool, delay_s: float, limit: int) -> list[tuple[str, str]]:
    """(recipient, conversation) pairs with a notification due, most overdue first (read from
    the oldest due rows only, so a backlog of 100,000 costs each pass the same)."""
    async with translated_errors(), pool.acquire() as conn:
        rows = await conn.fetch(
            """SELECT recipient, conv FROM (
                   SELECT recipient, conv, not_before FROM notifications
                   WHERE state = 'pending' AND not_before <= now()
                     AND created_at <= now() - make_interval(secs => $1)
                   ORDER BY not_before LIMIT $2 * 4) due
               GROUP BY recipient, conv ORDER BY min(not_before) LIMIT $2""",
            delay_s,
            limit,
        )
    return [(r["recipient"], r["conv"]) for r in rows]


_GROUP_FACTS = """
SELECT u.id AS user_id, u.kind, u.name, u.email, u.locale, u.active, u.working_hours,
       p.quiet_hours, c.school, c.kind AS conv_kind, c.title, s.name AS school_name,
       s.timezone, s.closed_days, s.features,
       EXISTS (SELECT 1 FROM members m
               WHERE m.conv = c.id AND m.user_id = u.id AND m.left_at IS NULL) AS member,
       (SELECT coalesce(jsonb_agg(jsonb_build_array(ps.id, ps.endpoint, ps.p256dh, ps.auth)
                                  ORDER BY ps.created_at, ps.id), '[]'::jsonb)
          FROM push_subscriptions ps WHERE ps.user_id = u.id) AS subscriptions
FROM users u CROSS JOIN conversations c
JOIN schools s ON s.id = c.school
LEFT JOIN notification_prefs p ON p.user_id = u.id
WHERE u.id = $1 AND c.id = $2
"""

_GROUP_MESSAGES = """
SELECT e.seq, e.actor, coalesce(a.name, e.actor) AS actor_name,
       CASE WHEN $3 THEN e.body END AS body,
       EXISTS (SELECT 1 FROM events r WHERE r.conv = e.conv AND r.target = e.seq
               AND r.kind IN ('deleted', 'removed')) AS withdrawn
FROM events e LEFT JOIN users a ON a.id = e.actor
WHERE e.conv = $1 AND e.seq = ANY($2::bigint[])
ORDER BY e.seq
"""


async def claim(
    conn: asyncpg.Connection, recipient: str, conv: str, delay_s: float, now: datetime
) -> Group | None:
    """In the caller's transaction: lock the pair's pending rows and load what the notification
    needs; None when another worker has the pair or nothing of it is due any more."""
    mine = await conn.fetchval(
        "SELECT pg_try_advisory_xact_lock(hashtextextended($1 || ' ' || $2, $3))",
        recipient,
        conv,
        _PAIR_LOCK_SEED,
    )
    if not mine:
        return None
    rows = await conn.fetch(
        """SELECT id, seq, attempts, created_at, not_before FROM notifications
           WHERE recipient = $1 AND conv = $2 AND state = 'pending'
           ORDER BY seq FOR UPDATE SKIP LOCKED""",
        recipient,
        conv,
    )
    settled = now - timedelta(seconds=delay_s)
    if not any(
        r["not_before"] is not None and r["not_before"] <= now and r["created_at"] <= settled
        for r in rows
    ):
        return None
    f = await conn.fetchrow(_GROUP_FACTS, recipient, conv)
    if f is None:  # the user or the conversation is gone: nothing to say
        return None
    features = f["features"] or {}
    notify_text = bool(features.get("notify_text", False))
    seqs = [r["seq"] for r in rows]
    messages = await conn.fetch(_GROUP_MESSAGES, conv, seqs, notify_text)
    return Group(
        recipient=_recipient(f),
        name=f["name"],
        email=f["email"],
        locale=f["locale"],
        member=f["member"],
        conv=conv,
        conv_kind=f["conv_kind"],
        title=f["title"],
        school=f["school"],
        school_name=f["school_name"],
        calendar=calendar_of(f["timezone"], f["closed_days"]),
        notify_text=notify_text,
        rows=tuple(Pending(r["id"], r["seq"], r["attempts"]) for r in rows),
        messages=tuple(
            Message(m["seq"], m["actor"], m["actor_name"], m["body"], m["withdrawn"])
            for m in messages
        ),
        subscriptions=tuple(Subscription(*s) for s in f["subscriptions"]),
    )


async def hold_again(conn: asyncpg.Connection, group: Group, plan: Plan, now: datetime) -> None:
    """Due, but the recipient is off (their hours changed since the message was planned, or the
    delay carried it past the end of a period): held until `plan.not_before`."""
    await conn.execute(
        """WITH rows AS (
               UPDATE notifications SET not_before = $2, held = $3 WHERE id = ANY($1::bigint[]))
           INSERT INTO notification_holds (school, recipient, conv, reason, held_from, held_until)
           VALUES ($4, $5, $6, $3, $7, $2)
           ON CONFLICT (recipient, conv) WHERE released_at IS NULL
           DO UPDATE SET reason = EXCLUDED.reason, held_until = EXCLUDED.held_until,
                         replanned_at = now()""",
        [r.id for r in group.rows],
        plan.not_before,
        plan.reason.value,
        group.school,
        group.recipient.id,
        group.conv,
        now,
    )


@dataclass(frozen=True, slots=True)
class Delivery:
    """One try of one channel, for the record (`error` is a short code, never content)."""

    channel: str
    outcome: str
    error: str | None = None


_FINISH = """
WITH rows AS (
    UPDATE notifications SET state = $2, error = $3, attempts = attempts + $4,
           not_before = coalesce($5, not_before),
           done_at = CASE WHEN $2 = 'pending' THEN NULL ELSE now() END
    WHERE id = ANY($1::bigint[])),
hold AS (
    UPDATE notification_holds SET released_at = now(), outcome = $2, messages = $6
    WHERE recipient = $7 AND conv = $8 AND released_at IS NULL AND $2 <> 'pending')
INSERT INTO notification_deliveries (school, recipient, conv, channel, messages, attempt, outcome,
                                     error)
SELECT $9, $7, $8, d.channel, $6, $10, d.outcome, d.error
FROM unnest($11::text[], $12::text[], $13::text[]) AS d(channel, outcome, error)
"""


async def finish(
    conn: asyncpg.Connection,
    group: Group,
    state: str,
    *,
    error: str | None = None,
    retry_at: datetime | None = None,
    deliveries: Sequence[Delivery] = (),
    tried: bool = True,
) -> None:
    """Record the outcome in the claim's transaction: `state` sent, failed, cancelled, or
    pending again (a retry at `retry_at`); the hold is released with it; each channel's try is
    recorded."""
    told = sum(1 for m in group.messages if not m.withdrawn) or len(group.rows)
    await conn.execute(
        _FINISH,
        [r.id for r in group.rows],
        state,
        error,
        1 if tried else 0,
        retry_at,
        told,
        group.recipient.id,
        group.conv,
        group.school,
        group.attempts + 1,
        [d.channel for d in deliveries],
        [d.outcome for d in deliveries],
        [d.error for d in deliveries],
    )


async def subscription_gone(conn: asyncpg.Connection, sub_id: str) -> None:
    await conn.execute("DELETE FROM push_subscriptions WHERE id = $1", sub_id)


async def subscription_ok(conn: asyncpg.Connection, sub_id: str) -> None:
    await conn.execute("UPDATE push_subscriptions SET last_ok_at = now() WHERE id = $1", sub_id)


async def replan_changed(pool: asyncpg.Pool, since: datetime) -> int:
    """Held rows whose recipient's hours, prefs or school calendar changed since `since` (a
    roster import): re-planned. Holds left with nothing pending are closed as cancelled."""
    async with translated_errors(), pool.acquire() as conn, conn.transaction():
        count = await replan(conn, datetime.now(UTC), changed_since=since)
        await conn.execute(
            """UPDATE notification_holds h SET released_at = now(), outcome = 'cancelled'
               WHERE released_at IS NULL AND NOT EXISTS (
                   SELECT 1 FROM notifications n
                   WHERE n.recipient = h.recipient AND n.conv = h.conv AND n.state = 'pending')"""
        )
        return count


async def delete_done(pool: asyncpg.Pool, older_than: timedelta, batch: int = 10_000) -> int:
    """Outbox rows sent, cancelled or failed long ago (holds and deliveries stay as the record)."""
    total = 0
    async with translated_errors(), pool.acquire() as conn:
        while True:
            deleted: int = await conn.fetchval(
                """WITH gone AS (
                       DELETE FROM notifications WHERE id IN (
                           SELECT id FROM notifications
                           WHERE state <> 'pending' AND done_at < now() - $1::interval
                           LIMIT $2)
                       RETURNING 1)
                   SELECT count(*) FROM gone""",
                older_than,
                batch,
            )
            total += deleted
            if deleted < batch:
                return total
