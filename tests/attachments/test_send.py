"""Attachments in messages: who may attach what, who may download it, and how."""

from __future__ import annotations

import io
import secrets
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from PIL import Image

from tests.attachments import corpus
from tests.attachments.conftest import http, import_school
from tests.rosters import SchoolIds, make_school
from tests.servers import Client, Gateway, connect

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def upload(client: httpx.AsyncClient, data: bytes, name: str) -> dict[str, Any]:
    r = await client.post("/api/attachments", content=data, headers={"X-Filename": name})
    assert r.status_code == 201, r.text
    return dict(r.json())


async def direct(ws: Client, school: str, other: str) -> str:
    """A new conversation of two (a titled group: each test gets its own)."""
    title = f"Pièces jointes {secrets.token_hex(3)}"
    opened = await ws.request({"t": "open", "school": school, "members": [other], "title": title})
    assert opened["t"] == "ok", opened
    return str(opened["conv"])


async def test_message_lists_its_attachments_and_members_download_them(
    gateway: Gateway, secret: str, school: SchoolIds
) -> None:
    """The event lists id, name, type and size; the other member downloads the PDF and DOCX
    byte for byte; before the send only the uploader could."""
    pdf, docx = corpus.pdf_text("Sortie au musée"), corpus.docx()
    async with (
        http(gateway, secret, school.teacher) as teacher_http,
        http(gateway, secret, school.parent) as parent_http,
        connect(gateway, secret, school.teacher) as teacher,
        connect(gateway, secret, school.parent) as parent,
    ):
        a = await upload(teacher_http, pdf, "sortie.pdf")
        b = await upload(teacher_http, docx, "autorisation.docx")
        assert (await parent_http.get(f"/api/attachments/{a['id']}")).status_code == 404
        conv = await direct(teacher, school.school, school.parent)
        sent = await teacher.request(
            {"t": "send", "conv": conv, "cid": "m1", "body": "", "attachments": [a["id"], b["id"]]}
        )
        assert sent["t"] == "ok", sent
        await parent.wait_for(lambda c: any(e["kind"] == "message" for e in c.events))
        event = next(e for e in parent.events if e["kind"] == "message")
        assert event["attachments"] == [
            {"id": a["id"], "name": "sortie.pdf", "type": corpus.PDF, "size": len(pdf)},
            {"id": b["id"], "name": "autorisation.docx", "type": corpus.DOCX, "size": len(docx)},
        ]
        got_pdf = await parent_http.get(f"/api/attachments/{a['id']}")
        got_docx = await parent_http.get(f"/api/attachments/{b['id']}")
    assert got_pdf.status_code == 200 and got_pdf.content == pdf
    assert got_docx.status_code == 200 and got_docx.content == docx
    assert got_pdf.headers["content-type"] == corpus.PDF
    assert got_pdf.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in got_pdf.headers["content-security-policy"]
    assert got_pdf.headers["content-disposition"] == (
        "attachment; filename=\"sortie.pdf\"; filename*=UTF-8''sortie.pdf"
    )


async def test_non_members_get_not_found(gateway: Gateway, secret: str, school: SchoolIds) -> None:
    """A parent or teacher outside the conversation, or another school's principal, gets 404."""
    async with (
        http(gateway, secret, school.teacher) as teacher_http,
        connect(gateway, secret, school.teacher) as teacher,
    ):
        a = await upload(teacher_http, corpus.pdf_text(), "note.pdf")
        conv = await direct(teacher, school.school, school.parent)
        sent = await teacher.request(
            {"t": "send", "conv": conv, "cid": "nm", "body": "x", "attachments": [a["id"]]}
        )
        assert sent["t"] == "ok", sent
    for outsider in (school.parent_b, school.teacher_b, school.other_principal):
        async with http(gateway, secret, outsider) as client:
            assert (await client.get(f"/api/attachments/{a['id']}")).status_code == 404
            assert (await client.get(f"/api/attachments/{a['id']}/preview")).status_code == 404
    async with http(gateway, secret, school.parent) as client:
        assert (await client.get("/api/attachments/a_000000000000000000000000")).status_code == 404


