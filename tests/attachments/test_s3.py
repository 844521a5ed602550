"""The S3-compatible backend against a real server (SeaweedFS)."""

from __future__ import annotations

import hashlib

import pytest

from messaging.attachments.storage import S3Storage
from messaging.config import parse_attachments_url
from tests.attachments import corpus
from tests.attachments.conftest import http
from tests.rosters import SchoolIds
from tests.servers import Gateway

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_upload_and_download_through_s3(
    s3_gateway: Gateway, s3_bucket: str, secret: str, school: SchoolIds
) -> None:
    """A file uploaded to a gateway that stores in S3 is in the bucket under its sha256 and
    comes back byte for byte, whole or by range."""
    data = corpus.pdf_of_size(3 * corpus.MiB)
    async with http(s3_gateway, secret, school.teacher) as client:
        r = await client.post("/api/attachments", content=data, headers={"X-Filename": "s3.pdf"})
        assert r.status_code == 201, r.text
        up = r.json()
        whole = await client.get(f"/api/attachments/{up['id']}")
        part = await client.get(f"/api/attachments/{up['id']}", headers={"Range": "bytes=5-9"})
        preview = await client.get(f"/api/attachments/{up['id']}/preview")
    assert up["sha256"] == hashlib.sha256(data).hexdigest()
    assert whole.status_code == 200 and whole.content == data
    assert part.status_code == 206 and part.content == data[5:10]
    assert preview.status_code == 200
    storage = S3Storage(parse_attachments_url(s3_bucket))
    assert await storage.exists(up["sha256"])


async def test_s3_storage_round_trip(s3_bucket: str, tmp_path: object) -> None:
    """put, exists, read (ranges), put_bytes and delete on the S3 backend; deleting twice is
    no error."""
    storage = S3Storage(parse_attachments_url(s3_bucket))
    data = corpus.docx()
    key = hashlib.sha256(data).hexdigest()
    path = storage.spool_dir / f"s3-round-trip-{key[:8]}"
    path.write_bytes(data)
    try:
        await storage.put(key, path)
    finally:
        path.unlink()
    assert await storage.exists(key)
    assert b"".join([c async for c in storage.read(key, 0, len(data) - 1)]) == data
    assert b"".join([c async for c in storage.read(key, 3, 6)]) == data[3:7]
    await storage.put_bytes(key + ".preview", b"jpeg")
    assert b"".join([c async for c in storage.read(key + ".preview", 0, 99)]) == b"jpeg"
    for k in (key, key + ".preview"):
        await storage.delete(k)
        await storage.delete(k)
        assert not await storage.exists(k)
