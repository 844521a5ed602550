"""Local PostgreSQL and Redis servers for development (`make run`) and tests.

Both servers are plain child processes of the caller, listening on 127.0.0.1 only. Nothing is
registered globally (no atexit hook, no signal handler): whoever starts a server stops it with
`LocalPostgres.stop()` / `LocalRedis.stop()`.

PostgreSQL refuses to run as root. When this process is root, every PostgreSQL program (initdb,
postgres, pg_ctl, psql, pg_isready) runs as an unprivileged OS account: the owner of an already
initialised data directory, else `postgres`, else a system account `messaging` created on
demand. Only those programs switch account (the child switches between fork and exec); the
Python interpreter never does. Redis may run as root and does.

Command line: `python -m messaging.devservices --ensure-packages` installs missing server
packages (root on Debian only) and otherwise says precisely what is missing.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import logging
import os
import pwd
import random
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "APP_ROLE",
    "DATABASE",
    "OWNER_ROLE",
    "DevServiceError",
    "LocalPostgres",
    "LocalRedis",
    "LocalRedisCluster",
    "dev_postgres_datadir",
    "ensure_server_packages",
    "free_port",
    "start_postgres",
    "start_redis",
    "start_redis_cluster",
]

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
ADMIN_ROLE = "postgres"
OWNER_ROLE = "messaging_owner"
APP_ROLE = "messaging_app"
DATABASE = "messaging"
FALLBACK_SERVER_ACCOUNT = "messaging"

#: Ports handed out by `free_port`: below Linux's default ephemeral range (32768-60999), above
#: the usual fixed ports of development servers (5432, 6379, 8000, 8080 ...).
PORT_RANGE = range(20000, 32768)
POSTGRES_START_TIMEOUT = 60.0
REDIS_START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
KILL_GRACE = 10.0
LOG_TAIL_LINES = 40
MAX_LOG_BYTES = 8 * 1024 * 1024
_PORT_ATTEMPTS = 5
_POLL_INTERVAL = 0.05

_POSTGRES_PROGRAMS = ("initdb", "pg_ctl", "postgres", "psql", "pg_isready")
_REDIS_CANDIDATES = (
    "/usr/bin/redis-server",
    "/usr/sbin/redis-server",
    "/usr/local/bin/redis-server",
)
_BREW_FORMULAE = {"postgresql": "postgresql@15", "redis-server": "redis"}
_PORT_IN_USE_MARKERS = ("Address already in use", "could not create any TCP/IP sockets")

_handed_out_ports: set[int] = set()


class DevServiceError(RuntimeError):
    """A local server could not be installed, started or stopped; the message says why."""


class _PortInUseError(DevServiceError):
    """The server could not listen on its port because something else holds it."""


# --------------------------------------------------------------------------------------------
# Ports
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 below 32768 that is free now and not handed out before.

    A port can still be taken between this call and the server binding it; `start_postgres` and
    `start_redis` retry with another port when they chose it themselves.
    """
    rng = random.SystemRandom()
    for _ in range(500):
        port = rng.choice(PORT_RANGE)
        if port not in _handed_out_ports and _port_is_free(port):
            _handed_out_ports.add(port)
            return port
    raise DevServiceError(
        f"no free TCP port found on {HOST} between {PORT_RANGE.start} and {PORT_RANGE.stop - 1}"
    )


def _port_is_free(port: int) -> bool:
    """True when nothing listens on, or is bound to, 127.0.0.1:`port`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


# --------------------------------------------------------------------------------------------
# Programs and packages
# --------------------------------------------------------------------------------------------


def _postgres_bindir() -> Path | None:
    """The directory holding all PostgreSQL server programs, or None when they are missing.

    `pg_ctl` on PATH wins (its symlinks are resolved, so Debian's /usr/local/bin links lead to
    /usr/lib/postgresql/N/bin); else the newest /usr/lib/postgresql/N/bin.
    """
    candidates: list[Path] = []
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    debian_dirs = Path("/usr/lib/postgresql").glob("*/bin")
    candidates += sorted(debian_dirs, key=lambda d: _version_key(d.parent.name), reverse=True)
    for bindir in candidates:
        if all(os.access(bindir / program, os.X_OK) for program in _POSTGRES_PROGRAMS):
            return bindir
    return None


def _version_key(name: str) -> tuple[int, ...]:
    """Sort key for version-named directories ("15", "9.6"); non-numeric names sort first."""
    try:
        return tuple(int(part) for part in name.split("."))
    except ValueError:
        return (-1,)


def _redis_server_path() -> Path | None:
    """The `redis-server` program, from PATH or the usual install locations."""
    on_path = shutil.which("redis-server")
    if on_path:
        return Path(on_path)
    for candidate in _REDIS_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


# Servers only the test suite runs against (never `make run`): Debian package -> its program.
TEST_SERVER_PACKAGES: dict[str, tuple[str, str]] = {
    "clamav-daemon": ("clamd", "/usr/sbin/clamd"),
    "chromium": ("chromium", "/usr/bin/chromium"),
    "nginx": ("nginx", "/usr/sbin/nginx"),
    "npm": ("npm", "/usr/bin/npm"),
}


def _program(name: str, fallback: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    return fallback if os.access(fallback, os.X_OK) else None


def _missing_packages(with_test_servers: bool = False) -> dict[str, str]:
    """Debian package name -> what is missing, for each server that cannot be found."""
    missing: dict[str, str] = {}
    if _postgres_bindir() is None:
        programs = ", ".join(_POSTGRES_PROGRAMS)
        missing["postgresql"] = f"the PostgreSQL server programs ({programs})"
    if _redis_server_path() is None:
        missing["redis-server"] = "the Redis server program (redis-server)"
    if with_test_servers:
        for package, (program, fallback) in TEST_SERVER_PACKAGES.items():
            if _program(program, fallback) is None:
                missing[package] = f"{program} (Debian package {package})"
    return missing


def ensure_server_packages(*, with_test_servers: bool = False) -> None:
    """Make sure PostgreSQL and Redis server programs (and, for the test suite, the other
    servers it starts) are installed.

    When some are missing and this process is root on Debian, runs `apt-get update` once and
    `apt-get install -y` for the missing packages. Otherwise raises `DevServiceError` naming what
    is missing and how to install it.
    """
    missing = _missing_packages(with_test_servers)
    if not missing:
        return
    what = " and ".join(missing.values())
    if os.geteuid() == 0 and Path("/etc/debian_version").is_file() and shutil.which("apt-get"):
        _apt_install(sorted(missing))
        still_missing = _missing_packages(with_test_servers)
        if still_missing:
            raise DevServiceError(
                f"apt-get installed {', '.join(sorted(missing))} but "
                f"{' and '.join(still_missing.values())} still cannot be found "
                "(looked on PATH and in /usr/lib/postgresql/*/bin)"
            )
        return
    brew = " ".join(_BREW_FORMULAE.get(package, package) for package in sorted(missing))
    raise DevServiceError(
        f"missing {what}. Install and retry: on Debian/Ubuntu "
        f"`sudo apt-get install -y {' '.join(sorted(missing))}`; on macOS `brew install {brew}`. "
        "PostgreSQL programs are looked for on PATH (pg_ctl) and in /usr/lib/postgresql/*/bin."
    )


def _apt_install(packages: Sequence[str]) -> None:
    """Run `apt-get update` then `apt-get install -y PACKAGES`, non-interactively."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock_wait = ["-o", "DPkg::Lock::Timeout=600"]
    commands = [
        ["apt-get", *lock_wait, "-q", "update"],
        ["apt-get", *lock_wait, "-q", "install", "-y", *packages],
    ]
    for command in commands:
        print(f"devservices: running {shlex.join(command)}", file=sys.stderr, flush=True)
        result = subprocess.run(command, env=env, stdin=subprocess.DEVNULL, check=False)
        if result.returncode != 0:
            raise DevServiceError(
                f"`{shlex.join(command)}` failed with exit code {result.returncode}"
            )


