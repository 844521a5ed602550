"""The local PostgreSQL and Redis servers that `make run` and the test suite start."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import psutil
import pytest
import redis

from messaging.devservices import (
    DevServiceError,
    LocalPostgres,
    LocalRedis,
    dev_postgres_datadir,
    free_port,
    start_postgres,
    start_redis,
)

session_loop = pytest.mark.asyncio(loop_scope="session")
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="only root switches accounts")


@pytest.fixture
def fresh_dir() -> Iterator[Path]:
    """A new empty directory under /tmp, removed after the test."""
    path = Path(tempfile.mkdtemp(prefix="messaging-devservices-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def _fetchval(dsn: str, sql: str) -> object:
    connection = await asyncpg.connect(dsn)
    try:
        return await connection.fetchval(sql)
    finally:
        await connection.close()


def _process_gone(pid: int) -> bool:
    """True when `pid` no longer exists, or exists only as a zombie."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _refuses_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


def test_free_port_is_bindable_and_below_the_ephemeral_range() -> None:
    """free_port returns distinct ports below 32768 that can be bound on 127.0.0.1."""
    ports = {free_port() for _ in range(5)}
    assert len(ports) == 5
    for port in ports:
        assert 1024 < port < 32768
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


@session_loop
async def test_app_and_owner_roles_connect_to_the_messaging_database(pg: LocalPostgres) -> None:
    """Both service roles log in to database messaging over TCP without a password."""
    assert await _fetchval(pg.app_dsn, "SELECT current_user") == "messaging_app"
    assert await _fetchval(pg.owner_dsn, "SELECT current_user") == "messaging_owner"
    assert await _fetchval(pg.app_dsn, "SELECT current_database()") == "messaging"
    assert await _fetchval(pg.admin_dsn, "SELECT 1") == 1


@session_loop
async def test_app_role_cannot_create_in_schema_public(pg: LocalPostgres) -> None:
    """The service's role gets no CREATE right on schema public."""
    connection = await asyncpg.connect(pg.app_dsn)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await connection.execute("CREATE TABLE app_may_not_create (id int)")
    finally:
        await connection.close()


@session_loop
async def test_owner_role_owns_schema_public(pg: LocalPostgres) -> None:
    """messaging_owner owns schema public and may create tables in it."""
    owner = "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'public'"
    assert await _fetchval(pg.owner_dsn, owner) == "messaging_owner"
    connection = await asyncpg.connect(pg.owner_dsn)
    try:
        transaction = connection.transaction()
        await transaction.start()
        await connection.execute("CREATE TABLE owner_may_create (id int)")
        await transaction.rollback()
    finally:
        await connection.close()


@session_loop
async def test_test_server_trades_durability_for_speed(pg: LocalPostgres) -> None:
    """A non-persistent server runs with fsync off and 200 connections, on 127.0.0.1 only."""
    assert await _fetchval(pg.admin_dsn, "SHOW fsync") == "off"
    assert await _fetchval(pg.admin_dsn, "SHOW max_connections") == "200"
    assert await _fetchval(pg.admin_dsn, "SHOW listen_addresses") == "127.0.0.1"
    assert await _fetchval(pg.admin_dsn, "SHOW unix_socket_directories") == ""


def test_second_server_on_a_running_datadir_is_refused(pg: LocalPostgres) -> None:
    """Starting PostgreSQL on a data directory whose server runs fails and names the PID."""
    with pytest.raises(DevServiceError, match=f"already running.*PID {pg.pid}"):
        start_postgres(pg.datadir, persistent=False)
    assert pg.running()


@session_loop
async def test_postgres_stop_ends_the_server_process(fresh_dir: Path) -> None:
    """stop() shuts the postmaster down, so its PID is gone and its port refuses connections."""
    server = await asyncio.to_thread(start_postgres, fresh_dir, persistent=False)
    try:
        assert await _fetchval(server.app_dsn, "SELECT 1") == 1
    finally:
        await asyncio.to_thread(server.stop)
    assert _process_gone(server.pid)
    assert not server.running()
    assert _refuses_connections(server.port)
    server.stop()  # idempotent


@session_loop
async def test_persistent_postgres_keeps_data_across_restarts(fresh_dir: Path) -> None:
    """A second start on the same persistent data directory sees the first one's data."""
    first = await asyncio.to_thread(start_postgres, fresh_dir, persistent=True)
    try:
        assert await _fetchval(first.admin_dsn, "SHOW fsync") == "on"
        connection = await asyncpg.connect(first.owner_dsn)
        try:
            await connection.execute("CREATE TABLE kept (note text)")
            await connection.execute("INSERT INTO kept VALUES ('still here')")
        finally:
            await connection.close()
    finally:
        await asyncio.to_thread(first.stop)

    second = await asyncio.to_thread(start_postgres, fresh_dir, persistent=True)
    try:
        assert await _fetchval(second.owner_dsn, "SELECT note FROM kept") == "still here"
        assert await _fetchval(second.app_dsn, "SELECT current_user") == "messaging_app"
    finally:
        await asyncio.to_thread(second.stop)


