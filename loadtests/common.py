"""The bench environment and the helpers every workload shares.

- `bench_env()`: a durable PostgreSQL (fsync and synchronous_commit on, PostgreSQL's defaults)
  and a Redis, each in a fresh folder under /tmp, the schema applied by `python -m messaging
  migrate`; gateway processes (`python -m messaging serve`) and the bare echo server are started
  on demand. Everything is stopped, and the folders removed, when the context ends, whatever the
  reason (after a failure the servers' logs are kept).
- `make_roster()` / `import_roster()`: a synthetic school with fictional people, imported through
  `POST /api/admin/roster` with an admin token.
- `CpuSampler`, `rss_bytes()`: CPU seconds and resident memory of processes (psutil).
- `summarize()`: percentiles.
- `machine_facts()`, `versions()`: what a result file records about where it was measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import json
import os
import platform
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import psutil

from messaging.devservices import LocalPostgres, LocalRedis, free_port, start_postgres, start_redis
from messaging.gateway.auth import mint_token

REPO_ROOT = Path(__file__).resolve().parent.parent
ADMIN_SUBJECT = "admin"
SCHOOL_ID = "bench-school"
PRINCIPAL_ID = "bench-principal"
OFFICE_ID = "bench-office"
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0


def log(message: str) -> None:
    """Progress lines go to stderr, figures to stdout."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Child processes
# --------------------------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Linux: this process gets `sig` when its parent dies, so nothing outlives a killed bench."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)


