"""Uploads through a real gateway: every file of the corpus, streaming limits, multipart."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import asyncpg
import pytest
from PIL import Image

from messaging.gateway.auth import mint_token
from tests.attachments import corpus
from tests.attachments.conftest import http
from tests.attachments.corpus import CORPUS, Case, MiB
from tests.attachments.support import stream_upload
from tests.rosters import SchoolIds
from tests.servers import Gateway

pytestmark = pytest.mark.asyncio(loop_scope="session")


def stored_files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


async def row_count(pool: asyncpg.Pool) -> int:
    async with pool.acquire() as db:
        return int(await db.fetchval("SELECT count(*) FROM attachments"))


@pytest.mark.parametrize("case", CORPUS, ids=lambda c: c.label)
async def test_corpus_file_is_kept_or_refused_with_its_reason(
    gateway: Gateway,
    secret: str,
    school: SchoolIds,
    folder: Path,
    pool: asyncpg.Pool,
    case: Case,
) -> None:
    """Each corpus file is kept as its real type, or refused with its status and reason, and a
    refused one leaves no file and no row behind."""
    data = case.make()
    files_before, rows_before = stored_files(folder), await row_count(pool)
    async with http(gateway, secret, school.parent) as client:
        r = await client.post(
            "/api/attachments", content=data, headers={"X-Filename": case.filename}
        )
    if case.kept:
        assert r.status_code == 201, r.text
        assert r.json()["type"] == case.type
        return
    assert r.status_code == case.status, r.text
    error = r.json()["error"]
    assert error["code"] == {400: "invalid", 413: "too_large", 415: "unsupported_type"}[case.status]
    assert error["message"]
    assert stored_files(folder) == files_before
    assert await row_count(pool) == rows_before


async def test_refusal_message_reads_in_the_parents_language(
    gateway: Gateway, secret: str, school: SchoolIds
) -> None:
    """A refused file is explained in the uploader's own language."""
    async with (
        http(gateway, secret, school.parent) as fr,
        http(gateway, secret, school.parent_en) as en,
    ):
        r_fr = await fr.post("/api/attachments", content=corpus.HTML)
        r_en = await en.post("/api/attachments", content=corpus.HTML)
    assert r_fr.json()["error"]["message"] == (
        "Ce fichier n'est pas accepté : seuls les JPEG, PNG, PDF et Word sont permis."
    )
    assert "only JPEG, PNG, PDF and Word" in r_en.json()["error"]["message"]


async def test_multipart_upload_is_accepted_with_its_file_name(
    gateway: Gateway, secret: str, school: SchoolIds
) -> None:
    """A multipart body with the file in field `file` is stored under its sanitised name."""
    data = corpus.pdf_text()
    async with http(gateway, secret, school.teacher) as client:
        r = await client.post(
            "/api/attachments",
            data={"note": "ignored"},
            files={"file": ("../../Sortie\u202e 3e A.pdf", data, "text/html")},
        )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["type"] == "application/pdf"
    assert body["name"] == "Sortie 3e A.pdf"
    assert body["size"] == len(data)
    assert len(body["sha256"]) == 64


async def test_raw_upload_name_comes_from_x_filename_percent_encoded(
    gateway: Gateway, secret: str, school: SchoolIds
) -> None:
    """X-Filename may carry UTF-8 percent-encoded; a name whose extension lies gets the real
    type's extension."""
    async with http(gateway, secret, school.parent) as client:
        r = await client.post(
            "/api/attachments",
            content=corpus.jpeg(),
            headers={"X-Filename": "%C3%A9l%C3%A8ve.pdf", "Content-Type": "application/pdf"},
        )
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "élève.pdf.jpg"
    assert r.json()["type"] == "image/jpeg"


