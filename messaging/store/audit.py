"""The principal's audit reads: searching a school's conversations, the full view of one, and
the trail of audit reads itself.

Nothing here redacts: the audit view shows every event with its original content, and says who
deleted or removed a message, and when. Every function runs on the caller's connection, inside
the transaction in which the caller also calls `record_read`, so that no audit read happens
without its record (the record commits with the read, or neither does).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import asyncpg

# The document a message is indexed under: identical to the expression of the index
# `events_message_text` in schema.sql, else the search cannot use that index.
MESSAGE_TSVECTOR = (
    "to_tsvector(CASE WHEN e.lang = 'en' THEN 'messaging_en'::regconfig"
    " ELSE 'messaging_fr'::regconfig END, coalesce(e.body, ''))"
)
# A message matches when the query, parsed with the configuration of the message's own
# language, matches it. Both branches can use the index (a BitmapOr).
_TEXT_MATCH = f"""(e.lang = 'en' AND {MESSAGE_TSVECTOR} @@ websearch_to_tsquery('messaging_en', $q)
     OR e.lang IS DISTINCT FROM 'en'
        AND {MESSAGE_TSVECTOR} @@ websearch_to_tsquery('messaging_fr', $q))"""

# Member ids listed per conversation in a search result; a broadcast may have 100,000.
LISTED_MEMBERS = 20

ACTIONS = ("list", "view", "export_pdf", "export_json", "attachment", "reads")


# Recording ----------------------------------------------------------------------------------------


def _inet(address: str | None) -> str | None:
    if address is None:
        return None
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Recorded:
    """The audit record of a read: its number in the trail and its time."""

    id: int
    at: datetime


async def record_read(
    conn: asyncpg.Connection,
    *,
    school: str,
    reader: str,
    action: str,
    conv: str | None = None,
    search: dict[str, Any] | None = None,
    address: str | None = None,
) -> Recorded:
    """Append one audit record; call it in the transaction of the read it records."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    row = await conn.fetchrow(
        """INSERT INTO audit_reads (school, reader, conv, search, action, address)
           VALUES ($1, $2, $3, $4, $5, $6::inet) RETURNING id, at""",
        school,
        reader,
        conv,
        search,
        action,
        _inet(address),
    )
    return Recorded(row["id"], row["at"])


@dataclass(frozen=True, slots=True)
class AuditRead:
    id: int
    school: str
    reader: str
    reader_name: str | None
    conv: str | None
    search: dict[str, Any] | None
    action: str
    address: str | None
    at: datetime


async def list_reads(
    conn: asyncpg.Connection, school: str, *, before: int | None, limit: int
) -> tuple[list[AuditRead], int | None]:
    """The school's audit records, newest first; and the id to continue before, if any."""
    rows = await conn.fetch(
        """SELECT r.id, r.school, r.reader, u.name AS reader_name, r.conv, r.search, r.action,
                  host(r.address) AS address, r.at
           FROM audit_reads r LEFT JOIN users u ON u.id = r.reader
           WHERE r.school = $1 AND r.id < $2 ORDER BY r.id DESC LIMIT $3""",
        school,
        before if before is not None else 2**63 - 1,
        limit + 1,
    )
    reads = [AuditRead(**dict(r)) for r in rows[:limit]]
    return reads, reads[-1].id if len(rows) > limit else None


# Lookups ------------------------------------------------------------------------------------------


async def school_timezone(conn: asyncpg.Connection, school: str) -> str | None:
    """The school's time zone; None when there is no such school."""
    tz: str | None = await conn.fetchval("SELECT timezone FROM schools WHERE id = $1", school)
    return tz


async def school_of(conn: asyncpg.Connection, conv: str) -> str | None:
    """The school a conversation belongs to; None when there is no such conversation."""
    school: str | None = await conn.fetchval("SELECT school FROM conversations WHERE id = $1", conv)
    return school


