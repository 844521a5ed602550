"""Uploads that no message used: deleted, rows and files, once they are old enough.

Meant for the worker process (`messaging worker`), every few minutes:

    deleted = await delete_orphans(pool, storage, timedelta(hours=24))
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import structlog

from messaging.attachments.storage import Storage, preview_key
from messaging.store import attachments as rows
from messaging.store.pool import translated_errors

log = structlog.get_logger(__name__)

ORPHAN_AGE = timedelta(hours=24)


async def delete_orphans(
    pool: asyncpg.Pool, storage: Storage, older_than: timedelta = ORPHAN_AGE
) -> int:
    """Delete the uploads created more than `older_than` ago that no message carries, and their
    files when no other upload shares them; returns how many uploads went."""
    cutoff = datetime.now(UTC) - older_than
    total = 0
    while keys := await rows.orphan_keys(pool, cutoff):
        deleted_now = 0
        for key in keys:
            async with translated_errors(), pool.acquire() as conn, conn.transaction():
                deleted, unreferenced = await rows.delete_orphans_of(conn, key, cutoff)
                if unreferenced:
                    # before the commit, under the key's lock: an upload of the same content
                    # waits, then finds the file gone and stores it again
                    await storage.delete(key)
                    await storage.delete(preview_key(key))
            deleted_now += deleted
        total += deleted_now
        if deleted_now == 0:  # what is left is locked by a send in progress: next time
            break
    if total:
        log.info("attachments_orphans_deleted", count=total)
    return total
