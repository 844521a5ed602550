"""Attachment rows: uploads, the messages that carry them, who may read them, orphans.

An upload is one row (`attachments`); each message that carries it adds a row to
`attachment_uses` in the same transaction as the message's event (`log.append_batch`). Files
are shared by content (`storage_key` is the sha256), so a file is deleted only when no row
names it any more. Inserting a row and deleting an orphan's file both take a transaction-level
advisory lock on the storage key: a new upload of the same content never loses its file to a
cleanup that decided a moment earlier that nobody needed it.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from messaging.domain import authz
from messaging.domain.models import Person
from messaging.errors import ErrorCode, MessagingError
from messaging.store import audit
from messaging.store.pool import translated_errors


def new_attachment_id() -> str:
    return "a_" + secrets.token_hex(12)


@dataclass(frozen=True, slots=True)
class AttachmentRow:
    id: str
    owner: str
    sha256: str
    size: int
    type: str
    name: str
    storage_key: str
    preview_key: str | None

    def summary(self) -> dict[str, object]:
        """What a message event lists (PROTOCOL.md section 4)."""
        return {"id": self.id, "name": self.name, "type": self.type, "size": self.size}


_COLUMNS = "id, owner, sha256, size, type, name, storage_key, preview_key"


def _row(r: asyncpg.Record) -> AttachmentRow:
    return AttachmentRow(
        r["id"],
        r["owner"],
        r["sha256"],
        r["size"],
        r["type"],
        r["name"],
        r["storage_key"],
        r["preview_key"],
    )


async def _lock_key(conn: asyncpg.Connection, storage_key: str) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 724012))", storage_key)


async def insert(pool: asyncpg.Pool, row: AttachmentRow) -> None:
    """Record an upload; its file is put in storage after this returns (see module doc)."""
    async with translated_errors(), pool.acquire() as conn, conn.transaction():
        await _lock_key(conn, row.storage_key)
        await conn.execute(
            f"INSERT INTO attachments ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            row.id,
            row.owner,
            row.sha256,
            row.size,
            row.type,
            row.name,
            row.storage_key,
            row.preview_key,
        )


async def forget(pool: asyncpg.Pool, attachment_id: str) -> None:
    """Remove an upload whose file could not be stored."""
    async with translated_errors(), pool.acquire() as conn:
        await conn.execute(
            "DELETE FROM attachments WHERE id = $1 AND used_at IS NULL", attachment_id
        )


async def for_send(
    pool: asyncpg.Pool, user_id: str, conv_id: str, ids: Sequence[str]
) -> list[dict[str, object]]:
    """The `attachments` of a message event, once the sender may attach these files here: a
    member of the conversation, whose school has attachments on, and each file their own."""
    async with translated_errors(), pool.acquire() as conn:
        # the school's switch as messaging.store.roster reads it: on unless set to false
        allowed = await conn.fetchval(
            """SELECT s.active AND coalesce(s.features->'attachments', 'true') <> 'false'
               FROM conversations c
               JOIN members m ON m.conv = c.id AND m.user_id = $2 AND m.left_at IS NULL
               JOIN schools s ON s.id = c.school
               WHERE c.id = $1""",
            conv_id,
            user_id,
        )
        if allowed is None:
            raise MessagingError(ErrorCode.NOT_FOUND)
        if not allowed:
            raise MessagingError(ErrorCode.FEATURE_DISABLED, "attachments_disabled")
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM attachments WHERE id = ANY($1::text[]) AND owner = $2",
            list(ids),
            user_id,
        )
    found = {r["id"]: _row(r) for r in rows}
    if len(found) != len(ids):
        raise MessagingError(ErrorCode.NOT_FOUND, "attachment_unknown")
    return [found[i].summary() for i in ids]


async def owners_for_update(conn: asyncpg.Connection, ids: Sequence[str]) -> dict[str, str]:
    """Inside an append: lock these uploads (in id order) against the orphan cleanup and
    return their owners."""
    if not ids:
        return {}
    rows = await conn.fetch(
        "SELECT id, owner FROM attachments WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE",
        list(ids),
    )
    return {r["id"]: r["owner"] for r in rows}


async def record_uses(conn: asyncpg.Connection, uses: Sequence[tuple[str, str, int]]) -> None:
    """Inside an append: (attachment, conv, seq) of each committed message that carries one."""
    if not uses:
        return
    await conn.execute(
        """INSERT INTO attachment_uses (attachment, conv, seq)
           SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) ON CONFLICT DO NOTHING""",
        [u[0] for u in uses],
        [u[1] for u in uses],
        [u[2] for u in uses],
    )
    await conn.execute(
        """UPDATE attachments a SET used_at = now(),
                  school = COALESCE(a.school, (SELECT c.school FROM conversations c
                                               WHERE c.id = v.conv))
           FROM unnest($1::text[], $2::text[]) AS v(id, conv)
           WHERE a.id = v.id AND a.used_at IS NULL""",
        [u[0] for u in uses],
        [u[1] for u in uses],
    )


@dataclass(frozen=True, slots=True)
class Viewing:
    """An attachment and what the store knows of one viewer's relation to it."""

    row: AttachmentRow
    # a current member of a conversation where a message that is not withdrawn carries it
    member: bool
    # (conv, school) of each conversation that carries it, for the principal's audit path
    carriers: tuple[tuple[str, str], ...]


