"""The append-only event log: appending under the conversation's row lock, and reading it back.

Appending is one mechanism for every kind of event: `append_batch` runs inside a transaction the
caller owns, locks the conversations involved (in id order, so concurrent batches never
deadlock), loads the facts each item's rule needs, asks the rule, and inserts the accepted items
with consecutive seqs. Seqs therefore have no gaps and no reordering; a rule's refusal costs the
other items of the batch nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import asyncpg

from messaging.domain.authz import Denial
from messaging.domain.chain import GENESIS, event_hash
from messaging.domain.models import ConvFacts, ConvKind, TargetFacts
from messaging.errors import ErrorCode
from messaging.store.attachments import owners_for_update, record_uses
from messaging.store.notifications import plan_notifications

Rule = Callable[[ConvFacts, TargetFacts | None], Denial | None]

REDACTING_KINDS = ("deleted", "removed")


def accept(_conv: ConvFacts, _target: TargetFacts | None) -> Denial | None:
    """For events whose rule was already checked under the same lock."""
    return None


@dataclass(slots=True)
class Append:
    """One event to append. `rule` decides, from the facts under lock, whether it may be."""

    conv: str
    actor: str
    kind: str
    rule: Rule
    body: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    target: int | None = None
    cid: str | None = None
    # the conversation's lock state after this event (lock/unlock), None: unchanged
    sets_locked: bool | None = None
    # the connection whose request this is: it gets an `ok`, not the event
    origin: str | None = None
    # the language a message is written in ('fr' or 'en'), for text search
    lang: str | None = None
    # uploads this message carries: each must be the actor's own (checked under lock)
    attachments: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Appended:
    """A committed event, and who is to be told of it."""

    conv: str
    seq: int
    ts: datetime
    kind: str
    actor: str
    body: str | None
    data: dict[str, Any]
    target: int | None
    cid: str | None
    recipients: tuple[str, ...]
    conv_kind: ConvKind
    owner: str | None
    origin: str | None = None
    # true when `cid` had already been stored: nothing new was appended
    duplicate: bool = False


Outcome = Appended | Denial


async def append_batch(conn: asyncpg.Connection, items: Sequence[Append]) -> list[Outcome]:
    """Append `items` in order inside the caller's transaction; one outcome per item.

    Two round trips: `append_facts` locks the conversations and reads what the rules need,
    then one statement inserts the accepted events and moves the conversations' heads.
    """
    facts, chains, stored_cids, targets = await _lock_and_read(conn, items)
    # only messages with attachments pay this round trip (and the one of record_uses)
    owners = await owners_for_update(conn, sorted({a for i in items for a in i.attachments}))
    now = datetime.now(UTC)
    outcomes: list[Outcome] = []
    rows: list[tuple[Any, ...]] = []
    for item in items:
        outcome = _decide(item, facts, stored_cids, targets, owners)
        if isinstance(outcome, Appended) and not outcome.duplicate:
            prev, last_ts = chains[item.conv]
            ts = now if last_ts is None or now > last_ts else last_ts
            digest = event_hash(
                prev,
                conv=item.conv,
                seq=outcome.seq,
                kind=item.kind,
                actor=item.actor,
                body=item.body,
                data=item.data,
                target=item.target,
                cid=item.cid,
                lang=item.lang,
                ts=ts,
            )
            chains[item.conv] = (digest, ts)
            outcome = replace(outcome, ts=ts)
            rows.append(
                (
                    item.conv,
                    outcome.seq,
                    item.kind,
                    item.actor,
                    item.body,
                    item.data,
                    item.target,
                    item.cid,
                    item.lang,
                    ts,
                    digest,
                )
            )
        outcomes.append(outcome)
    stamped = {(r[0], r[1]): r[9] for r in rows}
    outcomes = [  # a repeated cid within the batch answers with the first one's timestamp
        replace(o, ts=stamped[(o.conv, o.seq)])
        if isinstance(o, Appended) and o.duplicate and (o.conv, o.seq) in stamped
        else o
        for o in outcomes
    ]
    if rows:
        changed = [f for f in facts.values() if f.id in {r[0] for r in rows}]
        await conn.execute(
            """WITH appended AS (
                   INSERT INTO events (conv, seq, kind, actor, body, data, target, cid, lang,
                                       ts, hash)
                   SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[],
                                        $5::text[], $6::jsonb[], $7::bigint[], $8::text[],
                                        $9::text[], $10::timestamptz[], $11::bytea[]))
               UPDATE conversations c SET last_seq = v.last_seq, locked = v.locked,
                      last_hash = v.last_hash, last_ts = v.last_ts
               FROM unnest($12::text[], $13::bigint[], $14::boolean[], $15::bytea[],
                           $16::timestamptz[]) AS v(id, last_seq, locked, last_hash, last_ts)
               WHERE c.id = v.id""",
            *map(list, zip(*rows, strict=True)),
            [f.id for f in changed],
            [f.last_seq for f in changed],
            [f.locked for f in changed],
            [chains[f.id][0] for f in changed],
            [chains[f.id][1] for f in changed],
        )
        await record_uses(
            conn,
            [
                (a, o.conv, o.seq)
                for item, o in zip(items, outcomes, strict=True)
                if isinstance(o, Appended) and not o.duplicate
                for a in item.attachments
            ],
        )
        await plan_notifications(
            conn, [o for o in outcomes if isinstance(o, Appended) and not o.duplicate], facts
        )
    return outcomes


_EPOCH = datetime.fromtimestamp(0).astimezone()


def _decide(
    item: Append,
    facts: dict[str, ConvFacts],
    stored_cids: dict[tuple[str, str, str], tuple[int, datetime, str | None]],
    targets: dict[tuple[str, int], TargetFacts],
    owners: dict[str, str],
) -> Outcome:
    conv = facts.get(item.conv)
    if conv is None:
        return Denial(ErrorCode.NOT_FOUND, "not_found")
    if item.cid is not None and (item.conv, item.actor, item.cid) in stored_cids:
        # A retry of what is already stored gets the original answer, whatever happened since
        # (a lock, say): the message was accepted then.
        seq, ts, body = stored_cids[(item.conv, item.actor, item.cid)]
        if body != item.body:
            return Denial(ErrorCode.CONFLICT, "cid_reused")
        return _appended(item, conv, seq, ts, duplicate=True)
    target = targets.get((item.conv, item.target)) if item.target is not None else None
    denial = item.rule(conv, target)
    if denial is not None:
        return denial
    if any(owners.get(a) != item.actor for a in item.attachments):
        return Denial(ErrorCode.NOT_FOUND, "attachment_unknown")
    seq = conv.last_seq + 1
    locked = conv.locked if item.sets_locked is None else item.sets_locked
    conv = replace(conv, last_seq=seq, locked=locked)
    facts[item.conv] = conv
    if item.cid is not None:
        stored_cids[(item.conv, item.actor, item.cid)] = (seq, _EPOCH, item.body)
    if item.target is not None and item.kind in REDACTING_KINDS and target is not None:
        targets[(item.conv, item.target)] = replace(target, redacted=True)
    return _appended(item, conv, seq, _EPOCH)


def _appended(
    item: Append, conv: ConvFacts, seq: int, ts: datetime, *, duplicate: bool = False
) -> Appended:
    return Appended(
        conv=item.conv,
        seq=seq,
        ts=ts,
        kind=item.kind,
        actor=item.actor,
        body=item.body,
        data=item.data,
        target=item.target,
        cid=item.cid,
        recipients=tuple(sorted(conv.members | {item.actor})),
        conv_kind=conv.kind,
        owner=conv.owner,
        origin=item.origin,
        duplicate=duplicate,
    )


async def lock_conversations(conn: asyncpg.Connection, conv_ids: list[str]) -> dict[str, ConvFacts]:
    """Lock these conversations' rows (in id order) and return their facts.

    FOR NO KEY UPDATE: appends to a conversation serialise, while rows that merely reference
    it (members, audit records) are not held up.
    """
    rows = await conn.fetch(
        "SELECT * FROM append_facts($1::text[], '{}', '{}', '{}', '{}', '{}')", conv_ids
    )
    return {r["id"]: _facts(r) for r in rows}


Chain = tuple[bytes, datetime | None]
StoredCids = dict[tuple[str, str, str], tuple[int, datetime, str | None]]


def _facts(r: asyncpg.Record) -> ConvFacts:
    return ConvFacts(
        id=r["id"],
        school=r["school"],
        kind=ConvKind(r["kind"]),
        locked=r["locked"],
        last_seq=r["last_seq"],
        owner=r["owner"],
        members=frozenset(r["members"]),
    )


async def _lock_and_read(
    conn: asyncpg.Connection, items: Sequence[Append]
) -> tuple[dict[str, ConvFacts], dict[str, Chain], StoredCids, dict[tuple[str, int], TargetFacts]]:
    with_cid = [i for i in items if i.cid is not None]
    with_target = [i for i in items if i.target is not None]
    rows = await conn.fetch(
        "SELECT * FROM append_facts($1::text[], $2::text[], $3::text[], $4::text[],"
        " $5::text[], $6::bigint[])",
        sorted({i.conv for i in items}),
        [i.conv for i in with_cid],
        [i.actor for i in with_cid],
        [i.cid for i in with_cid],
        [i.conv for i in with_target],
        [i.target for i in with_target],
    )
    facts: dict[str, ConvFacts] = {}
    chains: dict[str, Chain] = {}
    stored: StoredCids = {}
    targets: dict[tuple[str, int], TargetFacts] = {}
    for r in rows:
        conv = r["id"]
        facts[conv] = _facts(r)
        chains[conv] = (r["last_hash"] or GENESIS, r["last_ts"])
        for actor, cid, seq, ts, body in r["stored"] or ():
            stored[(conv, actor, cid)] = (seq, datetime.fromisoformat(ts), body)
        for seq, kind, actor, redacted in r["targets"] or ():
            targets[(conv, seq)] = TargetFacts(seq, kind, actor, redacted)
    return facts, chains, stored, targets


# Reading ----------------------------------------------------------------------------------------

_EVENT_COLUMNS = """e.conv, e.seq, e.kind, e.actor, e.body, e.data, e.target, e.cid, e.ts,
    (SELECT r.kind FROM events r WHERE r.conv = e.conv AND r.target = e.seq
       AND r.kind IN ('deleted', 'removed') ORDER BY r.seq LIMIT 1) AS redacted_by"""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    conv: str
    seq: int
    kind: str
    actor: str
    body: str | None
    data: dict[str, Any]
    target: int | None
    cid: str | None
    ts: datetime
    # 'deleted' or 'removed' when a later event withdrew this message
    redacted_by: str | None


def _stored(rows: Sequence[asyncpg.Record]) -> list[StoredEvent]:
    return [
        StoredEvent(
            r["conv"],
            r["seq"],
            r["kind"],
            r["actor"],
            r["body"],
            r["data"],
            r["target"],
            r["cid"],
            r["ts"],
            r["redacted_by"],
        )
        for r in rows
    ]


async def read_range(
    conn: asyncpg.Connection,
    conv: str,
    *,
    after: int | None,
    before: int | None,
    limit: int,
) -> tuple[list[StoredEvent], bool]:
    """Events of `conv` in ascending seq between the bounds; with neither, the newest `limit`.

    Returns the events and whether more lie beyond the page in the direction read.
    """
    if after is None and before is None:
        rows = await conn.fetch(
            f"SELECT {_EVENT_COLUMNS} FROM events e WHERE e.conv = $1 ORDER BY e.seq DESC LIMIT $2",
            conv,
            limit + 1,
        )
        more = len(rows) > limit
        return _stored(list(reversed(rows[:limit]))), more
    if after is not None:
        rows = await conn.fetch(
            f"SELECT {_EVENT_COLUMNS} FROM events e WHERE e.conv = $1 AND e.seq > $2"
            " AND e.seq < $3 ORDER BY e.seq LIMIT $4",
            conv,
            after,
            before if before is not None else 2**62,
            limit + 1,
        )
        return _stored(rows[:limit]), len(rows) > limit
    rows = await conn.fetch(
        f"SELECT {_EVENT_COLUMNS} FROM events e WHERE e.conv = $1 AND e.seq < $2"
        " ORDER BY e.seq DESC LIMIT $3",
        conv,
        before,
        limit + 1,
    )
    return _stored(list(reversed(rows[:limit]))), len(rows) > limit


async def read_since_many(
    conn: asyncpg.Connection, user_id: str, since: Sequence[tuple[str, int]], limit: int
) -> list[StoredEvent]:
    """For a resuming client: the events after each given seq, of conversations it is a member
    of, at most `limit` per conversation; one query however many conversations."""
    if not since:
        return []
    rows = await conn.fetch(
        f"""SELECT e.* FROM unnest($1::text[], $2::bigint[]) AS k(conv, after)
            JOIN members m ON m.conv = k.conv AND m.user_id = $3 AND m.left_at IS NULL
            CROSS JOIN LATERAL (
                SELECT {_EVENT_COLUMNS} FROM events e
                WHERE e.conv = k.conv AND e.seq > k.after ORDER BY e.seq LIMIT $4) e
            ORDER BY e.conv, e.seq""",
        [c for c, _ in since],
        [s for _, s in since],
        user_id,
        limit,
    )
    return _stored(rows)