@session_loop
async def test_postgres_starts_despite_a_lockfile_naming_another_process(
    fresh_dir: Path,
) -> None:
    """A postmaster.pid left by a crash, whose PID was reused by another process, is removed."""
    first = await asyncio.to_thread(start_postgres, fresh_dir, persistent=True)
    await asyncio.to_thread(first.stop)
    lockfile = fresh_dir / "postmaster.pid"
    lockfile.write_text(f"{os.getpid()}\n{fresh_dir}\n0\n{first.port}\n\n127.0.0.1\n0 0\nready\n")

    second = await asyncio.to_thread(start_postgres, fresh_dir, persistent=True)
    try:
        assert await _fetchval(second.app_dsn, "SELECT 1") == 1
        assert lockfile.read_text().split()[0] == str(second.pid)
    finally:
        await asyncio.to_thread(second.stop)


@session_loop
async def test_persistent_postgres_recovers_after_a_crash(fresh_dir: Path) -> None:
    """After the postmaster is SIGKILLed, a new start on its data directory recovers the data."""
    first = await asyncio.to_thread(start_postgres, fresh_dir, persistent=True)
    try:
        connection = await asyncpg.connect(first.owner_dsn)
        try:
            await connection.execute(
                "CREATE TABLE survived (id int); INSERT INTO survived VALUES (7)"
            )
        finally:
            await connection.close()
        os.kill(first.pid, signal.SIGKILL)
    finally:
        await asyncio.to_thread(first.stop)  # after the kill, this only reaps the postmaster
    assert (fresh_dir / "postmaster.pid").exists()

    second = await asyncio.to_thread(start_postgres, fresh_dir, persistent=True)
    try:
        assert await _fetchval(second.owner_dsn, "SELECT id FROM survived") == 7
    finally:
        await asyncio.to_thread(second.stop)


def test_postgres_on_a_busy_port_fails_clearly(fresh_dir: Path) -> None:
    """Asking for a port that something else holds fails with an error naming the port."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(DevServiceError, match=f"could not listen on 127.0.0.1:{port}"):
            start_postgres(fresh_dir, port=port, persistent=False)


def test_redis_answers_ping(redis_server: LocalRedis) -> None:
    """The session's Redis answers PING at its URL."""
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    with redis.Redis.from_url(redis_server.url) as client:
        assert client.ping() is True


def test_redis_stop_ends_the_server_process(fresh_dir: Path) -> None:
    """stop() ends the Redis process, so its PID is gone and its port refuses connections."""
    server = start_redis(fresh_dir, persistent=False)
    try:
        assert not _process_gone(server.pid)
    finally:
        server.stop()
    assert _process_gone(server.pid)
    assert _refuses_connections(server.port)
    server.stop()  # idempotent


def test_redis_kill_ends_the_server_process_at_once(fresh_dir: Path) -> None:
    """kill() SIGKILLs Redis; a new server can then take the same port."""
    server = start_redis(fresh_dir, persistent=False)
    server.kill()
    assert _process_gone(server.pid)
    assert not server.running()
    again = start_redis(fresh_dir, port=server.port, persistent=False)
    try:
        with redis.Redis.from_url(again.url) as client:
            assert client.ping() is True
    finally:
        again.stop()


def test_test_redis_writes_nothing_to_disk(fresh_dir: Path) -> None:
    """A non-persistent Redis leaves no snapshot behind when stopped."""
    server = start_redis(fresh_dir, persistent=False)
    try:
        with redis.Redis.from_url(server.url) as client:
            client.set("key", "value")
    finally:
        server.stop()
    assert not (fresh_dir / "dump.rdb").exists()


def test_persistent_redis_keeps_data_across_restarts(fresh_dir: Path) -> None:
    """A persistent Redis saves on stop and a second start on its directory loads the data."""
    first = start_redis(fresh_dir, persistent=True)
    try:
        with redis.Redis.from_url(first.url) as client:
            client.set("greeting", "bonjour")
    finally:
        first.stop()
    second = start_redis(fresh_dir, persistent=True)
    try:
        with redis.Redis.from_url(second.url) as client:
            assert client.get("greeting") == b"bonjour"
    finally:
        second.stop()


def test_redis_on_a_busy_port_fails_clearly(fresh_dir: Path) -> None:
    """Asking Redis for a port that something else holds fails with an error naming the port."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(DevServiceError, match=f"could not listen on 127.0.0.1:{port}"):
            start_redis(fresh_dir, port=port, persistent=False)


@root_only
def test_dev_datadir_is_in_the_project_when_reachable(fresh_dir: Path) -> None:
    """A project the PostgreSQL account can traverse keeps its data in .data/postgres."""
    fresh_dir.chmod(0o755)
    assert dev_postgres_datadir(fresh_dir) == fresh_dir.resolve() / ".data" / "postgres"


@root_only
def test_dev_datadir_falls_back_to_var_tmp_when_unreachable(fresh_dir: Path) -> None:
    """A project under a directory closed to the PostgreSQL account gets a stable /var/tmp dir."""
    project = fresh_dir / "project"
    project.mkdir()
    fresh_dir.chmod(0o700)
    chosen = dev_postgres_datadir(project)
    assert chosen.parent == Path("/var/tmp")
    assert chosen.name.startswith("messaging-postgres-")
    assert dev_postgres_datadir(project) == chosen