async def test_someone_elses_upload_cannot_be_attached(
    gateway: Gateway, secret: str, school: SchoolIds
) -> None:
    """A send naming another person's upload is refused and appends nothing."""
    async with (
        http(gateway, secret, school.parent) as parent_http,
        connect(gateway, secret, school.teacher) as teacher,
    ):
        theirs = await upload(parent_http, corpus.jpeg(), "photo.jpg")
        conv = await direct(teacher, school.school, school.parent)
        refused = await teacher.request(
            {"t": "send", "conv": conv, "cid": "x", "body": "", "attachments": [theirs["id"]]}
        )
        assert refused["t"] == "error" and refused["code"] == "not_found", refused
        fetched = await teacher.request({"t": "fetch", "conv": conv})
        assert [e["kind"] for e in fetched["events"]] == ["created"]


async def test_eleven_attachments_are_refused(
    gateway: Gateway, secret: str, school: SchoolIds
) -> None:
    """At most 10 attachments per message: 11 are refused with too_large; 10 pass."""
    async with (
        http(gateway, secret, school.teacher) as teacher_http,
        connect(gateway, secret, school.teacher) as teacher,
    ):
        ids = [
            (await upload(teacher_http, corpus.png("L", (5 + i, 5)), f"p{i}.png"))["id"]
            for i in range(11)
        ]
        conv = await direct(teacher, school.school, school.parent)
        refused = await teacher.request(
            {"t": "send", "conv": conv, "cid": "11", "body": "", "attachments": ids}
        )
        assert refused["code"] == "too_large", refused
        ok = await teacher.request(
            {"t": "send", "conv": conv, "cid": "10", "body": "", "attachments": ids[:10]}
        )
        assert ok["t"] == "ok", ok


async def test_school_with_attachments_off_refuses_them(gateway: Gateway, secret: str) -> None:
    """With the school's switch off, uploads and sends with attachments get feature_disabled."""
    school = make_school()
    import_school(gateway, secret, school)
    async with (
        http(gateway, secret, school.teacher) as teacher_http,
        connect(gateway, secret, school.teacher) as teacher,
    ):
        kept = await upload(teacher_http, corpus.pdf_text(), "a.pdf")
        conv = await direct(teacher, school.school, school.parent)
        school.doc["schools"][0]["features"]["attachments"] = False
        school.doc["schools"][1]["features"]["attachments"] = False
        import_school(gateway, secret, school)
        r = await teacher_http.post("/api/attachments", content=corpus.pdf_text())
        assert r.status_code == 403 and r.json()["error"]["code"] == "feature_disabled"
        refused = await teacher.request(
            {"t": "send", "conv": conv, "cid": "off", "body": "", "attachments": [kept["id"]]}
        )
        assert refused["code"] == "feature_disabled", refused


async def test_deleted_message_takes_its_attachment_from_members(
    gateway: Gateway, secret: str, school: SchoolIds
) -> None:
    """Once its message is deleted, members get 404 for the file; the uploader keeps it."""
    async with (
        http(gateway, secret, school.teacher) as teacher_http,
        http(gateway, secret, school.parent) as parent_http,
        connect(gateway, secret, school.teacher) as teacher,
    ):
        a = await upload(teacher_http, corpus.pdf_text(), "retire.pdf")
        conv = await direct(teacher, school.school, school.parent)
        sent = await teacher.request(
            {"t": "send", "conv": conv, "cid": "del", "body": "", "attachments": [a["id"]]}
        )
        assert (await parent_http.get(f"/api/attachments/{a['id']}")).status_code == 200
        deleted = await teacher.request({"t": "delete", "conv": conv, "seq": sent["seq"]})
        assert deleted["t"] == "ok", deleted
        assert (await parent_http.get(f"/api/attachments/{a['id']}")).status_code == 404
        assert (await teacher_http.get(f"/api/attachments/{a['id']}")).status_code == 200