def _require_postgres_bindir() -> Path:
    bindir = _postgres_bindir()
    if bindir is None:
        raise DevServiceError(
            f"{_missing_packages()['postgresql']} not found; run "
            "`python -m messaging.devservices --ensure-packages` as root on Debian, or install "
            "PostgreSQL yourself"
        )
    return bindir


def _require_redis_server() -> Path:
    path = _redis_server_path()
    if path is None:
        raise DevServiceError(
            "redis-server not found; run `python -m messaging.devservices --ensure-packages` as "
            "root on Debian, or install Redis yourself"
        )
    return path


# --------------------------------------------------------------------------------------------
# Processes and logs
# --------------------------------------------------------------------------------------------


def _pid_running(pid: int) -> bool:
    """True when process `pid` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        proc_stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    state = proc_stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X")


def _wait_pid_gone(pid: int, timeout: float) -> bool:
    """Poll until `pid` is gone (for processes that are not our children); True when gone."""
    deadline = time.monotonic() + timeout
    while _pid_running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(_POLL_INTERVAL)
    return True


def _terminate(process: subprocess.Popen[bytes], first_signal: signal.Signals) -> None:
    """Send `first_signal`, wait `KILL_GRACE` seconds, then SIGKILL; always reaps the child."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(first_signal)
        try:
            process.wait(timeout=KILL_GRACE)
        except subprocess.TimeoutExpired:
            process.kill()
    process.wait()


def _rotate_log(path: Path) -> None:
    """Keep a persistent log from growing without bound: move a big one to `NAME.1`."""
    with contextlib.suppress(FileNotFoundError):
        if path.stat().st_size > MAX_LOG_BYTES:
            path.replace(path.with_name(path.name + ".1"))