async def test_declared_length_over_the_limit_is_refused_before_reading(
    gateway: Gateway, secret: str, school: SchoolIds
) -> None:
    """A Content-Length beyond 20 MiB gets 413 without the body being sent at all."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    token = mint_token(secret, school.parent)
    writer.write(
        (
            "POST /api/attachments HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {token}\r\nContent-Length: {20 * MiB + 1}\r\n"
            "Expect: 100-continue\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.read(4096), 10)
    writer.close()
    assert head.startswith(b"HTTP/1.1 413"), head


async def test_streamed_body_over_the_limit_is_cut_off_at_20_mib(
    gateway: Gateway, secret: str, school: SchoolIds
) -> None:
    """A chunked body that would go on for 100 MiB is refused with 413 once 20 MiB have
    passed, long before the rest is sent."""
    cut = await stream_upload(
        gateway.port,
        mint_token(secret, school.parent),
        chunks=100,
        chunk=b"\0" * MiB,
        first=corpus.pdf_text(),
    )
    assert cut.status == 413, cut
    assert b"too_large" in cut.body
    assert cut.sent < 40 * MiB, cut.sent


async def test_executable_is_refused_on_its_first_bytes(
    gateway: Gateway, secret: str, school: SchoolIds
) -> None:
    """A body that starts like an executable is refused with 415 before the rest is read."""
    cut = await stream_upload(
        gateway.port,
        mint_token(secret, school.parent),
        chunks=100,
        chunk=b"\0" * MiB,
        first=corpus.PE_EXECUTABLE,
    )
    assert cut.status == 415, cut
    assert cut.sent < 20 * MiB, cut.sent


async def test_multipart_with_thousands_of_parts_is_refused(
    gateway: Gateway, secret: str, school: SchoolIds
) -> None:
    """Thousands of parts are refused as malformed after the first few."""
    boundary = "xyzzy"
    part = f'--{boundary}\r\nContent-Disposition: form-data; name="f"\r\n\r\nx\r\n'
    body = (part * 5000 + f"--{boundary}--\r\n").encode()
    async with http(gateway, secret, school.parent) as client:
        r = await client.post(
            "/api/attachments",
            content=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid"


async def test_multipart_with_an_enormous_part_header_is_refused(
    gateway: Gateway, secret: str, school: SchoolIds
) -> None:
    """A part header of a megabyte is refused as malformed."""
    boundary = "xyzzy"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.pdf"\r\n'
            f"X-Padding: {'a' * MiB}\r\n\r\n"
        ).encode()
        + corpus.pdf_text()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    async with http(gateway, secret, school.parent) as client:
        r = await client.post(
            "/api/attachments",
            content=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
    assert r.status_code == 400, r.text


async def test_multipart_without_a_file_field_is_refused(
    gateway: Gateway, secret: str, school: SchoolIds
) -> None:
    """A form with no `file` field answers 400 saying no file was received."""
    async with http(gateway, secret, school.parent) as client:
        r = await client.post("/api/attachments", files={"document": ("a.pdf", b"%PDF-1.4")})
    assert r.status_code == 400
    assert r.json()["error"]["message"].startswith("Aucun fichier")


async def test_jpeg_is_stored_without_metadata_and_upright(
    gateway: Gateway, secret: str, school: SchoolIds
) -> None:
    """A GPS-tagged, rotated JPEG with a comment and XMP comes back with no metadata at all,
    its pixels turned upright."""
    async with http(gateway, secret, school.parent) as client:
        for make in (corpus.jpeg_with_gps, corpus.jpeg_rotated):
            up = (await client.post("/api/attachments", content=make())).json()
            r = await client.get(f"/api/attachments/{up['id']}")
            assert r.status_code == 200
            cleaned = r.content
            for marker in (b"Exif", b"GPS", b"xmpmeta", b"adobe:ns:meta", corpus.GPS_COMMENT):
                assert marker not in cleaned
            img = Image.open(io.BytesIO(cleaned))
            assert not img.getexif()
            assert {"exif", "xmp", "comment", "icc_profile"}.isdisjoint(img.info)
            expected = (48, 64) if make is corpus.jpeg_rotated else (64, 48)
            assert img.size == expected
            assert up["size"] == len(cleaned)


async def test_png_text_chunks_and_polyglot_tails_are_gone(
    gateway: Gateway, secret: str, school: SchoolIds
) -> None:
    """A PNG keeps only its image chunks; a ZIP glued after a JPEG does not survive."""
    async with http(gateway, secret, school.parent) as client:
        up = (await client.post("/api/attachments", content=corpus.png_with_text())).json()
        cleaned = (await client.get(f"/api/attachments/{up['id']}")).content
        chunks = png_chunk_types(cleaned)
        assert set(chunks) <= {b"IHDR", b"IDAT", b"IEND", b"PLTE", b"tRNS"}, chunks
        assert b"lieu secret" not in cleaned and b"<script>" not in cleaned
        up = (await client.post("/api/attachments", content=corpus.jpeg() + corpus.docx())).json()
        cleaned = (await client.get(f"/api/attachments/{up['id']}")).content
        assert b"PK\x03\x04" not in cleaned


def png_chunk_types(data: bytes) -> list[bytes]:
    types, at = [], 8
    while at < len(data):
        length = int.from_bytes(data[at : at + 4], "big")
        types.append(data[at + 4 : at + 8])
        at += 12 + length
    return types