async def test_principal_downloads_through_the_audit_trail(
    gateway: Gateway, secret: str, school: SchoolIds, pool: asyncpg.Pool
) -> None:
    """The school's principal, not a member, downloads the file, and the read is recorded."""
    async with (
        http(gateway, secret, school.parent) as parent_http,
        connect(gateway, secret, school.parent) as parent,
    ):
        a = await upload(parent_http, corpus.pdf_text("Billet du médecin"), "billet.pdf")
        conv = await direct(parent, school.school, school.teacher)
        sent = await parent.request(
            {"t": "send", "conv": conv, "cid": "med", "body": "", "attachments": [a["id"]]}
        )
        assert sent["t"] == "ok", sent
    async with http(gateway, secret, school.principal) as principal:
        r = await principal.get(f"/api/attachments/{a['id']}")
    assert r.status_code == 200
    async with pool.acquire() as db:
        records = await db.fetch(
            "SELECT reader, conv, action, school FROM audit_reads WHERE conv = $1", conv
        )
    assert [dict(x) for x in records] == [
        {"reader": school.principal, "conv": conv, "action": "attachment", "school": school.school}
    ]


async def test_downloads_honour_byte_ranges(
    gateway: Gateway, secret: str, school: SchoolIds
) -> None:
    """One range (a-b, a-, -n) answers 206 with Content-Range; past the end answers 416; an
    If-Range that no longer matches answers the whole file."""
    data = corpus.pdf_text("Plages d'octets")
    async with http(gateway, secret, school.office) as client:
        a = await upload(client, data, "plages.pdf")
        url = f"/api/attachments/{a['id']}"
        size = len(data)
        r = await client.get(url, headers={"Range": "bytes=10-19"})
        assert r.status_code == 206 and r.content == data[10:20]
        assert r.headers["content-range"] == f"bytes 10-19/{size}"
        r = await client.get(url, headers={"Range": "bytes=-7"})
        assert r.status_code == 206 and r.content == data[-7:]
        r = await client.get(url, headers={"Range": f"bytes={size - 3}-"})
        assert r.content == data[-3:]
        r = await client.get(url, headers={"Range": f"bytes={size}-"})
        assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{size}"
        r = await client.get(url, headers={"Range": "bytes=0-0", "If-Range": '"stale"'})
        assert r.status_code == 200 and r.content == data
        etag = r.headers["etag"]
        r = await client.get(url, headers={"Range": "bytes=0-0", "If-Range": etag})
        assert r.status_code == 206 and r.content == data[:1]


async def test_previews_show_images_and_first_pdf_pages(
    gateway: Gateway, secret: str, school: SchoolIds
) -> None:
    """Images and PDFs get a small JPEG preview; Word files have none (404)."""
    async with http(gateway, secret, school.parent) as client:
        for data, name in ((corpus.jpeg((900, 600)), "grande.jpg"), (corpus.pdf_text(), "f.pdf")):
            a = await upload(client, data, name)
            r = await client.get(f"/api/attachments/{a['id']}/preview")
            assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
            thumb = Image.open(io.BytesIO(r.content))
            assert thumb.format == "JPEG" and max(thumb.size) <= 320
        a = await upload(client, corpus.docx(), "w.docx")
        assert (await client.get(f"/api/attachments/{a['id']}/preview")).status_code == 404


async def test_the_same_file_sent_twice_is_stored_once(
    gateway: Gateway, secret: str, school: SchoolIds, folder: Path
) -> None:
    """Two uploads of one file are two attachments over one stored file (by sha256)."""
    data = corpus.pdf_text("Deux fois le même fichier")
    async with http(gateway, secret, school.daycare) as client:
        first = await upload(client, data, "a.pdf")
        second = await upload(client, data, "b.pdf")
    assert first["id"] != second["id"] and first["sha256"] == second["sha256"]
    assert copies(folder, first["sha256"]) == 1
    assert copies(folder / "spool", "*") == 0


def copies(folder: Path, pattern: str) -> int:
    return len(list(folder.rglob(pattern)))
