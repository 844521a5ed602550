"""Fixtures of the attachment tests: clamd, SeaweedFS, and gateways configured for them.

gateway        clamd on, files in a folder (`folder`) that tests look into
s3_gateway     clamd on, files in SeaweedFS's S3 (bucket `attachments`)
blind_gateway  MESSAGING_CLAMD_URL names a port where nothing listens: scanning fails
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio

from messaging.config import parse_attachments_url
from messaging.devservices import free_port
from messaging.gateway.auth import mint_token
from messaging.store.pool import create_pool
from tests.attachments.support import Clamd, Seaweed, start_clamd, start_seaweed
from tests.rosters import SchoolIds, make_school, roster_doc
from tests.servers import Gateway, start_gateway

BUCKET = "attachments"


@pytest.fixture(scope="session")
def clamd() -> Iterator[Clamd]:
    folder = Path(tempfile.mkdtemp(prefix="messaging-test-clamd-", dir="/tmp"))
    try:
        server = start_clamd(folder)
        try:
            yield server
        finally:
            server.child.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def seaweed() -> Iterator[Seaweed]:
    folder = Path(tempfile.mkdtemp(prefix="messaging-test-weed-", dir="/tmp"))
    try:
        server = start_seaweed(folder)
        try:
            yield server
        finally:
            server.child.stop(grace=3.0)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where `gateway` keeps attachment files."""
    return tmp_path_factory.mktemp("attachment-store")


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("attachment-gateway-logs")


@pytest.fixture(scope="session")
def gateway(
    service_env: dict[str, str], clamd: Clamd, folder: Path, log_dir: Path
) -> Iterator[Gateway]:
    gw = start_gateway(
        service_env,
        log_dir,
        MESSAGING_CLAMD_URL=clamd.url,
        MESSAGING_ATTACHMENTS_URL=folder.as_uri(),
    )
    try:
        yield gw
    finally:
        gw.terminate()


@pytest.fixture(scope="session")
def s3_url(seaweed: Seaweed) -> str:
    return seaweed.url(BUCKET, prefix="ecole")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def s3_bucket(s3_url: str) -> str:
    from messaging.attachments.storage import S3Storage

    await S3Storage(parse_attachments_url(s3_url)).ensure_bucket()
    return s3_url


@pytest.fixture(scope="session")
def s3_gateway(
    service_env: dict[str, str], clamd: Clamd, s3_bucket: str, log_dir: Path
) -> Iterator[Gateway]:
    gw = start_gateway(
        service_env, log_dir, MESSAGING_CLAMD_URL=clamd.url, MESSAGING_ATTACHMENTS_URL=s3_bucket
    )
    try:
        yield gw
    finally:
        gw.terminate()


@pytest.fixture(scope="session")
def blind_gateway(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory, log_dir: Path
) -> Iterator[Gateway]:
    gw = start_gateway(
        service_env,
        log_dir,
        MESSAGING_CLAMD_URL=f"tcp://127.0.0.1:{free_port()}",
        MESSAGING_ATTACHMENTS_URL=tmp_path_factory.mktemp("blind-store").as_uri(),
    )
    try:
        yield gw
    finally:
        gw.terminate()


@pytest.fixture(scope="session")
def secret(service_env: dict[str, str]) -> str:
    return service_env["MESSAGING_JWT_SECRET"]


def import_school(gw: Gateway, secret: str, school: SchoolIds) -> None:
    response = httpx.post(
        f"{gw.url}/api/admin/roster",
        json=roster_doc(school),
        headers={"Authorization": f"Bearer {mint_token(secret, 'admin')}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text


@pytest.fixture(scope="session")
def school(gateway: Gateway, secret: str) -> SchoolIds:
    """One fictional school for the whole folder (uploads are per user, so tests do not
    collide); tests that change the school's switches make their own."""
    s = make_school()
    import_school(gateway, secret, s)
    return s


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def pool(service_env: dict[str, str]) -> AsyncIterator[asyncpg.Pool]:
    """The service's own role, as the gateway and the worker use it."""
    p = await create_pool(service_env["MESSAGING_DATABASE_URL"], min_size=1, max_size=4)
    try:
        yield p
    finally:
        await p.close()


def http(gw: Gateway, secret: str, user: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=gw.url,
        headers={"Authorization": f"Bearer {mint_token(secret, user)}"},
        timeout=60,
    )
