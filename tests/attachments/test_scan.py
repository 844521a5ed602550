"""The virus scan through a real clamd: a threat is refused, and no scan means no file."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from messaging.attachments.scan import Scanner, Verdict
from tests.attachments import corpus
from tests.attachments.conftest import http
from tests.attachments.support import Clamd
from tests.attachments.test_upload import row_count, stored_files
from tests.rosters import SchoolIds
from tests.servers import Gateway

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_eicar_inside_a_valid_pdf_is_refused(
    gateway: Gateway, secret: str, school: SchoolIds, folder: Path, pool: asyncpg.Pool
) -> None:
    """A PDF that passes every other check but carries the EICAR test string is refused as
    infected, and nothing is kept."""
    files, rows = stored_files(folder), await row_count(pool)
    async with http(gateway, secret, school.parent) as client:
        r = await client.post("/api/attachments", content=corpus.INFECTED.make())
    assert r.status_code == 415, r.text
    assert r.json()["error"]["message"].startswith("L'antivirus a détecté une menace")
    assert stored_files(folder) == files and await row_count(pool) == rows


async def test_clamd_unreachable_refuses_every_upload(
    blind_gateway: Gateway, secret: str, school: SchoolIds, pool: asyncpg.Pool
) -> None:
    """With scanning configured but clamd down, a clean file is refused with 503: nothing is
    kept unscanned."""
    rows = await row_count(pool)
    async with http(blind_gateway, secret, school.parent) as client:
        r = await client.post("/api/attachments", content=corpus.pdf_text())
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "unavailable"
    assert await row_count(pool) == rows


async def test_scanner_tells_clean_from_infected(clamd: Clamd, tmp_path: Path) -> None:
    """The INSTREAM client gets clamd's verdict for a clean and an infected file."""
    clean, infected = tmp_path / "clean.pdf", tmp_path / "infected.docx"
    clean.write_bytes(corpus.pdf_text())
    infected.write_bytes(corpus.docx(extra={"word/media/x.txt": corpus.EICAR}))
    scanner = Scanner(clamd.url)
    assert await scanner.scan(clean) is Verdict.CLEAN
    assert await scanner.scan(infected) is Verdict.INFECTED