def raise_nofile() -> int:
    """Raise this process's open-file soft limit to its hard limit; returns the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _server_preexec() -> None:
    die_with_parent()
    raise_nofile()


@dataclass
class ServerProcess:
    """A gateway (`python -m messaging serve`) or the bare echo server."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def running(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM, wait, SIGKILL after `timeout`. Idempotent."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def _wait_http_ok(server: ServerProcess, path: str, timeout: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(
                f"{server.name} exited with code {server.proc.returncode} while starting:\n"
                f"{server.log_tail()}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(server.url + path, timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{server.name} not ready within {timeout:.0f}s:\n{server.log_tail()}")


# --------------------------------------------------------------------------------------------
# The environment
# --------------------------------------------------------------------------------------------


def _fresh_tmp_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


@dataclass
class BenchEnv:
    root: Path  #: logs, Redis files, attachments
    pg_dir: Path
    pg: LocalPostgres
    redis: LocalRedis
    secret: str
    env: dict[str, str]  #: MESSAGING_* variables of the gateways
    servers: list[ServerProcess] = field(default_factory=list)

    def start_gateway(self, name: str) -> ServerProcess:
        """One `python -m messaging serve --port P`, ready (`/readyz` answers 200)."""
        return self.start_gateways(name)[0]

    def start_gateways(self, *names: str) -> list[ServerProcess]:
        """Gateway processes started together (their imports take seconds), all ready."""
        servers = [
            self._launch(
                name,
                lambda port: [sys.executable, "-m", "messaging", "serve", "--port", str(port)],
            )
            for name in names
        ]
        for server in servers:
            _wait_http_ok(server, "/readyz")
        return servers

    def start_echo(self, name: str = "echo") -> ServerProcess:
        """The bare uvicorn + Starlette WebSocket echo server (loadtests/echo.py)."""
        server = self._launch(
            name, lambda port: [sys.executable, "-m", "loadtests.echo", "--port", str(port)]
        )
        _wait_http_ok(server, "/")
        return server

    def start_all(
        self, gateways: Sequence[str], floor: str | None, generic: Sequence[str]
    ) -> tuple[list[ServerProcess], ServerProcess | None, list[ServerProcess]]:
        """Gateways, the floor and the generic baseline launched together (imports take
        seconds each), then each waited for."""
        serve = [sys.executable, "-m", "messaging", "serve", "--port"]
        base = [sys.executable, "-m", "loadtests.baselines"]
        extra = ["--redis", self.redis.url, "--secret", self.secret]
        gws = [self._launch(n, lambda port: [*serve, str(port)]) for n in gateways]
        fl = (
            self._launch(floor, lambda port: [*base, "floor", "--port", str(port)])
            if floor
            else None
        )
        gen = [
            self._launch(n, lambda port: [*base, "generic", "--port", str(port), *extra])
            for n in generic
        ]
        for server in gws:
            _wait_http_ok(server, "/readyz")
        for server in [*([fl] if fl else []), *gen]:
            _wait_http_ok(server, "/")
        return gws, fl, gen

    def start_idle_servers(self) -> list[ServerProcess]:
        """W1's fresh servers, launched together: the bare echo, a gateway, the floor."""
        servers = [
            self._launch(
                "echo", lambda port: [sys.executable, "-m", "loadtests.echo", "--port", str(port)]
            ),
            self._launch(
                "gateway-idle",
                lambda port: [sys.executable, "-m", "messaging", "serve", "--port", str(port)],
            ),
            self._launch(
                "floor-idle",
                lambda port: [
                    sys.executable,
                    "-m",
                    "loadtests.baselines",
                    "floor",
                    "--port",
                    str(port),
                ],
            ),
        ]
        for server, path in zip(servers, ("/", "/readyz", "/"), strict=True):
            _wait_http_ok(server, path)
        return servers

    def start_floor(self, name: str = "floor") -> ServerProcess:
        """The `websockets` floor (loadtests/baselines.py)."""
        module = [sys.executable, "-m", "loadtests.baselines"]
        server = self._launch(name, lambda port: [*module, "floor", "--port", str(port)])
        _wait_http_ok(server, "/")
        return server

    def start_generic(self, *names: str) -> list[ServerProcess]:
        """Starlette + broadcaster on Redis (loadtests/baselines.py), one process per name."""
        module = [sys.executable, "-m", "loadtests.baselines", "generic"]
        extra = ["--redis", self.redis.url, "--secret", self.secret]
        servers = [
            self._launch(name, lambda port: [*module, "--port", str(port), *extra])
            for name in names
        ]
        for server in servers:
            _wait_http_ok(server, "/")
        return servers

    def _launch(self, name: str, command: Callable[[int], list[str]]) -> ServerProcess:
        port = free_port()
        log_path = self.root / f"{name}-{port}.log"
        with log_path.open("wb") as out:
            proc = subprocess.Popen(
                command(port),
                cwd=REPO_ROOT,
                env={**os.environ, **self.env},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_server_preexec,  # this process runs no threads
            )
        server = ServerProcess(name, port, proc, log_path)
        self.servers.append(server)
        return server

    def stop_servers(self, *servers: ServerProcess) -> None:
        """SIGTERM them all, then wait for each (a gateway drains its sockets first)."""
        for server in servers:
            if server.running():
                with contextlib.suppress(ProcessLookupError):
                    server.proc.send_signal(signal.SIGTERM)
        for server in servers:
            server.stop()
            with contextlib.suppress(ValueError):
                self.servers.remove(server)

    def stop_server(self, server: ServerProcess) -> None:
        self.stop_servers(server)

    def token(self, user: str, ttl_s: int = 6 * 3600) -> str:
        return mint_token(self.secret, user, ttl_s=ttl_s)

    def postgres_pids(self) -> list[int]:
        """The postmaster and all its children (backends, WAL writer, checkpointer ...)."""
        try:
            master = psutil.Process(self.pg.pid)
            return [master.pid, *(c.pid for c in master.children(recursive=True))]
        except psutil.Error:
            return []

    def server_groups(
        self, gateways: Sequence[ServerProcess]
    ) -> dict[str, Callable[[], list[int]]]:
        """CPU sampler groups for the server side of a workload."""
        groups: dict[str, Callable[[], list[int]]] = {
            gw.name: functools.partial(lambda pid: [pid], gw.pid) for gw in gateways
        }
        groups["postgres"] = self.postgres_pids
        groups["redis"] = lambda: [self.redis.pid]
        return groups


def _with_statement_stats(pg: LocalPostgres, pg_dir: Path) -> LocalPostgres:
    """Restart PostgreSQL with pg_stat_statements loaded: the bench counts the queries of a
    reconnection (W4) and of a commit from it. Without the module, the bench goes on without
    those counts."""

    async def preload() -> None:
        import asyncpg

        conn = await asyncpg.connect(pg.admin_dsn)
        try:
            await conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
        finally:
            await conn.close()

    async def create() -> None:
        import asyncpg

        conn = await asyncpg.connect(pg.admin_dsn)
        try:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        finally:
            await conn.close()

    try:
        asyncio.run(preload())
        pg.stop()
        pg = start_postgres(pg_dir, persistent=True)
        asyncio.run(create())
    except Exception as exc:
        log(f"pg_stat_statements unavailable ({type(exc).__name__}: {exc}); no query counts")
        if not pg.running():
            pg = start_postgres(pg_dir, persistent=True)
    return pg


def _migrate(pg: LocalPostgres) -> None:
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
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"`messaging migrate` failed with exit code {result.returncode}:\n"
            f"{result.stdout}\n{result.stderr}"
        )


