"""Conversations and their members: open, add, leave, read markers, and the lists a client sees.

Every change here that others must learn of appends an event through `log.append_batch` in the
same transaction as the change itself, so the log and the membership never disagree.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from messaging.domain import authz
from messaging.domain.authz import Denial
from messaging.domain.models import ConvFacts, ConvKind, Person, UserKind
from messaging.errors import ErrorCode, MessagingError
from messaging.store.log import (
    Append,
    Appended,
    Outcome,
    accept,
    append_batch,
    lock_conversations,
)
from messaging.store.notifications import add_availability, cancel_read
from messaging.store.pool import translated_errors
from messaging.store.roster import SYSTEM_ACTOR, load_people, load_school


def new_conv_id() -> str:
    return "c_" + secrets.token_hex(10)


def _raise(denial: Denial) -> None:
    raise MessagingError(denial.code, denial.reason)


def _only(outcomes: list[Outcome]) -> list[Appended]:
    result = []
    for o in outcomes:
        if isinstance(o, Denial):
            _raise(o)
        else:
            result.append(o)
    return result


@dataclass(frozen=True, slots=True)
class Opened:
    conv: str
    created: bool
    events: tuple[Appended, ...]


async def open_conversation(
    pool: asyncpg.Pool,
    creator: Person,
    school_id: str,
    member_ids: Sequence[str],
    title: str | None,
) -> Opened:
    """A direct conversation (one other member, no title; the same pair always gets the same
    one back) or a group."""
    others_ids = [m for m in dict.fromkeys(member_ids) if m != creator.id]
    if not others_ids:
        raise MessagingError(ErrorCode.INVALID, "members_empty")
    group = len(others_ids) > 1 or title is not None
    async with translated_errors(), pool.acquire() as conn, conn.transaction():
        school = await load_school(conn, school_id)
        if school is None:
            raise MessagingError(ErrorCode.NOT_FOUND)
        people = await load_people(conn, others_ids)
        if len(people) != len(others_ids):
            raise MessagingError(ErrorCode.NOT_FOUND, "unknown_user")
        others = [people[i] for i in others_ids]
        denial = authz.may_open(creator, others, school, group=group)
        if denial is not None:
            _raise(denial)
        return await create_in(conn, creator, others, school_id, title, group=group)


async def create_in(
    conn: asyncpg.Connection,
    creator: Person,
    others: Sequence[Person],
    school_id: str,
    title: str | None,
    *,
    group: bool,
) -> Opened:
    """Create the conversation inside the caller's transaction, once its rule has passed; a
    direct conversation that exists already is returned as it is."""
    everyone = [creator, *others]
    direct_key = None if group else "|".join([school_id, *sorted(p.id for p in everyone)])
    kind = ConvKind.GROUP if group else ConvKind.DIRECT
    conv_id = new_conv_id()
    inserted = await conn.fetchval(
        """INSERT INTO conversations (id, school, kind, title, owner, direct_key)
           VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (direct_key) DO NOTHING RETURNING id""",
        conv_id,
        school_id,
        kind.value,
        title,
        creator.id,
        direct_key,
    )
    if inserted is None:
        existing = await conn.fetchval(
            "SELECT id FROM conversations WHERE direct_key = $1", direct_key
        )
        return Opened(conv=existing, created=False, events=())
    await conn.executemany(
        "INSERT INTO members (conv, user_id, role) VALUES ($1, $2, $3)",
        [(conv_id, p.id, _member_role(p)) for p in everyone],
    )
    created = Append(
        conv=conv_id,
        actor=creator.id,
        kind="created",
        rule=accept,
        data={
            "title": title,
            "members": [p.id for p in everyone],
            "school": school_id,
            "conv_kind": kind.value,
        },
    )
    events = _only(await append_batch(conn, [created]))
    return Opened(conv=conv_id, created=True, events=tuple(events))


def _member_role(person: Person) -> str:
    return "staff" if person.kind is UserKind.STAFF else "parent"


async def add_members(
    pool: asyncpg.Pool, actor: Person, conv_id: str, user_ids: Sequence[str]
) -> list[Appended]:
    """A staff member of a group adds people the rules allow; already present members are
    skipped, so adding twice is harmless."""
    async with translated_errors(), pool.acquire() as conn, conn.transaction():
        facts = (await lock_conversations(conn, [conv_id])).get(conv_id)
        if facts is None or actor.id not in facts.members:
            raise MessagingError(ErrorCode.NOT_FOUND)
        wanted = [u for u in dict.fromkeys(user_ids) if u not in facts.members]
        people = await load_people(conn, wanted)
        if len(people) != len(wanted):
            raise MessagingError(ErrorCode.NOT_FOUND, "unknown_user")
        school = await load_school(conn, facts.school)
        if school is None:
            raise MessagingError(ErrorCode.NOT_FOUND)
        denial = authz.may_add(actor, facts, [people[u] for u in wanted], school)
        if denial is not None:
            _raise(denial)
        if not wanted:
            return []
        await conn.executemany(
            """INSERT INTO members (conv, user_id, role) VALUES ($1, $2, $3)
               ON CONFLICT (conv, user_id) DO UPDATE
               SET left_at = NULL, joined_at = now(), role = EXCLUDED.role""",
            [(conv_id, u, _member_role(people[u])) for u in wanted],
        )
        items = [
            Append(conv=conv_id, actor=actor.id, kind="member_added", rule=accept, data={"user": u})
            for u in wanted
        ]
        return _only(await append_batch(conn, items))


async def leave(pool: asyncpg.Pool, actor_id: str, conv_id: str) -> list[Appended]:
    """Leave a group; the history stays. When no staff member of the school remains, the
    conversation locks itself in the same transaction."""
    async with translated_errors(), pool.acquire() as conn, conn.transaction():
        facts = (await lock_conversations(conn, [conv_id])).get(conv_id)
        if facts is None:
            raise MessagingError(ErrorCode.NOT_FOUND)
        denial = authz.may_leave(facts, actor_id)
        if denial is not None:
            _raise(denial)
        await conn.execute(
            "UPDATE members SET left_at = now() WHERE conv = $1 AND user_id = $2",
            conv_id,
            actor_id,
        )
        people = await load_people(conn, facts.members)
        items = [
            Append(
                conv=conv_id,
                actor=actor_id,
                kind="member_removed",
                rule=accept,
                data={"user": actor_id},
            )
        ]
        if not facts.locked and authz.locks_after_leave(
            facts, actor_id, list(people.values()), facts.school
        ):
            items.append(
                Append(
                    conv=conv_id,
                    actor=SYSTEM_ACTOR,
                    kind="locked",
                    rule=accept,
                    data={"reason": "no_staff"},
                    sets_locked=True,
                )
            )
        return _only(await append_batch(conn, items))


@dataclass(frozen=True, slots=True)
class ReadMoved:
    seq: int
    # who is told with a `receipt`: the other members, none in a broadcast
    recipients: tuple[str, ...]


async def mark_read(pool: asyncpg.Pool, user_id: str, conv_id: str, seq: int) -> ReadMoved | None:
    """Move the read marker forward; None when it was already there or beyond."""
    async with translated_errors(), pool.acquire() as conn:
        row = await conn.fetchrow(
            """WITH c AS (SELECT id, last_seq, kind FROM conversations WHERE id = $1),
                    m AS (SELECT read_seq FROM members
                          WHERE conv = $1 AND user_id = $2 AND left_at IS NULL),
                    moved AS (
                        UPDATE members SET read_seq = $3 FROM c
                        WHERE members.conv = $1 AND members.user_id = $2
                          AND members.left_at IS NULL AND members.read_seq < $3
                          AND $3 <= c.last_seq
                        RETURNING 1)
               SELECT c.last_seq, c.kind, (SELECT read_seq FROM m) AS read_seq,
                      EXISTS (SELECT 1 FROM moved) AS moved,
                      ARRAY(SELECT user_id FROM members
                            WHERE conv = $1 AND left_at IS NULL AND user_id <> $2) AS others
               FROM c""",
            conv_id,
            user_id,
            seq,
        )
        if row is not None and row["moved"]:
            await cancel_read(conn, user_id, conv_id, seq)
    if row is None or row["read_seq"] is None:
        raise MessagingError(ErrorCode.NOT_FOUND)
    if seq > row["last_seq"]:
        raise MessagingError(ErrorCode.INVALID, "read_beyond_last")
    if not row["moved"]:
        return None
    recipients = () if row["kind"] == ConvKind.BROADCAST.value else tuple(row["others"])
    return ReadMoved(seq=seq, recipients=recipients)


async def facts_of(conn: asyncpg.Connection, conv_id: str) -> ConvFacts | None:
    """The conversation's facts without locking it (for reads and ephemeral frames)."""
    row = await conn.fetchrow(
        """SELECT id, school, kind, locked, last_seq, owner,
                  ARRAY(SELECT user_id FROM members m WHERE m.conv = c.id AND m.left_at IS NULL)
                    AS members
           FROM conversations c WHERE id = $1""",
        conv_id,
    )
    if row is None:
        return None
    return ConvFacts(
        id=row["id"],
        school=row["school"],
        kind=ConvKind(row["kind"]),
        locked=row["locked"],
        last_seq=row["last_seq"],
        owner=row["owner"],
        members=frozenset(row["members"]),
    )