async def names_of(conn: asyncpg.Connection, user_ids: Iterable[str]) -> dict[str, str]:
    """Roster names of these users (inactive ones included); unknown ids are absent."""
    ids = sorted(set(user_ids))
    if not ids:
        return {}
    rows = await conn.fetch("SELECT id, name FROM users WHERE id = ANY($1::text[])", ids)
    return {r["id"]: r["name"] for r in rows}


# Searching ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Filters:
    """A search of a school's conversations; every filter is optional.

    `q`: full text of the messages (deleted and removed ones included); `since` (inclusive) and
    `until` (exclusive): some event of the conversation (a matching message when `q` is given)
    lies in this interval; `member`: the user is or was a member.
    """

    q: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    member: str | None = None


# (created_at, id) of the last conversation of a page: the search continues below it
Keyset = tuple[datetime, str]


@dataclass(frozen=True, slots=True)
class ConvSummary:
    conv: str
    school: str
    kind: str
    title: str | None
    owner: str | None
    created_at: datetime
    last_seq: int
    last_ts: datetime | None
    locked: bool
    member_count: int
    # the first LISTED_MEMBERS member ids (current and former), sorted
    members: tuple[str, ...]


def _search_sql(
    school: str, filters: Filters, after: Keyset | None, limit: int
) -> tuple[str, list[Any]]:
    """The search's SQL with only the clauses its filters need, and its arguments; every value
    is a bind parameter."""
    args: list[Any] = []

    def param(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    where = [f"c.school = {param(school)}"]
    if after is not None:
        where.append(f"(c.created_at, c.id) < ({param(after[0])}, {param(after[1])})")
    if filters.member is not None:
        where.append(
            "EXISTS (SELECT 1 FROM members m WHERE m.conv = c.id"
            f" AND m.user_id = {param(filters.member)})"
        )
    event_where = []
    if filters.since is not None:
        event_where.append(f"e.ts >= {param(filters.since)}")
    if filters.until is not None:
        event_where.append(f"e.ts < {param(filters.until)}")
    if filters.q is not None:
        event_where += ["e.kind = 'message'", _TEXT_MATCH.replace("$q", param(filters.q))]
    if event_where:
        where.append(f"c.id IN (SELECT e.conv FROM events e WHERE {' AND '.join(event_where)})")
    sql = f"""SELECT c.id, c.school, c.kind, c.title, c.owner, c.created_at, c.last_seq,
                     c.last_ts, c.locked,
                     (SELECT count(*) FROM members m WHERE m.conv = c.id) AS member_count,
                     ARRAY(SELECT m.user_id FROM members m WHERE m.conv = c.id
                           ORDER BY m.user_id LIMIT {LISTED_MEMBERS}) AS members
              FROM conversations c
              WHERE {" AND ".join(where)}
              ORDER BY c.created_at DESC, c.id DESC
              LIMIT {param(limit)}"""
    return sql, args


async def search_conversations(
    conn: asyncpg.Connection,
    school: str,
    filters: Filters,
    *,
    after: Keyset | None,
    limit: int,
) -> tuple[list[ConvSummary], Keyset | None]:
    """Conversations of `school` that pass `filters`, newest first (by creation, which never
    changes, so that pages neither skip nor repeat), at most `limit` of them after `after`;
    and the keyset to continue from when more remain."""
    sql, args = _search_sql(school, filters, after, limit + 1)
    rows = await conn.fetch(sql, *args)
    found = [
        ConvSummary(
            conv=r["id"],
            school=r["school"],
            kind=r["kind"],
            title=r["title"],
            owner=r["owner"],
            created_at=r["created_at"],
            last_seq=r["last_seq"],
            last_ts=r["last_ts"],
            locked=r["locked"],
            member_count=r["member_count"],
            members=tuple(r["members"]),
        )
        for r in rows[:limit]
    ]
    more = len(rows) > limit
    return found, (found[-1].created_at, found[-1].conv) if more else None


# The full view ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Withdrawal:
    """A later event that withdrew a message: its sender's `deleted` or the principal's
    `removed` (with the principal's reason)."""

    kind: str
    by: str
    at: datetime
    seq: int
    reason: str | None


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """A stored event exactly as stored, plus the withdrawal of a message, if any."""

    seq: int
    ts: datetime
    kind: str
    actor: str
    body: str | None
    data: dict[str, Any]
    target: int | None
    cid: str | None
    lang: str | None
    hash: bytes | None
    withdrawn: Withdrawal | None = None


@dataclass(frozen=True, slots=True)
class Member:
    user: str
    role: str
    joined_at: datetime
    left_at: datetime | None


@dataclass(frozen=True, slots=True)
class AuditView:
    conv: str
    kind: str
    title: str | None
    owner: str | None
    created_at: datetime
    locked: bool
    last_seq: int
    school: str
    school_name: str
    timezone: str
    members: tuple[Member, ...]
    events: tuple[AuditEvent, ...]
    # the roster name of every user the view mentions (members, actors, added users)
    names: dict[str, str] = field(default_factory=dict)

    @property
    def last_hash(self) -> bytes | None:
        return self.events[-1].hash if self.events else None


def _mentioned(events: Sequence[AuditEvent], members: Sequence[Member]) -> set[str]:
    ids = {m.user for m in members} | {e.actor for e in events}
    for e in events:
        if isinstance(e.data.get("user"), str):
            ids.add(e.data["user"])
        listed = e.data.get("members")
        if isinstance(listed, list):
            ids |= {m for m in listed if isinstance(m, str)}
    return ids


def _with_withdrawals(events: list[AuditEvent]) -> tuple[AuditEvent, ...]:
    withdrawals: dict[int, Withdrawal] = {}
    for e in events:
        if e.kind in ("deleted", "removed") and e.target is not None:
            reason = e.data.get("reason")
            withdrawals.setdefault(
                e.target,
                Withdrawal(
                    e.kind, e.actor, e.ts, e.seq, reason if isinstance(reason, str) else None
                ),
            )
    return tuple(
        replace(e, withdrawn=withdrawals[e.seq])
        if e.kind == "message" and e.seq in withdrawals
        else e
        for e in events
    )


async def view_conversation(conn: asyncpg.Connection, conv: str) -> AuditView | None:
    """Every event of `conv` in seq order with its original content, every member it ever had,
    and who withdrew which message; None when there is no such conversation. Run it in a
    REPEATABLE READ transaction for a view consistent across its queries."""
    row = await conn.fetchrow(
        """SELECT c.id, c.kind, c.title, c.owner, c.created_at, c.locked, c.last_seq,
                  s.id AS school, s.name AS school_name, s.timezone
           FROM conversations c JOIN schools s ON s.id = c.school WHERE c.id = $1""",
        conv,
    )
    if row is None:
        return None
    member_rows = await conn.fetch(
        """SELECT user_id, role, joined_at, left_at FROM members WHERE conv = $1
           ORDER BY joined_at, user_id""",
        conv,
    )
    event_rows = await conn.fetch(
        """SELECT seq, ts, kind, actor, body, data, target, cid, lang, hash
           FROM events WHERE conv = $1 ORDER BY seq""",
        conv,
    )
    members = tuple(
        Member(r["user_id"], r["role"], r["joined_at"], r["left_at"]) for r in member_rows
    )
    events = _with_withdrawals([AuditEvent(**dict(r)) for r in event_rows])
    return AuditView(
        conv=row["id"],
        kind=row["kind"],
        title=row["title"],
        owner=row["owner"],
        created_at=row["created_at"],
        locked=row["locked"],
        last_seq=row["last_seq"],
        school=row["school"],
        school_name=row["school_name"],
        timezone=row["timezone"],
        members=members,
        events=events,
        names=await names_of(conn, _mentioned(events, members)),
    )