async def viewing(pool: asyncpg.Pool, attachment_id: str, viewer: str) -> Viewing | None:
    async with translated_errors(), pool.acquire() as conn:
        r = await conn.fetchrow(
            f"""SELECT {_COLUMNS},
                  EXISTS (SELECT 1 FROM attachment_uses u
                          JOIN members m ON m.conv = u.conv AND m.user_id = $2
                                        AND m.left_at IS NULL
                          WHERE u.attachment = a.id AND NOT EXISTS (
                              SELECT 1 FROM events w WHERE w.conv = u.conv AND w.target = u.seq
                                AND w.kind IN ('deleted', 'removed'))) AS member,
                  ARRAY(SELECT ARRAY[u.conv, c.school] FROM attachment_uses u
                        JOIN conversations c ON c.id = u.conv
                        WHERE u.attachment = a.id ORDER BY u.conv, u.seq) AS carriers
               FROM attachments a WHERE a.id = $1""",
            attachment_id,
            viewer,
        )
    if r is None:
        return None
    carriers = tuple((pair[0], pair[1]) for pair in r["carriers"])
    return Viewing(_row(r), r["member"], carriers)


def audited_carrier(viewing: Viewing, person: Person | None) -> tuple[str, str] | None:
    """The (conv, school) through which a principal may read the attachment, if any."""
    if person is None:
        return None
    for conv, school in viewing.carriers:
        if authz.may_oversee(person, school) is None:
            return conv, school
    return None


# Orphans ---------------------------------------------------------------------------------------


async def orphan_keys(pool: asyncpg.Pool, cutoff: datetime, limit: int = 1000) -> list[str]:
    """Storage keys of uploads created before `cutoff` that no message carries."""
    async with translated_errors(), pool.acquire() as conn:
        rows = await conn.fetch(
            """SELECT DISTINCT storage_key FROM attachments
               WHERE used_at IS NULL AND created_at < $1 LIMIT $2""",
            cutoff,
            limit,
        )
    return [r["storage_key"] for r in rows]


async def delete_orphans_of(
    conn: asyncpg.Connection, storage_key: str, cutoff: datetime
) -> tuple[int, bool]:
    """Inside the caller's transaction: lock the key, delete its orphan rows, and say how many
    went and whether any row still names the key. The caller deletes the file (and its
    preview) before committing when none does."""
    await _lock_key(conn, storage_key)
    deleted = await conn.fetchval(
        """WITH gone AS (
               DELETE FROM attachments WHERE id IN (
                   SELECT id FROM attachments
                   WHERE storage_key = $1 AND used_at IS NULL AND created_at < $2
                   ORDER BY id FOR UPDATE SKIP LOCKED)
               RETURNING 1)
           SELECT count(*) FROM gone""",
        storage_key,
        cutoff,
    )
    remaining = await conn.fetchval(
        "SELECT count(*) FROM attachments WHERE storage_key = $1", storage_key
    )
    return deleted, remaining == 0


async def record_audit_read(
    pool: asyncpg.Pool, *, school: str, reader: str, conv: str, address: str | None
) -> None:
    """The principal's download of an attachment, recorded in the audit trail before the file
    is sent (a failed transfer leaves a record; a transfer never goes unrecorded)."""
    async with translated_errors(), pool.acquire() as conn, conn.transaction():
        await audit.record_read(
            conn, school=school, reader=reader, action="attachment", conv=conv, address=address
        )


async def allowed_in_any(pool: asyncpg.Pool, schools: Sequence[str]) -> bool:
    """Whether one of these schools is active with attachments on (an upload is only useful to
    someone who may send it somewhere)."""
    async with translated_errors(), pool.acquire() as conn:
        found = await conn.fetchval(
            """SELECT EXISTS (SELECT 1 FROM schools WHERE id = ANY($1::text[]) AND active
                              AND coalesce(features->'attachments', 'true') <> 'false')""",
            list(schools),
        )
    return bool(found)