def _log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _log_tail(path: Path, offset: int = 0, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines written to `path` after byte `offset`, or a note if unreadable."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            text = handle.read().decode("utf-8", errors="replace")
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    tail = text.rstrip().splitlines()[-lines:]
    return "\n".join(tail) if tail else "(log is empty)"


def _output_tail(result: subprocess.CompletedProcess[str], lines: int = LOG_TAIL_LINES) -> str:
    text = "\n".join(part.strip() for part in (result.stdout, result.stderr) if part)
    return "\n".join(text.splitlines()[-lines:]) or "(no output)"


def _check(result: subprocess.CompletedProcess[str], action: str) -> None:
    """Raise `DevServiceError` with the command and its output when `result` failed."""
    if result.returncode != 0:
        command = shlex.join(str(arg) for arg in result.args)
        raise DevServiceError(
            f"{action} failed with exit code {result.returncode}: {command}\n{_output_tail(result)}"
        )


# --------------------------------------------------------------------------------------------
# PostgreSQL: the account that runs it, and its programs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Account:
    """The OS account that runs PostgreSQL programs; `switch` when it is not this process's."""

    name: str
    uid: int
    gid: int
    home: str
    switch: bool

    @classmethod
    def of(cls, entry: pwd.struct_passwd, *, switch: bool) -> _Account:
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir, switch)

    def subprocess_options(self, locale_name: str) -> dict[str, Any]:
        """Keyword arguments for `subprocess` that run a program as this account."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "LC_"))}
        env.update(HOME=self.home, LANG=locale_name, LC_ALL=locale_name)
        options: dict[str, Any] = {"cwd": "/", "env": env}
        if self.switch:
            options.update(user=self.uid, group=self.gid, extra_groups=[])
        return options

    def command_prefix(self) -> str:
        """How a person runs a program as this account, for error messages."""
        return f"runuser -u {self.name} -- " if self.switch else ""


def _server_account(datadir: Path) -> _Account:
    """Choose the account for PostgreSQL (see the module docstring)."""
    if os.geteuid() != 0:
        return _Account.of(pwd.getpwuid(os.geteuid()), switch=False)
    if _is_initialised(datadir):
        owner = datadir.stat().st_uid
        if owner == 0:
            raise DevServiceError(
                f"PostgreSQL data directory {datadir} is owned by root, and PostgreSQL refuses "
                f"to run as root; give it to an unprivileged account, e.g. "
                f"`chown -R postgres: {shlex.quote(str(datadir))}`"
            )
        try:
            return _Account.of(pwd.getpwuid(owner), switch=True)
        except KeyError:
            raise DevServiceError(
                f"PostgreSQL data directory {datadir} is owned by UID {owner}, which has no "
                "account on this machine; chown it to `postgres` or remove it"
            ) from None
    with contextlib.suppress(KeyError):
        return _Account.of(pwd.getpwnam("postgres"), switch=True)
    return _Account.of(_ensure_fallback_account(), switch=True)


def _ensure_fallback_account() -> pwd.struct_passwd:
    """Return the system account `messaging`, creating it with useradd when absent."""
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(FALLBACK_SERVER_ACCOUNT)
    if not shutil.which("useradd"):
        raise DevServiceError(
            "there is no `postgres` account to run PostgreSQL as (it refuses to run as root) and "
            f"`useradd` is missing, so the account `{FALLBACK_SERVER_ACCOUNT}` cannot be created"
        )
    command = [
        "useradd",
        "--system",
        "--user-group",
        "--no-create-home",
        "--home-dir",
        "/nonexistent",
        "--shell",
        "/usr/sbin/nologin",
        FALLBACK_SERVER_ACCOUNT,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    _check(result, f"creating the system account {FALLBACK_SERVER_ACCOUNT!r} for PostgreSQL")
    return pwd.getpwnam(FALLBACK_SERVER_ACCOUNT)


@functools.cache
def _cluster_locale() -> str:
    """`C.UTF-8` when the system has it (Unicode-aware upper/lower), else `C`."""
    try:
        result = subprocess.run(
            ["locale", "-a"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return "C"
    names = {line.strip().lower().replace("-", "") for line in result.stdout.splitlines()}
    return "C.UTF-8" if "c.utf8" in names else "C"


@dataclass(frozen=True)
class _PostgresPrograms:
    """PostgreSQL's programs, run as the server account."""

    bindir: Path
    account: _Account
    locale: str

    def run(
        self, program: str, *args: str, stdin: str | None = None, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """Run `program` to completion, capturing its output (never raises on failure)."""
        try:
            return subprocess.run(
                [str(self.bindir / program), *args],
                input=stdin,
                stdin=None if stdin is not None else subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                **self.account.subprocess_options(self.locale),
            )
        except subprocess.TimeoutExpired as exc:
            raise DevServiceError(
                f"{program} did not finish within {timeout:.0f}s: {shlex.join(map(str, exc.cmd))}"
            ) from exc

    def spawn(self, program: str, *args: str, output: Any) -> subprocess.Popen[bytes]:
        """Start `program` in its own session, its stdout and stderr going to `output`."""
        return subprocess.Popen(
            [str(self.bindir / program), *args],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **self.account.subprocess_options(self.locale),
        )

    def pg_ctl_hint(self, datadir: Path) -> str:
        """The command a person types to stop a server on `datadir`."""
        pg_ctl = shlex.quote(str(self.bindir / "pg_ctl"))
        return (
            f"{self.account.command_prefix()}{pg_ctl} -D {shlex.quote(str(datadir))} stop -m fast"
        )


# --------------------------------------------------------------------------------------------
# PostgreSQL: data directory
# --------------------------------------------------------------------------------------------


def _is_initialised(datadir: Path) -> bool:
    return (datadir / "PG_VERSION").is_file()


def dev_postgres_datadir(project_dir: Path) -> Path:
    """The persistent data directory for `make run`.

    `PROJECT/.data/postgres` when the PostgreSQL account can reach `PROJECT/.data` (always when
    not root); else `/var/tmp/messaging-postgres-HASH`, HASH naming the project's path, so that
    a project under /root still gets a stable data directory. Creates `PROJECT/.data`.
    """
    project_dir = project_dir.resolve()
    preferred = project_dir / ".data" / "postgres"
    if os.geteuid() != 0:
        return preferred
    _mkdir_searchable(preferred.parent)
    account = _server_account(preferred)
    if _account_can_access(account, preferred.parent, write=False):
        return preferred
    digest = hashlib.sha256(str(project_dir).encode()).hexdigest()[:12]
    # A predictable name in a world-writable directory: refuse one planted by another account.
    fallback = Path("/var/tmp") / f"messaging-postgres-{digest}"  # noqa: S108
    _refuse_foreign_directory(fallback, allowed_uids={0, account.uid})
    return fallback


def _refuse_foreign_directory(path: Path, allowed_uids: set[int]) -> None:
    """Raise unless `path` is absent or a real directory owned by one of `allowed_uids`."""
    try:
        status = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(status.st_mode) or status.st_uid not in allowed_uids:
        raise DevServiceError(
            f"{path} exists but is not a directory owned by root or the PostgreSQL account "
            "(a symlink, a file, or another account's); remove it and retry"
        )


def _mkdir_searchable(path: Path) -> None:
    """Create `path` and missing parents, the ones created here mode 0755 whatever the umask."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for directory in reversed(missing):
        directory.mkdir(exist_ok=True)
        directory.chmod(0o755)


def _account_can_access(account: _Account, directory: Path, *, write: bool) -> bool:
    """Whether `account` can reach `directory` (every parent searchable), and write it if asked."""
    if not account.switch:
        return os.access(directory, (os.W_OK | os.X_OK) if write else os.X_OK)
    tests = ["-w", str(directory), "-a", "-x", str(directory)] if write else ["-x", str(directory)]
    result = subprocess.run(["test", *tests], check=False, **account.subprocess_options("C"))
    return result.returncode == 0


def _prepare_datadir(datadir: Path, account: _Account) -> None:
    """Create an empty data directory owned by `account`, or check an existing one."""
    if not _is_initialised(datadir):
        _mkdir_searchable(datadir.parent)
        datadir.mkdir(mode=0o700, exist_ok=True)
        if any(datadir.iterdir()):
            raise DevServiceError(
                f"{datadir} is neither empty nor a PostgreSQL data directory (no PG_VERSION); "
                "give start_postgres a new or empty directory"
            )
        if account.switch:
            os.chown(datadir, account.uid, account.gid)
        datadir.chmod(0o700)
    if not _account_can_access(account, datadir, write=True):
        raise DevServiceError(
            f"PostgreSQL runs as the account {account.name!r}, which cannot reach or write "
            f"{datadir} (some parent directory is not searchable by it); use a data directory "
            "under /tmp or /var/tmp (see dev_postgres_datadir)"
        )


def _initdb(datadir: Path, programs: _PostgresPrograms, *, persistent: bool) -> None:
    """Create a cluster in the empty `datadir`: superuser `postgres`, trust auth, UTF8."""
    args = ["-D", str(datadir), "-U", ADMIN_ROLE, "--auth=trust", "-E", "UTF8"]
    args.append(f"--locale={programs.locale}")
    if not persistent:
        args.append("--no-sync")
    log.info("initialising a PostgreSQL cluster in %s", datadir)
    _check(programs.run("initdb", *args, timeout=300), f"initdb in {datadir}")


def _lockfile_fields(datadir: Path) -> list[str] | None:
    """The lines of `postmaster.pid`, or None when there is none."""
    try:
        return (datadir / "postmaster.pid").read_text().splitlines()
    except FileNotFoundError:
        return None


def _is_postmaster_of(pid: int, datadir: Path) -> bool:
    """Whether live process `pid` is a postmaster of `datadir` (its working directory).

    Without /proc (macOS) this cannot be told, and the answer is a cautious yes.
    """
    if not Path("/proc/self").exists():
        return True
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except FileNotFoundError:
        return False
    except PermissionError:
        # Another account's process: as root we could read it, so we are not root, and our
        # postmaster would run as us.
        return False
    return Path(cwd) == datadir.resolve()


def _clear_stale_lockfile(datadir: Path, programs: _PostgresPrograms) -> None:
    """Refuse a data directory whose server runs; drop a lock file left by a crash.

    A lock file naming a dead PID is left to PostgreSQL, which replaces it after checking that
    no old backend still holds the shared memory. A lock file whose PID now belongs to another
    process (PIDs are reused after a reboot, quickly in containers) would make PostgreSQL refuse
    to start, so it is removed here.
    """
    fields = _lockfile_fields(datadir)
    if fields is None:
        return
    lockfile = datadir / "postmaster.pid"
    try:
        pid = int(fields[0])
    except (IndexError, ValueError):
        log.warning("removing unreadable lock file %s", lockfile)
        lockfile.unlink(missing_ok=True)
        return
    if not _pid_running(pid):
        _wait_for_orphaned_backends(datadir)
        return
    if _is_postmaster_of(pid, datadir):
        raise DevServiceError(
            f"PostgreSQL is already running on {datadir} (PID {pid}); another `make run` or test "
            f"session may be using it. If not, stop it with: {programs.pg_ctl_hint(datadir)}"
        )
    log.warning("removing stale lock file %s: PID %d is now another process", lockfile, pid)
    lockfile.unlink(missing_ok=True)


def _processes_in(directory: Path) -> list[int]:
    """PIDs of live processes whose working directory is `directory` (empty without /proc)."""
    target = str(directory.resolve())
    pids: list[int] = []
    for entry in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if os.readlink(entry / "cwd") == target and _pid_running(int(entry.name)):
                pids.append(int(entry.name))
    return pids


def _wait_for_orphaned_backends(datadir: Path) -> None:
    """After a postmaster crash, wait for its backends (which notice its death) to exit.

    PostgreSQL refuses to start while they still hold the old shared memory.
    """
    deadline = time.monotonic() + KILL_GRACE
    while pids := _processes_in(datadir):
        if time.monotonic() > deadline:
            raise DevServiceError(
                f"processes of a crashed PostgreSQL on {datadir} are still running (PIDs "
                f"{', '.join(map(str, pids))}); stop them before starting a new server"
            )
        time.sleep(_POLL_INTERVAL)


# --------------------------------------------------------------------------------------------
# PostgreSQL: server
# --------------------------------------------------------------------------------------------


def _admin_args(port: int, database: str = "postgres") -> list[str]:
    """Connection options of psql and pg_isready for the superuser over TCP."""
    return ["-h", HOST, "-p", str(port), "-U", ADMIN_ROLE, "-d", database]


def _dsn(role: str, port: int, database: str) -> str:
    return f"postgresql://{role}@{HOST}:{port}/{database}"


@dataclass
class LocalPostgres:
    """A running local PostgreSQL server, started by `start_postgres`.

    DSNs have the form `postgresql://ROLE@127.0.0.1:PORT/DATABASE`, with no password (trust
    authentication on 127.0.0.1).
    """

    port: int
    datadir: Path
    admin_dsn: str  #: superuser `postgres`, database `postgres`
    owner_dsn: str  #: role messaging_owner, database messaging; owns schema public
    app_dsn: str  #: role messaging_app, database messaging; only granted rights
    pid: int  #: the postmaster's PID
    log_path: Path  #: the server's stdout and stderr
    _programs: _PostgresPrograms = field(repr=False, compare=False)
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    def running(self) -> bool:
        """Whether the postmaster is still alive."""
        if self._process is not None:
            return self._process.poll() is None
        return _pid_running(self.pid)

    def stop(self) -> None:
        """Fast shutdown (`pg_ctl stop -m fast`) and wait for the postmaster to exit.

        The waiting is done here rather than by `pg_ctl -w`, which would wait in vain for the
        lock file of a postmaster that crashed. Idempotent. Falls back to SIGQUIT (immediate
        shutdown) then SIGKILL, and raises `DevServiceError` when it had to.
        """
        if not self.running():
            self._reap()
            return
        result = self._programs.run(
            "pg_ctl", "stop", "-D", str(self.datadir), "-m", "fast", "--no-wait", timeout=30
        )
        if self._wait_gone(STOP_TIMEOUT):
            self._reap()
            return
        self._signal(signal.SIGQUIT)
        if not self._wait_gone(KILL_GRACE):
            self._signal(signal.SIGKILL)
            self._wait_gone(KILL_GRACE)
        self._reap()
        raise DevServiceError(
            f"PostgreSQL (PID {self.pid}, {self.datadir}) did not stop within "
            f"{STOP_TIMEOUT:.0f}s of `pg_ctl stop -m fast` and was killed; pg_ctl said:\n"
            f"{_output_tail(result)}\nServer log:\n{_log_tail(self.log_path)}"
        )

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    def _wait_gone(self, timeout: float) -> bool:
        if self._process is None:
            return _wait_pid_gone(self.pid, timeout)
        try:
            self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def _reap(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.wait(timeout=KILL_GRACE)


def start_postgres(datadir: Path, port: int | None = None, *, persistent: bool) -> LocalPostgres:
    """Start PostgreSQL on 127.0.0.1:`port` (a free one when None) with data in `datadir`.

    Initialises `datadir` unless it already holds a cluster (which is then reused), starts the
    server, waits until it accepts connections, and makes sure the roles `messaging_owner` and
    `messaging_app` and the database `messaging` (owned by messaging_owner, who alone may CREATE
    in its schema public) exist. With
    `persistent=False` durability is switched off for speed (fsync, synchronous_commit,
    full_page_writes); with `persistent=True` PostgreSQL's defaults stay.
    """
    datadir = Path(datadir).absolute()
    bindir = _require_postgres_bindir()
    account = _server_account(datadir)
    programs = _PostgresPrograms(bindir, account, _cluster_locale())
    _prepare_datadir(datadir, account)
    if not _is_initialised(datadir):
        _initdb(datadir, programs, persistent=persistent)
    _clear_stale_lockfile(datadir, programs)
    server = _launch_postgres_on_some_port(datadir, port, programs, persistent=persistent)
    try:
        _create_roles_and_database(server.port, programs)
    except BaseException:
        server.stop()
        raise
    log.info(
        "PostgreSQL running on %s:%d (PID %d, data in %s)", HOST, server.port, server.pid, datadir
    )
    return server


def _launch_postgres_on_some_port(
    datadir: Path, port: int | None, programs: _PostgresPrograms, *, persistent: bool
) -> LocalPostgres:
    """Launch on `port`, or on free ports until one is not taken meanwhile."""
    if port is not None:
        return _launch_postgres(datadir, port, programs, persistent=persistent)
    last_error: _PortInUseError | None = None
    for _ in range(_PORT_ATTEMPTS):
        try:
            return _launch_postgres(datadir, free_port(), programs, persistent=persistent)
        except _PortInUseError as exc:
            last_error = exc
    raise DevServiceError(f"PostgreSQL found no free port in {_PORT_ATTEMPTS} tries") from (
        last_error
    )


def _postgres_settings(port: int, *, persistent: bool) -> dict[str, str]:
    """Server settings passed on the command line (they override postgresql.conf)."""
    settings = {
        "listen_addresses": HOST,
        "port": str(port),
        "unix_socket_directories": "",
        "max_connections": "200",
        "timezone": "UTC",
        "log_timezone": "UTC",
    }
    if not persistent:
        settings.update(fsync="off", synchronous_commit="off", full_page_writes="off")
    return settings


def _launch_postgres(
    datadir: Path, port: int, programs: _PostgresPrograms, *, persistent: bool
) -> LocalPostgres:
    """Start the postmaster and wait until it accepts connections on `port`."""
    log_path = datadir / "postgres.log"
    _rotate_log(log_path)
    offset = _log_size(log_path)
    args = ["-D", str(datadir)]
    for name, value in _postgres_settings(port, persistent=persistent).items():
        args += ["-c", f"{name}={value}"]
    with log_path.open("ab") as log_file:
        if programs.account.switch:
            os.fchown(log_file.fileno(), programs.account.uid, programs.account.gid)
        process = programs.spawn("postgres", *args, output=log_file)
    try:
        _wait_for_postgres(process, datadir, port, programs, log_path, offset)
    except BaseException:
        _terminate(process, signal.SIGQUIT)
        raise
    return LocalPostgres(
        port=port,
        datadir=datadir,
        admin_dsn=_dsn(ADMIN_ROLE, port, "postgres"),
        owner_dsn=_dsn(OWNER_ROLE, port, DATABASE),
        app_dsn=_dsn(APP_ROLE, port, DATABASE),
        pid=process.pid,
        log_path=log_path,
        _programs=programs,
        _process=process,
    )


def _postmaster_ready(datadir: Path, pid: int) -> bool:
    """Whether postmaster.pid says that *our* postmaster (`pid`) is ready for connections."""
    fields = _lockfile_fields(datadir)
    if not fields or len(fields) < 8:
        return False
    return fields[0].strip() == str(pid) and fields[7].strip() == "ready"


def _wait_for_postgres(
    process: subprocess.Popen[bytes],
    datadir: Path,
    port: int,
    programs: _PostgresPrograms,
    log_path: Path,
    offset: int,
) -> None:
    """Wait until the postmaster is ready and pg_isready connects, or raise with its log."""
    deadline = time.monotonic() + POSTGRES_START_TIMEOUT
    while True:
        code = process.poll()
        if code is not None:
            tail = _log_tail(log_path, offset)
            if any(marker in tail for marker in _PORT_IN_USE_MARKERS):
                raise _PortInUseError(f"PostgreSQL could not listen on {HOST}:{port}:\n{tail}")
            raise DevServiceError(
                f"PostgreSQL exited with code {code} while starting on {HOST}:{port} "
                f"(data in {datadir}). Last lines of {log_path}:\n{tail}"
            )
        if _postmaster_ready(datadir, process.pid):
            isready = programs.run("pg_isready", *_admin_args(port), "-t", "2", timeout=10)
            if isready.returncode == 0:
                return
        if time.monotonic() > deadline:
            raise DevServiceError(
                f"PostgreSQL did not accept connections on {HOST}:{port} within "
                f"{POSTGRES_START_TIMEOUT:.0f}s (data in {datadir}). Last lines of {log_path}:\n"
                f"{_log_tail(log_path, offset)}"
            )
        time.sleep(_POLL_INTERVAL)


_ROLE_SETUP_SQL = f"""
SELECT 'CREATE ROLE {OWNER_ROLE} LOGIN'
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{OWNER_ROLE}')
\\gexec
SELECT 'CREATE ROLE {APP_ROLE} LOGIN'
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}')
\\gexec
ALTER ROLE {OWNER_ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;
ALTER ROLE {APP_ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;
SELECT 'CREATE DATABASE {DATABASE} OWNER {OWNER_ROLE} ENCODING ''UTF8'' TEMPLATE template0'
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '{DATABASE}')
\\gexec
ALTER DATABASE {DATABASE} OWNER TO {OWNER_ROLE};
"""

_SCHEMA_SETUP_SQL = f"""
ALTER SCHEMA public OWNER TO {OWNER_ROLE};
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO {OWNER_ROLE};
GRANT USAGE ON SCHEMA public TO {APP_ROLE};
"""


def _create_roles_and_database(port: int, programs: _PostgresPrograms) -> None:
    """Create (idempotently) the roles, the database and the rights on schema public.

    messaging_owner owns database `messaging` and its schema public; nobody else may CREATE in
    public. messaging_app gets USAGE on public only: its rights on tables come from the
    schema's own GRANTs.
    """
    for database, sql, action in (
        ("postgres", _ROLE_SETUP_SQL, "creating the roles and the database"),
        (DATABASE, _SCHEMA_SETUP_SQL, "setting the rights on schema public"),
    ):
        psql_args = ["-X", "-q", "-v", "ON_ERROR_STOP=1", *_admin_args(port, database), "-f", "-"]
        result = programs.run("psql", *psql_args, stdin=sql)
        _check(result, f"PostgreSQL setup ({action})")


# --------------------------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------------------------


@dataclass
class LocalRedis:
    """A running local Redis server (a child process in its own process group)."""

    port: int
    datadir: Path
    url: str  #: redis://127.0.0.1:PORT/0
    pid: int
    log_path: Path  #: the server's stdout and stderr
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    def running(self) -> bool:
        """Whether the server process is still alive."""
        if self._process is not None:
            return self._process.poll() is None
        return _pid_running(self.pid)

    def stop(self) -> None:
        """SIGTERM by PID (Redis saves first when persistent), wait, SIGKILL after a timeout.

        Idempotent.
        """
        if not self.running():
            self._reap()
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        if not self._wait_gone(STOP_TIMEOUT):
            log.warning(
                "Redis (PID %d) ignored SIGTERM for %.0fs; killing it", self.pid, STOP_TIMEOUT
            )
            self.kill()
        self._reap()

    def kill(self) -> None:
        """SIGKILL the server's process group at once (for adversity tests), and reap it."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self._wait_gone(KILL_GRACE)
        self._reap()

    def _wait_gone(self, timeout: float) -> bool:
        if self._process is None:
            return _wait_pid_gone(self.pid, timeout)
        try:
            self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def _reap(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.wait(timeout=KILL_GRACE)


def start_redis(
    datadir: Path,
    port: int | None = None,
    *,
    persistent: bool,
    extra_args: Sequence[str] = (),
) -> LocalRedis:
    """Start `redis-server` on 127.0.0.1:`port` (a free one when None), files in `datadir`.

    With `persistent=False` nothing is written to disk (no RDB snapshots, no AOF); with
    `persistent=True` Redis's default snapshots stay, and a later start on the same `datadir`
    loads them. `extra_args` are more command-line options (cluster mode, say). Waits until
    the server answers PING.
    """
    server = _require_redis_server()
    datadir = Path(datadir).absolute()
    datadir.mkdir(parents=True, exist_ok=True)
    if port is not None:
        return _launch_redis(server, datadir, port, persistent=persistent, extra_args=extra_args)
    last_error: _PortInUseError | None = None
    for _ in range(_PORT_ATTEMPTS):
        try:
            return _launch_redis(
                server, datadir, free_port(), persistent=persistent, extra_args=extra_args
            )
        except _PortInUseError as exc:
            last_error = exc
    raise DevServiceError(f"Redis found no free port in {_PORT_ATTEMPTS} tries") from last_error


def _redis_arguments(datadir: Path, port: int, *, persistent: bool) -> list[str]:
    args = ["--port", str(port), "--bind", HOST, "--dir", str(datadir), "--daemonize", "no"]
    if not persistent:
        args += ["--save", "", "--appendonly", "no"]
    return args


def _launch_redis(
    server: Path,
    datadir: Path,
    port: int,
    *,
    persistent: bool,
    extra_args: Sequence[str] = (),
) -> LocalRedis:
    """Start redis-server and wait until it answers PING on `port`."""
    log_path = datadir / "redis.log"
    _rotate_log(log_path)
    offset = _log_size(log_path)
    command = [str(server), *_redis_arguments(datadir, port, persistent=persistent), *extra_args]
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=datadir,
            start_new_session=True,
        )
    try:
        _wait_for_redis(process, port, log_path, offset)
    except BaseException:
        _terminate(process, signal.SIGKILL)
        raise
    log.info("Redis running on %s:%d (PID %d, files in %s)", HOST, port, process.pid, datadir)
    return LocalRedis(
        port=port,
        datadir=datadir,
        url=f"redis://{HOST}:{port}/0",
        pid=process.pid,
        log_path=log_path,
        _process=process,
    )


def _redis_command(port: int, *parts: str, timeout: float = 1.0) -> bytes:
    """Send one RESP command; return a bulk reply's payload, or the first line of any other."""
    payload = f"*{len(parts)}\r\n" + "".join(f"${len(p.encode())}\r\n{p}\r\n" for p in parts)
    with (
        socket.create_connection((HOST, port), timeout=timeout) as sock,
        sock.makefile("rb") as reader,
    ):
        sock.sendall(payload.encode())
        line = reader.readline()
        if line.startswith(b"$"):
            length = int(line[1:])
            return reader.read(length + 2)[:length] if length >= 0 else b""
        return line.rstrip(b"\r\n")


def _redis_answers(port: int, pid: int) -> bool:
    """Whether *our* Redis (process `pid`) answers PING on `port`."""
    try:
        if _redis_command(port, "PING") != b"+PONG":
            return False
        info = _redis_command(port, "INFO", "server")
    except (OSError, ValueError):
        return False
    return f"process_id:{pid}\r\n".encode() in info


def _wait_for_redis(
    process: subprocess.Popen[bytes], port: int, log_path: Path, offset: int
) -> None:
    """Wait until our redis-server answers PING, or raise with its log."""
    deadline = time.monotonic() + REDIS_START_TIMEOUT
    while True:
        code = process.poll()
        if code is not None:
            tail = _log_tail(log_path, offset)
            if any(marker in tail for marker in _PORT_IN_USE_MARKERS):
                raise _PortInUseError(f"Redis could not listen on {HOST}:{port}:\n{tail}")
            raise DevServiceError(
                f"redis-server exited with code {code} while starting on {HOST}:{port}. "
                f"Last lines of {log_path}:\n{tail}"
            )
        if _redis_answers(port, process.pid):
            return
        if time.monotonic() > deadline:
            raise DevServiceError(
                f"Redis did not answer PING on {HOST}:{port} within {REDIS_START_TIMEOUT:.0f}s. "
                f"Last lines of {log_path}:\n{_log_tail(log_path, offset)}"
            )
        time.sleep(_POLL_INTERVAL)


# --------------------------------------------------------------------------------------------
# Redis Cluster
# --------------------------------------------------------------------------------------------

CLUSTER_SLOTS = 16384
CLUSTER_PRIMARIES = 3
REDIS_CLUSTER_FORM_TIMEOUT = 30.0


def _cluster_arguments(node_timeout_ms: int) -> list[str]:
    return [
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-node-timeout",
        str(node_timeout_ms),
        # fail over whatever the replica's lag: the tests kill primaries on purpose
        "--cluster-replica-validity-factor",
        "0",
        # a replica syncs at once (Redis waits 5 s by default for more replicas to share it)
        "--repl-diskless-sync-delay",
        "0",
    ]


@dataclass
class LocalRedisCluster:
    """A running local Redis Cluster started by `start_redis_cluster`: three primaries (the
    first three `nodes` at creation; a failover changes that, ask `primary_ports`), each with
    the same number of replicas."""

    nodes: list[LocalRedis]
    node_timeout_ms: int

    @property
    def url(self) -> str:
        """`redis+cluster://127.0.0.1:P1,127.0.0.1:P2,...`: every node is a seed."""
        return "redis+cluster://" + ",".join(f"{HOST}:{n.port}" for n in self.nodes)

    def node(self, port: int) -> LocalRedis:
        return next(n for n in self.nodes if n.port == port)

    def primary_ports(self) -> list[int]:
        """Ports of the nodes that are primaries owning slots, as the first running node
        that answers sees it (failed nodes excluded)."""
        for node in self.nodes:
            if not node.running():
                continue
            try:
                table = _redis_command(node.port, "CLUSTER", "NODES").decode()
            except OSError:
                continue
            return sorted(
                port
                for port, flags, slots in _cluster_nodes(table)
                if "master" in flags and slots and "fail" not in flags
            )
        raise DevServiceError("no node of the Redis Cluster answers")

    def restart(self, node: LocalRedis) -> LocalRedis:
        """Start a stopped node again on its port and folder: it keeps its identity, and its
        slots or its primary, from its nodes.conf."""
        again = start_redis(
            node.datadir,
            port=node.port,
            persistent=False,
            extra_args=_cluster_arguments(self.node_timeout_ms),
        )
        self.nodes[self.nodes.index(node)] = again
        return again

    def wait_ok(self, timeout: float = REDIS_CLUSTER_FORM_TIMEOUT) -> None:
        """Wait until every running node reports `cluster_state:ok` and every replica's link
        to its primary is up."""
        deadline = time.monotonic() + timeout
        while not all(_cluster_node_ok(n.port) for n in self.nodes if n.running()):
            if time.monotonic() > deadline:
                states = {n.port: _cluster_node_state(n.port) for n in self.nodes if n.running()}
                raise DevServiceError(f"Redis Cluster not ok within {timeout:.0f}s: {states}")
            time.sleep(_POLL_INTERVAL)

    def stop(self) -> None:
        """Stop every node (idempotent)."""
        for node in self.nodes:
            node.stop()


def _cluster_nodes(table: str) -> list[tuple[int, set[str], bool]]:
    """(port, flags, owns slots) of each line of CLUSTER NODES."""
    nodes = []
    for line in table.splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        address = fields[1].split("@", 1)[0]
        nodes.append((int(address.rsplit(":", 1)[1]), set(fields[2].split(",")), len(fields) > 8))
    return nodes


def _cluster_node_state(port: int) -> str:
    try:
        info = _redis_command(port, "CLUSTER", "INFO").decode()
        replication = _redis_command(port, "INFO", "replication").decode()
    except (OSError, ValueError) as exc:
        return f"unreachable ({exc})"
    state = "cluster_state:ok" if "cluster_state:ok" in info else "cluster_state:fail"
    if "role:slave" in replication and "master_link_status:up" not in replication:
        state += ", replica link down"
    return state


def _cluster_node_ok(port: int) -> bool:
    return _cluster_node_state(port) == "cluster_state:ok"


def _cluster_call(port: int, *parts: str) -> str:
    reply = _redis_command(port, *parts, timeout=5.0).decode()
    if reply.startswith("-"):
        raise DevServiceError(f"Redis on port {port}: {' '.join(parts)} failed: {reply[1:]}")
    return reply


def start_redis_cluster(
    datadir: Path, nodes: int = 3, *, node_timeout_ms: int = 1000
) -> LocalRedisCluster:
    """Start a non-persistent Redis Cluster of `nodes` servers (3: three primaries; 6: three
    primaries with one replica each; any multiple of 3) on free ports, each node's files in
    `datadir/node-N`, and wait until it serves every slot.

    `node_timeout_ms` is how long a silent node takes to be declared failed (and a replica
    promoted in its place): short here, so that failover tests stay quick. Needs Redis 7.
    """
    if nodes < CLUSTER_PRIMARIES or nodes % CLUSTER_PRIMARIES:
        raise DevServiceError(f"a Redis Cluster here has 3, 6, 9 ... nodes, not {nodes}")
    datadir = Path(datadir).absolute()
    servers: list[LocalRedis] = []
    cluster = LocalRedisCluster(servers, node_timeout_ms)
    try:
        for i in range(nodes):
            servers.append(
                start_redis(
                    datadir / f"node-{i}",
                    persistent=False,
                    extra_args=_cluster_arguments(node_timeout_ms),
                )
            )
        _form_cluster(servers)
        cluster.wait_ok()
    except BaseException:
        cluster.stop()
        raise
    log.info("Redis Cluster running on ports %s", ", ".join(str(s.port) for s in servers))
    return cluster


def _form_cluster(servers: list[LocalRedis]) -> None:
    """What `redis-cli --cluster create` does: distinct config epochs, slots split evenly over
    the first three nodes, every node introduced to the first, then the replicas attached."""
    for epoch, server in enumerate(servers, start=1):
        _cluster_call(server.port, "CLUSTER", "SET-CONFIG-EPOCH", str(epoch))
    for i, server in enumerate(servers[:CLUSTER_PRIMARIES]):
        first = i * CLUSTER_SLOTS // CLUSTER_PRIMARIES
        last = (i + 1) * CLUSTER_SLOTS // CLUSTER_PRIMARIES - 1
        _cluster_call(server.port, "CLUSTER", "ADDSLOTSRANGE", str(first), str(last))
    for server in servers[1:]:
        _cluster_call(servers[0].port, "CLUSTER", "MEET", HOST, str(server.port))
    deadline = time.monotonic() + REDIS_CLUSTER_FORM_TIMEOUT
    ids = [_cluster_call(s.port, "CLUSTER", "MYID") for s in servers]
    for i, replica in enumerate(servers[CLUSTER_PRIMARIES:]):
        primary = ids[i % CLUSTER_PRIMARIES]
        # a replica must know its primary (gossip) before it may follow it
        while primary not in _cluster_call(replica.port, "CLUSTER", "NODES"):
            if time.monotonic() > deadline:
                raise DevServiceError(f"Redis node {replica.port} never learnt of {primary}")
            time.sleep(_POLL_INTERVAL)
        _cluster_call(replica.port, "CLUSTER", "REPLICATE", primary)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m messaging.devservices --ensure-packages`."""
    parser = argparse.ArgumentParser(
        prog="python -m messaging.devservices",
        description="Local PostgreSQL and Redis servers for development and tests.",
    )
    parser.add_argument(
        "--ensure-packages",
        action="store_true",
        help="install missing PostgreSQL/Redis server packages (root on Debian), else explain",
    )
    parser.add_argument(
        "--with-test-servers",
        action="store_true",
        help="also the servers only the test suite starts: "
        + ", ".join(sorted(TEST_SERVER_PACKAGES)),
    )
    args = parser.parse_args(argv)
    if not args.ensure_packages:
        parser.print_usage(sys.stderr)
        print("nothing to do: pass --ensure-packages", file=sys.stderr)
        return 2
    try:
        ensure_server_packages(with_test_servers=args.with_test_servers)
    except DevServiceError as exc:
        print(f"devservices: error: {exc}", file=sys.stderr)
        return 1
    print(
        f"devservices: PostgreSQL programs in {_postgres_bindir()}, "
        f"redis-server at {_redis_server_path()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