@contextlib.contextmanager
def bench_env(*, statement_stats: bool = True) -> Iterator[BenchEnv]:
    """Durable PostgreSQL + Redis + schema; every process started through the env is stopped at
    the end. The folders are removed, except after a failure the servers' logs (their folder's
    path is printed)."""
    root = _fresh_tmp_dir("messaging-bench-")
    pg_dir = _fresh_tmp_dir("messaging-bench-pg-")
    pg: LocalPostgres | None = None
    redis: LocalRedis | None = None
    bench: BenchEnv | None = None
    failed = True
    try:
        log(f"starting PostgreSQL (durable: fsync=on, synchronous_commit=on) in {pg_dir}")
        pg = start_postgres(pg_dir, persistent=True)
        if statement_stats:
            pg = _with_statement_stats(pg, pg_dir)
        log("starting Redis")
        redis = start_redis(root / "redis", persistent=False)
        _migrate(pg)
        _enable_wal_timing(pg.admin_dsn)
        attachments = root / "attachments"
        attachments.mkdir()
        secret = "bench-secret-" + secrets.token_hex(24)
        env = {
            "MESSAGING_DATABASE_URL": pg.app_dsn,
            "MESSAGING_MIGRATE_DATABASE_URL": pg.owner_dsn,
            "MESSAGING_REDIS_URL": redis.url,
            "MESSAGING_JWT_SECRET": secret,
            "MESSAGING_ADMIN_SUBJECTS": ADMIN_SUBJECT,
            "MESSAGING_LOG_FORMAT": "json",
            "MESSAGING_DB_POOL_MAX": "20",
            "MESSAGING_DEV_LOGIN": "0",
            "MESSAGING_ATTACHMENTS_URL": attachments.as_uri(),
        }
        bench = BenchEnv(root, pg_dir, pg, redis, secret, env)
        yield bench
        failed = False
    finally:
        if bench is not None:
            with contextlib.suppress(Exception):
                bench.stop_servers(*bench.servers)
        if redis is not None:
            with contextlib.suppress(Exception):
                redis.stop()
        if pg is not None:
            try:
                pg.stop()
            except Exception as exc:
                log(f"PostgreSQL did not stop cleanly: {exc}")
        if failed:
            # keep the logs (small), not the database
            with contextlib.suppress(OSError):
                shutil.copyfile(pg_dir / "postgres.log", root / "postgres.log")
            log(f"run failed: the servers' logs are kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(pg_dir, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Roster
# --------------------------------------------------------------------------------------------

_FIRST = (
    "Camille", "Alexis", "Dominique", "Frédérique", "Gabriel", "Jade", "Léo", "Maëlle", "Noé",
    "Rosalie", "Samuel", "Zoé", "Émile", "Florence", "Hugo", "Inès", "Jules", "Loïc", "Mila",
    "Olivier", "Rémi", "Sarah", "Thomas", "Youssef",
)  # fmt: skip
_LAST = (
    "Fictif", "Imaginaire", "Inventé", "Fictive", "Songeur", "Chimère", "Mirage", "Utopie",
    "Fable", "Conte", "Légende", "Rêverie",
)  # fmt: skip


def fictional_name(i: int) -> str:
    return f"{_FIRST[i % len(_FIRST)]} {_LAST[(i // len(_FIRST)) % len(_LAST)]}"


@dataclass(frozen=True)
class Roster:
    """One school: teacher i teaches group i; parent j has one child in group j % teachers, so
    teacher i and parent i (i < teachers) may talk."""

    school: str
    teachers: tuple[str, ...]
    parents: tuple[str, ...]
    docs: tuple[dict[str, Any], ...]  #: import these in order


def teacher_id(i: int) -> str:
    return f"bt-{i:05d}"


def parent_id(i: int) -> str:
    return f"bp-{i:05d}"


def make_roster(teachers: int, parents: int, *, chunk: int = 5_000) -> Roster:
    """A roster document split in chunks of at most `chunk` parents (the first chunk carries
    the school, its groups and its staff; later ones reference them)."""
    school = SCHOOL_ID
    groups = [
        {"id": f"bg-{i:05d}", "school": school, "name": f"Groupe {i}", "grade": 1 + i % 6}
        for i in range(teachers)
    ]
    staff = [
        {
            "id": teacher_id(i),
            "name": fictional_name(i),
            "email": f"{teacher_id(i)}@example.org",
            "locale": "fr",
            "roles": [{"school": school, "role": "teacher", "groups": [f"bg-{i:05d}"]}],
        }
        for i in range(teachers)
    ]
    staff += [
        {
            "id": PRINCIPAL_ID,
            "name": "Direction Fictive",
            "locale": "fr",
            "roles": [{"school": school, "role": "principal"}],
        },
        {
            "id": OFFICE_ID,
            "name": "Secrétariat Fictif",
            "locale": "fr",
            "roles": [{"school": school, "role": "office"}],
        },
    ]
    head: dict[str, Any] = {
        "schools": [
            {
                "id": school,
                "name": "École Fictive du Banc d'Essai",
                "service_centre": "css-fictif",
                "timezone": "America/Toronto",
                "features": {
                    "bulk_send": True,
                    "parent_initiated": True,
                    "groups": True,
                    "attachments": True,
                },
                "closed_days": [],
            }
        ],
        "groups": groups,
        "staff": staff,
        "students": [],
        "parents": [],
    }
    docs: list[dict[str, Any]] = [head]
    for start in range(0, parents, chunk):
        doc = head if start == 0 else {"students": [], "parents": []}
        if start:
            docs.append(doc)
        for j in range(start, min(parents, start + chunk)):
            student = f"bs-{j:05d}"
            doc["students"].append(
                {
                    "id": student,
                    "school": school,
                    "grade": 1 + (j % teachers) % 6,
                    "groups": [f"bg-{j % teachers:05d}"],
                    "name": fictional_name(j + 7),
                }
            )
            doc["parents"].append(
                {
                    "id": parent_id(j),
                    "name": fictional_name(j + 3),
                    "email": f"{parent_id(j)}@example.org",
                    "locale": "fr" if j % 5 else "en",
                    "children": [student],
                }
            )
    return Roster(
        school=school,
        teachers=tuple(teacher_id(i) for i in range(teachers)),
        parents=tuple(parent_id(j) for j in range(parents)),
        docs=tuple(docs),
    )


def import_roster(
    bench: BenchEnv, gateway: ServerProcess, roster: Roster, *, api_docs: int | None = None
) -> None:
    """POST each chunk to /api/admin/roster with an admin token; with `api_docs`, only the
    first `api_docs` chunks, the parents and students of the others being written with COPY
    (the same rows the import writes, 10x faster: setup, not a measurement)."""
    headers = {"Authorization": f"Bearer {bench.token(ADMIN_SUBJECT)}"}
    docs = roster.docs if api_docs is None else roster.docs[:api_docs]
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=300) as client:
        for doc in docs:
            response = client.post("/api/admin/roster", content=json.dumps(doc).encode())
            if response.status_code != 200:
                raise RuntimeError(
                    f"roster import refused ({response.status_code}): {response.text[:2000]}"
                )
    rest = roster.docs[len(docs) :]
    if rest:
        asyncio.run(_copy_families(bench.pg.owner_dsn, rest))


