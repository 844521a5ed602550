"""The upload pipeline: receive -> size and type -> content checks -> virus scan -> store -> row.

Every step that refuses leaves nothing behind: the received file and its cleaned copy live in
the spool folder until the end of the request and are deleted whatever happens. CPU-heavy work
(Pillow, pypdf, the ZIP expansion) runs in worker threads, a few at a time, so that the event
loop keeps serving sockets and memory stays bounded however many uploads arrive at once.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import tempfile
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import anyio
import asyncpg
import structlog

from messaging.attachments import policy
from messaging.attachments.inspect import Checked, Refused, check_file
from messaging.attachments.policy import FileType, Limits, Refusal
from messaging.attachments.receive import (
    Received,
    multipart_boundary,
    receive_multipart,
    receive_raw,
)
from messaging.attachments.scan import Scanner, Verdict
from messaging.attachments.storage import Storage, content_key, open_storage, preview_key
from messaging.config import Settings
from messaging.errors import MessagingError
from messaging.store import attachments as rows

log = structlog.get_logger(__name__)


class UploadRefused(MessagingError):
    """A refused upload. `body_unread`: the refusal came before the end of the body;
    `body_started`: some of the body had been read by then."""

    def __init__(self, refusal: Refusal, *, body_unread: bool, body_started: bool = True) -> None:
        super().__init__(
            refusal.code, refusal.reason, max_mib=policy.DEFAULT_LIMITS.max_bytes >> 20
        )
        self.body_unread = body_unread
        self.body_started = body_started


@dataclass(frozen=True, slots=True)
class Upload:
    """An upload request as the HTTP layer saw it."""

    owner: str
    body: AsyncIterator[bytes]
    content_type: str | None
    content_length: str | None
    name: str | None


class AttachmentService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        storage: Storage,
        scanner: Scanner | None,
        limits: Limits = policy.DEFAULT_LIMITS,
        *,
        checks_at_once: int = 2,
    ) -> None:
        self.pool = pool
        self.storage = storage
        self.scanner = scanner
        self.limits = limits
        # Checks run on a few threads of their own rather than on the default pool: the memory
        # a thread's parser frees goes back to that thread's malloc arena, so the fewer threads
        # touch large buffers, the less memory the process keeps (see `_release_memory`).
        self._checks = ThreadPoolExecutor(checks_at_once, thread_name_prefix="attachment-check")
        # a decoded image takes width x height x 4 bytes, twice: one at a time
        self._images = anyio.CapacityLimiter(1)

    @classmethod
    def from_settings(cls, settings: Settings, pool: asyncpg.Pool) -> AttachmentService:
        scanner = Scanner(settings.clamd_url) if settings.clamd_url else None
        return cls(pool, open_storage(settings.attachment_store()), scanner)

    async def upload(self, upload: Upload) -> rows.AttachmentRow:
        """Check and keep an upload; raises UploadRefused or MessagingError."""
        multipart = multipart_boundary(upload.content_type)
        refusal = policy.declared_length_refusal(
            upload.content_length, multipart is not None, self.limits
        )
        if refusal is not None:
            raise UploadRefused(refusal, body_unread=True, body_started=False)
        spool = self._spool_file()
        cleaned: Path | None = None
        try:
            received = await self._receive(upload, multipart, spool)
            checked = await self._check(spool, received)
            cleaned = checked.path if checked.path != spool else None
            return await self._keep(upload.owner, checked, received.name)
        finally:
            spool.unlink(missing_ok=True)
            if cleaned is not None:
                cleaned.unlink(missing_ok=True)

    def _spool_file(self) -> Path:
        self.storage.spool_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="upload-", dir=self.storage.spool_dir)
        os.close(fd)
        return Path(name)

    async def _receive(self, upload: Upload, boundary: bytes | None, spool: Path) -> Received:
        # Writes of one chunk at a time into a local file: they land in the page cache at once.
        with spool.open("wb") as out:
            try:
                if boundary is None:
                    received = await receive_raw(upload.body, out, self.limits, upload.name)
                else:
                    received = await receive_multipart(upload.body, boundary, out, self.limits)
            except Refused as exc:
                raise UploadRefused(exc.refusal, body_unread=True) from None
        refusal = policy.size_refusal(received.size, self.limits) or policy.sniff_refusal(
            received.head, complete=True
        )
        if refusal is not None:
            raise UploadRefused(refusal, body_unread=False)
        return received

    async def _check(self, spool: Path, received: Received) -> Checked:
        """Our own checks first: they refuse a decompression bomb from its header, where
        clamd would spend half a minute inflating it. Then the scan, of the bytes as sent."""
        ftype = policy.sniff(received.head)
        assert ftype is not None
        try:
            checked = await self._inspect(spool, ftype)
        except Refused as exc:
            log.info("attachment_refused", type=ftype.value, reason=exc.refusal.reason)
            raise UploadRefused(exc.refusal, body_unread=False) from None
        try:
            if self.scanner is not None and await self.scanner.scan(spool) is Verdict.INFECTED:
                raise UploadRefused(policy.INFECTED, body_unread=False)
        except BaseException:
            if checked.path != spool:
                checked.path.unlink(missing_ok=True)
            raise
        return checked

    async def _inspect(self, spool: Path, ftype: FileType) -> Checked:
        if ftype.is_image:
            async with self._images:
                return await self._in_thread(spool, ftype)
        return await self._in_thread(spool, ftype)

    async def _in_thread(self, spool: Path, ftype: FileType) -> Checked:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._checks, _check_and_release, spool, ftype, self.limits
        )

    async def _keep(self, owner: str, checked: Checked, name: str | None) -> rows.AttachmentRow:
        key = content_key(checked.sha256)
        row = rows.AttachmentRow(
            id=rows.new_attachment_id(),
            owner=owner,
            sha256=checked.sha256,
            size=checked.size,
            type=checked.type.value,
            name=policy.sanitize_name(name, checked.type, self.limits),
            storage_key=key,
            preview_key=preview_key(checked.sha256) if checked.preview else None,
        )
        # The row first, then the file: a cleanup that deletes the same content's file is
        # either done before the row exists, or sees the row and leaves the file.
        await rows.insert(self.pool, row)
        try:
            await self.storage.put(key, checked.path)
            if checked.preview is not None:
                await self.storage.put_bytes(preview_key(checked.sha256), checked.preview)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await rows.forget(self.pool, row.id)
            raise
        return row


def _check_and_release(spool: Path, ftype: FileType, limits: Limits) -> Checked:
    try:
        return check_file(spool, ftype, limits)
    finally:
        _release_memory()


def _load_malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError, TypeError):  # not glibc
        return None
    return trim


_MALLOC_TRIM = _load_malloc_trim()


def _release_memory() -> None:
    """Give the pages that a parser freed back to the system (glibc keeps them in its arenas,
    where the resident size of the process would only ever grow)."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
