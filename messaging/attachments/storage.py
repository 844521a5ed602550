"""Where attachment bytes live: one small interface, a local folder and S3-compatible storage.

Keys are content addresses (`<sha256>`, and `<sha256>.preview` for a thumbnail), so the same
file sent twice is kept once and `put` is idempotent. Uploads are received in `spool_dir`: for
the folder, a folder inside it on the same file system, so that storing a file is a rename.

Guarantee: after `put` returns, `read` of that key yields exactly the bytes of the file; a
`delete` of a missing key is not an error.
"""

from __future__ import annotations

import abc
import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from botocore.exceptions import BotoCoreError, ClientError

from messaging.config import AttachmentStore
from messaging.errors import ErrorCode, MessagingError

CHUNK = 256 * 1024
_KEY = re.compile(r"[0-9a-f]{64}(\.preview)?")


def content_key(sha256: str) -> str:
    return sha256


def preview_key(sha256: str) -> str:
    return sha256 + ".preview"


def _checked(key: str) -> str:
    if not _KEY.fullmatch(key):
        raise ValueError("not a storage key")
    return key


class Storage(abc.ABC):
    spool_dir: Path

    @abc.abstractmethod
    async def put(self, key: str, path: Path) -> None:
        """Keep the file at `path` under `key`; `path` may be moved away (the caller deletes it
        if it is still there)."""

    @abc.abstractmethod
    async def put_bytes(self, key: str, data: bytes) -> None: ...

    @abc.abstractmethod
    async def exists(self, key: str) -> bool: ...

    @abc.abstractmethod
    def read(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes `start`..`end` (inclusive) of the object, in chunks."""

    @abc.abstractmethod
    async def delete(self, key: str) -> None: ...


def open_storage(store: AttachmentStore) -> Storage:
    if store.kind == "file":
        assert store.path is not None
        return FolderStorage(store.path)
    return S3Storage(store)


def _unavailable(exc: BaseException) -> MessagingError:
    err = MessagingError(ErrorCode.UNAVAILABLE, "storage_unavailable")
    err.__cause__ = exc
    return err


# A folder ---------------------------------------------------------------------------------------


class FolderStorage(Storage):
    """`root/ab/abcdef…`: two hex digits of fan-out keep folders small. Writes are atomic: a
    file is complete under its name or absent (fsync, then rename in the same folder)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.spool_dir = root / "spool"
        self.spool_dir.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / _checked(key)[:2] / key

    async def put(self, key: str, path: Path) -> None:
        try:
            await anyio.to_thread.run_sync(self._put, self._path(key), path)
        except OSError as exc:
            raise _unavailable(exc) from exc

    def _put(self, final: Path, path: Path) -> None:
        final.parent.mkdir(exist_ok=True)
        if final.exists():  # the same content is already kept
            return
        with path.open("rb") as f:
            os.fsync(f.fileno())
        try:
            os.replace(path, final)
        except OSError:  # another file system: copy beside the target, then rename
            with tempfile.NamedTemporaryFile(dir=final.parent, delete=False) as tmp:
                with path.open("rb") as src:
                    shutil.copyfileobj(src, tmp, CHUNK)
                tmp.flush()
                os.fsync(tmp.fileno())
            os.replace(tmp.name, final)
        _fsync_dir(final.parent)

    async def put_bytes(self, key: str, data: bytes) -> None:
        try:
            await anyio.to_thread.run_sync(self._put_bytes, self._path(key), data)
        except OSError as exc:
            raise _unavailable(exc) from exc

    def _put_bytes(self, final: Path, data: bytes) -> None:
        final.parent.mkdir(exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=final.parent, delete=False) as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp.name, final)

    async def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    async def read(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        try:
            f = await anyio.open_file(self._path(key), "rb")
        except OSError as exc:
            raise _unavailable(exc) from exc
        async with f:
            await f.seek(start)
            left = end - start + 1
            while left > 0:
                chunk = await f.read(min(CHUNK, left))
                if not chunk:
                    return
                left -= len(chunk)
                yield chunk

    async def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# S3-compatible object storage ----------------------------------------------------------------


class S3Storage(Storage):
    """One client per operation from a shared session (the session caches the service model):
    nothing to close at shutdown, and a failed connection never outlives its request."""

    def __init__(self, store: AttachmentStore, spool_dir: Path | None = None) -> None:
        self._store = store
        self._session: AioSession = get_session()
        self.spool_dir = spool_dir or Path(tempfile.gettempdir())
        self._config = AioConfig(
            s3={"addressing_style": "path" if store.endpoint else "auto"},
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=10,
            read_timeout=60,
        )

    def _key(self, key: str) -> str:
        prefix = self._store.prefix
        return f"{prefix}/{_checked(key)}" if prefix else _checked(key)

    def _client(self) -> Any:
        kwargs: dict[str, Any] = {
            "region_name": self._store.region,
            "endpoint_url": self._store.endpoint,
            "config": self._config,
        }
        if self._store.access_key is not None:
            kwargs["aws_access_key_id"] = self._store.access_key
            kwargs["aws_secret_access_key"] = self._store.secret_key
        return self._session.create_client("s3", **kwargs)

    async def put(self, key: str, path: Path) -> None:
        try:
            async with self._client() as s3:
                with path.open("rb") as body:
                    await s3.put_object(Bucket=self._store.bucket, Key=self._key(key), Body=body)
        except (BotoCoreError, ClientError, OSError) as exc:
            raise _unavailable(exc) from exc

    async def put_bytes(self, key: str, data: bytes) -> None:
        try:
            async with self._client() as s3:
                await s3.put_object(Bucket=self._store.bucket, Key=self._key(key), Body=data)
        except (BotoCoreError, ClientError, OSError) as exc:
            raise _unavailable(exc) from exc

    async def exists(self, key: str) -> bool:
        try:
            async with self._client() as s3:
                await s3.head_object(Bucket=self._store.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise _unavailable(exc) from exc
        except (BotoCoreError, OSError) as exc:
            raise _unavailable(exc) from exc
        return True

    async def read(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        try:
            async with self._client() as s3:
                obj = await s3.get_object(
                    Bucket=self._store.bucket, Key=self._key(key), Range=f"bytes={start}-{end}"
                )
                async with obj["Body"] as body:
                    while chunk := await body.read(CHUNK):
                        yield chunk
        except (BotoCoreError, ClientError, OSError) as exc:
            raise _unavailable(exc) from exc

    async def delete(self, key: str) -> None:
        try:
            async with self._client() as s3:
                await s3.delete_object(Bucket=self._store.bucket, Key=self._key(key))
        except (BotoCoreError, ClientError, OSError) as exc:
            raise _unavailable(exc) from exc

    async def ensure_bucket(self) -> None:
        """Create the bucket when it is missing (tests and development)."""
        async with self._client() as s3:
            with contextlib.suppress(ClientError):
                await s3.create_bucket(Bucket=self._store.bucket)
