"""Session-wide servers for the test suite: one PostgreSQL, one Redis, the schema, an env.

Every server runs from a fresh directory under /tmp (reachable by the unprivileged account that
PostgreSQL runs as, even when the clone lives under /root) and is stopped at the end of the
session, also when the session fails.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from messaging.devservices import LocalPostgres, LocalRedis, start_postgres, start_redis
from tests.rosters import SchoolIds, make_school
from tests.servers import Gateway, import_school, start_gateway

REPO_ROOT = Path(__file__).resolve().parent.parent
MIGRATE_TIMEOUT = 120


def _fresh_tmp_dir(prefix: str) -> Path:
    """A new empty directory directly under /tmp (mode 0700, owned by us until handed over)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


@pytest.fixture(scope="session")
def pg() -> Iterator[LocalPostgres]:
    """A non-persistent PostgreSQL server with roles messaging_owner/messaging_app."""
    datadir = _fresh_tmp_dir("messaging-test-pg-")
    try:
        server = start_postgres(datadir, persistent=False)
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(datadir, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[LocalRedis]:
    """A non-persistent Redis server."""
    datadir = _fresh_tmp_dir("messaging-test-redis-")
    try:
        server = start_redis(datadir, persistent=False)
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(datadir, ignore_errors=True)


@pytest.fixture(scope="session")
def schema(pg: LocalPostgres) -> LocalPostgres:
    """The `pg` server with the schema applied by `python -m messaging migrate`."""
    env = {
        **os.environ,
        "MESSAGING_MIGRATE_DATABASE_URL": pg.owner_dsn,
        "MESSAGING_DATABASE_URL": pg.app_dsn,
    }
    result = subprocess.run(
        [sys.executable, "-m", "messaging", "migrate"],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=MIGRATE_TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(
            f"`messaging migrate` failed with exit code {result.returncode}\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}",
            pytrace=False,
        )
    return pg


@pytest.fixture(scope="session")
def service_env(
    schema: LocalPostgres, redis_server: LocalRedis, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """MESSAGING_* variables for `messaging serve` subprocesses (merge them into os.environ)."""
    attachments = tmp_path_factory.mktemp("attachments")
    return {
        "MESSAGING_DATABASE_URL": schema.app_dsn,
        "MESSAGING_MIGRATE_DATABASE_URL": schema.owner_dsn,
        "MESSAGING_REDIS_URL": redis_server.url,
        "MESSAGING_JWT_SECRET": "test-secret-" + secrets.token_hex(16),
        "MESSAGING_ADMIN_SUBJECTS": "admin",
        "MESSAGING_DEV_LOGIN": "0",
        "MESSAGING_ATTACHMENTS_URL": attachments.as_uri(),
        "MESSAGING_LOG_FORMAT": "json",
    }


# Gateways shared by every end-to-end test ---------------------------------------------------------


@pytest.fixture(scope="session")
def gateways(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Gateway, Gateway]]:
    """Two `messaging serve` processes on the session's Postgres and Redis, never stopped by a
    test (tests that stop or kill a gateway start their own)."""
    log_dir = tmp_path_factory.mktemp("gateway-logs")
    first = start_gateway(service_env, log_dir)
    try:
        second = start_gateway(service_env, log_dir)
        try:
            yield first, second
        finally:
            second.terminate()
    finally:
        first.terminate()


@pytest.fixture(scope="session")
def secret(service_env: dict[str, str]) -> str:
    """The HS256 secret the gateways verify tokens with."""
    return service_env["MESSAGING_JWT_SECRET"]


@pytest.fixture
def school(gateways: tuple[Gateway, Gateway], secret: str) -> SchoolIds:
    """A fresh fictional school, imported through the admin API."""
    s = make_school()
    import_school(gateways[0], secret, s)
    return s