async def _copy_families(dsn: str, docs: Sequence[dict[str, Any]]) -> None:
    import asyncpg

    students = [
        (s["id"], s["school"], s["name"], s["grade"], s["groups"])
        for doc in docs
        for s in doc["students"]
    ]
    parents = [
        (p["id"], "parent", p["name"], p["email"], p["locale"])
        for doc in docs
        for p in doc["parents"]
    ]
    links = [(p["id"], c) for doc in docs for p in doc["parents"] for c in p["children"]]
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.copy_records_to_table(
                "students", records=students, columns=["id", "school", "name", "grade", "groups"]
            )
            await conn.copy_records_to_table(
                "users", records=parents, columns=["id", "kind", "name", "email", "locale"]
            )
            await conn.copy_records_to_table(
                "parent_children", records=links, columns=["parent", "student"]
            )
        await conn.execute("ANALYZE students; ANALYZE users; ANALYZE parent_children")
    finally:
        await conn.close()


# --------------------------------------------------------------------------------------------
# Measuring processes
# --------------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a live process; None when it is gone."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return None
    return float(times.user + times.system)


def rss_bytes(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


class MachineCpu:
    """Busy cores of the whole machine between creation and `cores()`: what the measured
    processes use, plus the kernel's own threads and anything else running on the machine
    (another workload there makes every figure pessimistic)."""

    def __init__(self) -> None:
        self._start = psutil.cpu_times()
        self._wall = time.monotonic()

    def cores(self) -> float:
        now = psutil.cpu_times()
        wall = max(1e-9, time.monotonic() - self._wall)
        idle = (now.idle - self._start.idle) + (
            getattr(now, "iowait", 0.0) - getattr(self._start, "iowait", 0.0)
        )
        total = sum(now) - sum(self._start)
        return round(float(total - idle) / wall, 2)


def background_load(seconds: float = 1.0) -> float:
    """Busy cores while this process sleeps for `seconds` (someone else's work)."""
    meter = MachineCpu()
    time.sleep(seconds)
    return meter.cores()


Snapshot = dict[str, dict[int, float]]


class CpuSampler:
    """CPU seconds per named group of processes, between two snapshots.

    A group is a callable returning its current PIDs (PostgreSQL's backends come and go). A
    process that appears between two snapshots counts with all its CPU time; one that exits in
    between loses what it used after the first snapshot (rare: pools keep their connections).
    """

    def __init__(self, groups: Mapping[str, Callable[[], Iterable[int]]]) -> None:
        self.groups = dict(groups)

    def snapshot(self) -> Snapshot:
        snap: Snapshot = {}
        for name, pids in self.groups.items():
            snap[name] = {}
            for pid in pids():
                seconds = cpu_seconds(pid)
                if seconds is not None:
                    snap[name][pid] = seconds
        return snap

    @staticmethod
    def delta(before: Snapshot, after: Snapshot) -> dict[str, float]:
        result: dict[str, float] = {}
        for name, pids in after.items():
            earlier = before.get(name, {})
            result[name] = round(sum(s - earlier.get(pid, 0.0) for pid, s in pids.items()), 3)
        return result


# --------------------------------------------------------------------------------------------
# PostgreSQL diagnostics: where a commit spends its time
# --------------------------------------------------------------------------------------------


def _enable_wal_timing(admin_dsn: str) -> None:
    """`track_wal_io_timing` on (a diagnostic: the bench reports the mean WAL flush time)."""

    async def run() -> None:
        import asyncpg

        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute("ALTER SYSTEM SET track_wal_io_timing = on")
            await conn.execute("SELECT pg_reload_conf()")
        finally:
            await conn.close()

    asyncio.run(run())


async def _pg_counters(admin_dsn: str) -> dict[str, float]:
    import asyncpg

    conn = await asyncpg.connect(admin_dsn)
    try:
        wal = await conn.fetchrow("SELECT wal_bytes, wal_sync, wal_sync_time FROM pg_stat_wal")
    finally:
        await conn.close()
    return {k: float(v) for k, v in dict(wal).items()}


async def _statements(admin_dsn: str) -> dict[str, tuple[float, float]]:
    import asyncpg

    conn = await asyncpg.connect(admin_dsn)
    try:
        rows = await conn.fetch(
            """SELECT s.query, sum(s.calls) AS calls, sum(s.total_exec_time) AS ms
               FROM pg_stat_statements s
               JOIN pg_database d ON d.oid = s.dbid JOIN pg_roles r ON r.oid = s.userid
               WHERE d.datname = 'messaging' AND r.rolname = 'messaging_app'
               GROUP BY s.query"""
        )
    finally:
        await conn.close()
    return {r["query"]: (float(r["calls"]), float(r["ms"])) for r in rows}


class StatementCounts:
    """Statements the service ran between `start()` and `delta()` (pg_stat_statements), by
    normalised text, with their calls and mean execution time in PostgreSQL (ms); empty when
    the module is not loaded."""

    def __init__(self, admin_dsn: str) -> None:
        self.dsn = admin_dsn
        self._before: dict[str, tuple[float, float]] = {}

    def start(self) -> StatementCounts:
        try:
            self._before = asyncio.run(_statements(self.dsn))
        except Exception:
            self._before = {}
        return self

    def delta(self) -> list[tuple[str, int, float]]:
        try:
            after = asyncio.run(_statements(self.dsn))
        except Exception:
            return []
        rows = []
        for query, (calls, ms) in after.items():
            calls_before, ms_before = self._before.get(query, (0.0, 0.0))
            n = int(calls - calls_before)
            if n > 0:
                rows.append((" ".join(query.split())[:160], n, round((ms - ms_before) / n, 3)))
        return sorted(rows, key=lambda r: -r[1])


_WaitTest = Callable[[str | None, str | None, str | None], bool]
_WAIT_CLASSES: tuple[tuple[str, _WaitTest], ...] = (
    ("running", lambda state, kind, event: state == "active" and kind is None),
    (
        "waiting for the WAL flush",
        lambda state, kind, event: state == "active" and event in ("WALSync", "WALWrite"),
    ),
    ("waiting for a row lock", lambda state, kind, event: kind == "Lock"),
    (
        "waiting for the gateway's next statement",
        lambda state, kind, event: (
            state == "idle in transaction" or (state == "active" and kind == "Client")
        ),
    ),
    ("idle, between transactions", lambda state, kind, event: state == "idle"),
)


class PgDiagnostics:
    """During a phase: WAL flushes (count, mean time), commits, and what the service's backends
    are doing, sampled from pg_stat_activity every `interval` seconds in a thread."""

    def __init__(self, admin_dsn: str, interval: float = 0.02) -> None:
        self.dsn = admin_dsn
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._counts: dict[str, int] = {}
        self._rounds = 0
        self._before: dict[str, float] = {}

    def __enter__(self) -> PgDiagnostics:
        try:
            self._before = asyncio.run(_pg_counters(self.dsn))
        except Exception:
            self._before = {}
        self._thread = threading.Thread(target=lambda: asyncio.run(self._sample()), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    async def _sample(self) -> None:
        import asyncpg

        with contextlib.suppress(Exception):
            conn = await asyncpg.connect(self.dsn)
            try:
                query = await conn.prepare(
                    "SELECT state, wait_event_type, wait_event FROM pg_stat_activity"
                    " WHERE usename = 'messaging_app' AND backend_type = 'client backend'"
                )
                while not self._stop.is_set():
                    for row in await query.fetch():
                        name = next(
                            (n for n, test in _WAIT_CLASSES if test(*row)),
                            f"other ({row[1]}/{row[2]})",
                        )
                        self._counts[name] = self._counts.get(name, 0) + 1
                    self._rounds += 1
                    await asyncio.sleep(self.interval)
            finally:
                await conn.close()

    def result(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        with contextlib.suppress(Exception):
            after = asyncio.run(_pg_counters(self.dsn))
            d = {k: after[k] - self._before.get(k, 0.0) for k in after}
            found["wal_flushes"] = int(d["wal_sync"])
            found["wal_flush_mean_ms"] = (
                round(d["wal_sync_time"] / d["wal_sync"], 3) if d["wal_sync"] else None
            )
            found["wal_bytes"] = int(d["wal_bytes"])
        total = sum(self._counts.values())
        if total and self._rounds:
            busy = total - self._counts.get("idle, between transactions", 0)
            found["backends_in_a_transaction_mean"] = round(busy / self._rounds, 2)
            found["backend_time_share_in_transactions"] = (
                {
                    name: round(count / busy, 3)
                    for name, count in sorted(self._counts.items(), key=lambda kv: -kv[1])
                    if name != "idle, between transactions"
                }
                if busy
                else {}
            )
        return found


# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------


def percentile(ordered: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an ascending sequence (p in 0..100)."""
    if not ordered:
        return float("nan")
    rank = max(1, -(-len(ordered) * p // 100))  # ceil(n * p / 100)
    return float(ordered[min(len(ordered), int(rank)) - 1])


def summarize(values: Iterable[float], scale: float = 1.0, digits: int = 2) -> dict[str, Any]:
    """count, mean, p50, p90, p99, p99.9 and max of `values` times `scale`, rounded."""
    ordered = sorted(values)
    if not ordered:
        return {"count": 0}

    def r(x: float) -> float:
        return round(x * scale, digits)

    return {
        "count": len(ordered),
        "mean": r(sum(ordered) / len(ordered)),
        "p50": r(percentile(ordered, 50)),
        "p90": r(percentile(ordered, 90)),
        "p99": r(percentile(ordered, 99)),
        "p999": r(percentile(ordered, 99.9)),
        "max": r(ordered[-1]),
    }


QUANTILES: tuple[float, ...] = (*range(0, 98, 2), 98.0, 99.0, 99.5, 99.9, 100.0)


def cdf(values: Iterable[float], scale: float = 1.0, digits: int = 3) -> dict[str, list[float]]:
    """The distribution at QUANTILES (for the charts: no raw samples in the result file)."""
    ordered = sorted(values)
    if not ordered:
        return {"q": [], "v": []}
    return {
        "q": list(QUANTILES),
        "v": [
            round(percentile(ordered, q) * scale, digits)
            if q
            else round(ordered[0] * scale, digits)
            for q in QUANTILES
        ],
    }


class Phase:
    """CPU seconds per process group and busy cores of the machine over a phase: what the
    bench's processes used and what ran outside them (another workload on the machine makes
    every figure pessimistic)."""

    def __init__(self, groups: Mapping[str, Callable[[], Iterable[int]]]) -> None:
        self.sampler = CpuSampler(groups)
        self._before = self.sampler.snapshot()
        self._machine = MachineCpu()
        self._wall = time.monotonic()

    def end(self) -> dict[str, Any]:
        cpu = CpuSampler.delta(self._before, self.sampler.snapshot())
        machine = self._machine.cores()
        wall = max(1e-9, time.monotonic() - self._wall)
        return {
            "cpu_seconds": cpu,
            "wall_s": round(wall, 2),
            "machine_cores_busy": machine,
            "other_cores_busy": round(machine - sum(cpu.values()) / wall, 2),
        }


# --------------------------------------------------------------------------------------------
# Where and with what a result was measured
# --------------------------------------------------------------------------------------------


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _filesystem_of(path: Path) -> str:
    best, kind = "", "unknown"
    with contextlib.suppress(Exception):
        for part in psutil.disk_partitions(all=True):
            mount = part.mountpoint
            if str(path).startswith(mount) and len(mount) > len(best):
                best, kind = mount, part.fstype
    return kind


def fdatasync_micros(directory: Path, rounds: int = 100) -> dict[str, float]:
    """8 KiB appends + fdatasync to a preallocated file in `directory`, the way PostgreSQL
    flushes its WAL at each commit: median and p90 in microseconds."""
    path = directory / "fsync-probe"
    samples = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, bytes(8192 * rounds))
        os.fsync(fd)
        block = os.urandom(8192)
        for i in range(rounds):
            started = time.perf_counter()
            os.pwrite(fd, block, i * 8192)
            os.fdatasync(fd)
            samples.append(time.perf_counter() - started)
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    samples.sort()
    return {
        "median_us": round(samples[len(samples) // 2] * 1e6, 1),
        "p90_us": round(samples[int(len(samples) * 0.9)] * 1e6, 1),
    }


def machine_facts(bench: BenchEnv | None = None) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu_model": _cpu_model(),
        "kernel": platform.release(),
        "platform": platform.platform(),
        "open_files_limit": resource.getrlimit(resource.RLIMIT_NOFILE),
    }
    if bench is not None:
        facts["postgres_data_filesystem"] = _filesystem_of(bench.pg_dir)
        facts["fdatasync_8k"] = fdatasync_micros(bench.root)
    return facts


def _dist_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


async def _postgres_version(dsn: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


def versions(bench: BenchEnv | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"python": platform.python_version()}
    for dist in (
        "uvicorn", "websockets", "starlette", "asyncpg", "redis", "hiredis", "msgpack", "orjson",
        "uvloop", "psutil",
    ):  # fmt: skip
        found[dist] = _dist_version(dist)
    if bench is not None:
        with contextlib.suppress(Exception):
            found["postgres"] = asyncio.run(_postgres_version(bench.pg.admin_dsn))
        with contextlib.suppress(Exception):
            import redis as redis_py

            client = redis_py.Redis.from_url(bench.redis.url)
            try:
                found["redis_server"] = client.info("server")["redis_version"]
            finally:
                client.close()
    return found