async def conversations_of(conn: asyncpg.Connection, user_id: str) -> list[dict[str, Any]]:
    """The conversation list of `ready` and GET /api/conversations. A broadcast lists its sender
    alone as its members, to everyone: its recipients never learn of each other, and its sender
    finds the (possibly 100,000) recipients in GET /api/broadcasts/{id}, not in every `ready`."""
    rows = await conn.fetch(
        """SELECT c.id, c.school, c.kind, c.title, c.last_seq, c.locked, c.owner, m.read_seq,
                  CASE WHEN c.kind = 'broadcast' THEN ARRAY[c.owner]
                       ELSE ARRAY(SELECT o.user_id FROM members o
                                  WHERE o.conv = c.id AND o.left_at IS NULL ORDER BY o.user_id)
                  END AS members,
                  (SELECT count(*) FROM events e
                   WHERE e.conv = c.id AND e.seq > m.read_seq AND e.kind = 'message'
                     AND e.actor <> $1) AS unread
           FROM members m JOIN conversations c ON c.id = m.conv
           WHERE m.user_id = $1 AND m.left_at IS NULL
           ORDER BY c.id""",
        user_id,
    )
    listed = [
        {
            "conv": r["id"],
            "school": r["school"],
            "kind": r["kind"],
            "title": r["title"],
            "members": list(r["members"]),
            "last_seq": r["last_seq"],
            "read_seq": r["read_seq"],
            "unread": r["unread"],
            "locked": r["locked"],
        }
        for r in rows
    ]
    await add_availability(conn, user_id, listed)
    return listed
