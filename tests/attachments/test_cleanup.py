"""Uploads that no message used are deleted after a day, rows and files."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from messaging.attachments.cleanup import delete_orphans
from messaging.attachments.storage import FolderStorage
from tests.attachments import corpus
from tests.attachments.conftest import http
from tests.attachments.test_send import direct, upload
from tests.rosters import SchoolIds
from tests.servers import Gateway, connect

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def age(pool: asyncpg.Pool, ids: list[str], hours: int) -> None:
    async with pool.acquire() as db:
        await db.execute(
            "UPDATE attachments SET created_at = now() - make_interval(hours => $2)"
            " WHERE id = ANY($1::text[])",
            ids,
            hours,
        )


async def exists(pool: asyncpg.Pool, attachment_id: str) -> bool:
    async with pool.acquire() as db:
        return bool(
            await db.fetchval("SELECT count(*) FROM attachments WHERE id = $1", attachment_id)
        )


async def test_orphans_older_than_a_day_are_deleted_with_their_files(
    gateway: Gateway, secret: str, school: SchoolIds, folder: Path, pool: asyncpg.Pool
) -> None:
    """An unused upload of two days ago goes, file and preview included; a recent one, a used
    one, and a file that another upload still shares stay."""
    shared = corpus.pdf_text("Partagé entre deux envois")
    async with (
        http(gateway, secret, school.teacher) as client,
        connect(gateway, secret, school.teacher) as teacher,
    ):
        old = await upload(client, corpus.jpeg((33, 17)), "vieux.jpg")
        recent = await upload(client, corpus.pdf_text("Récent"), "recent.pdf")
        used = await upload(client, corpus.pdf_text("Envoyé"), "envoye.pdf")
        twin_orphan = await upload(client, shared, "jumeau1.pdf")
        twin_used = await upload(client, shared, "jumeau2.pdf")
        conv = await direct(teacher, school.school, school.parent)
        sent = await teacher.request(
            {
                "t": "send",
                "conv": conv,
                "cid": "keep",
                "body": "",
                "attachments": [used["id"], twin_used["id"]],
            }
        )
        assert sent["t"] == "ok", sent
    await age(pool, [old["id"], used["id"], twin_orphan["id"], twin_used["id"]], hours=48)
    old_file = folder / old["sha256"][:2] / old["sha256"]
    assert old_file.is_file() and old_file.with_name(old["sha256"] + ".preview").is_file()

    deleted = await delete_orphans(pool, FolderStorage(folder), timedelta(hours=24))

    assert deleted == 2
    assert not await exists(pool, old["id"]) and not await exists(pool, twin_orphan["id"])
    assert not old_file.exists() and not old_file.with_name(old["sha256"] + ".preview").exists()
    for kept in (recent, used, twin_used):
        assert await exists(pool, kept["id"])
        assert (folder / kept["sha256"][:2] / kept["sha256"]).is_file()
    assert await delete_orphans(pool, FolderStorage(folder), timedelta(hours=24)) == 0
