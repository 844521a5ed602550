"""Settings, read once from `MESSAGING_*` environment variables and passed down explicitly.

Defaults serve a developer on one machine; `messaging dev` (what `make run` starts) fills in the
local Postgres and Redis it starts. A wrong value is refused at start with the variable's name.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

DEFAULT_DATA_DIR = Path(".data")


class ConfigError(ValueError):
    """A configuration variable with an unusable value; the message names the variable."""


@dataclass(frozen=True, slots=True)
class Limits:
    max_frame_bytes: int = 64 * 1024
    max_body_chars: int = 10_000
    # frames a connection may queue before it counts as a slow consumer (closed with 4008)
    outbox_frames: int = 1_000
    # sends of one connection waiting for their commit; past this the reader waits
    inflight_sends: int = 256
    # per-connection flood control: sustained rate and burst (never refuses < 10 frames/s)
    frames_per_s: float = 20.0
    frames_burst: float = 40.0
    fetch_max: int = 200
    resume_max_events: int = 200
    # appends of one batch transaction at most
    batch_max: int = 512


@dataclass(frozen=True, slots=True)
class Timeouts:
    hello_s: float = 10.0
    drain_s: float = 8.0
    redis_retry_max_s: float = 2.0
    db_command_s: float = 10.0


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str
    migrate_database_url: str
    redis_url: str
    host: str = "127.0.0.1"
    port: int = 8000
    jwt_secret: str | None = None
    jwt_public_keys_file: Path | None = None
    admin_subjects: frozenset[str] = frozenset()
    allowed_origins: frozenset[str] = frozenset()
    attachments_url: str = ""
    smtp_url: str | None = None
    notify_delay_s: float = 60.0
    dev_login: bool = False
    log_format: str = "auto"  # auto: readable lines on a terminal, JSON otherwise
    db_pool_min: int = 2
    db_pool_max: int = 10
    limits: Limits = field(default_factory=Limits)
    timeouts: Timeouts = field(default_factory=Timeouts)

    def origin_allowed(self, origin: str | None, own_origins: frozenset[str]) -> bool:
        """Non-browser clients send no Origin; browsers must come from an allowed one."""
        if origin is None:
            return True
        allowed = self.allowed_origins or own_origins
        return origin in allowed


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{name} must not be negative, got {value}")
    return value


def _set(env: Mapping[str, str], name: str) -> frozenset[str]:
    return frozenset(s.strip() for s in env.get(name, "").split(",") if s.strip())


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 1 or 0, got {raw!r}")


def local_jwt_secret(data_dir: Path) -> str:
    """The development HS256 secret: generated once and kept in the local data folder."""
    path = data_dir / "jwt-secret"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    return secret


def load(env: Mapping[str, str] | None = None, *, data_dir: Path = DEFAULT_DATA_DIR) -> Settings:
    """Read the settings from the environment (os.environ by default)."""
    env = os.environ if env is None else env
    database_url = env.get("MESSAGING_DATABASE_URL", "")
    if not database_url:
        raise ConfigError(
            "MESSAGING_DATABASE_URL is not set (run `make run` for a local development setup)"
        )
    redis_url = env.get("MESSAGING_REDIS_URL", "")
    if not redis_url:
        raise ConfigError("MESSAGING_REDIS_URL is not set")
    if not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"MESSAGING_REDIS_URL must be a redis:// URL, got {redis_url!r}")
    keys_file = env.get("MESSAGING_JWT_PUBLIC_KEYS") or None
    secret = env.get("MESSAGING_JWT_SECRET") or None
    if secret is None and keys_file is None:
        secret = local_jwt_secret(data_dir)
    if keys_file is not None and not Path(keys_file).is_file():
        raise ConfigError(f"MESSAGING_JWT_PUBLIC_KEYS names no readable file: {keys_file!r}")
    log_format = env.get("MESSAGING_LOG_FORMAT", "auto")
    if log_format not in ("auto", "json", "console"):
        raise ConfigError(f"MESSAGING_LOG_FORMAT must be auto, json or console, got {log_format!r}")
    return Settings(
        database_url=database_url,
        migrate_database_url=env.get("MESSAGING_MIGRATE_DATABASE_URL") or database_url,
        redis_url=redis_url,
        host=env.get("MESSAGING_HOST", "127.0.0.1"),
        port=_int(env, "MESSAGING_PORT", 8000, 0, 65535),
        jwt_secret=secret,
        jwt_public_keys_file=Path(keys_file) if keys_file else None,
        admin_subjects=_set(env, "MESSAGING_ADMIN_SUBJECTS"),
        allowed_origins=_set(env, "MESSAGING_ALLOWED_ORIGINS"),
        attachments_url=env.get("MESSAGING_ATTACHMENTS_URL")
        or (data_dir / "attachments").resolve().as_uri(),
        smtp_url=env.get("MESSAGING_SMTP_URL") or None,
        notify_delay_s=_float(env, "MESSAGING_NOTIFY_DELAY_S", 60.0),
        dev_login=_bool(env, "MESSAGING_DEV_LOGIN", False),
        log_format=log_format,
        db_pool_min=_int(env, "MESSAGING_DB_POOL_MIN", 2, 1, 1000),
        db_pool_max=_int(env, "MESSAGING_DB_POOL_MAX", 10, 1, 1000),
        limits=_limits(env),
    )


def _limits(env: Mapping[str, str]) -> Limits:
    """Per-connection flood control; the rate can be raised but never below 10 frames/s, the
    protocol's promise to every client."""
    default = Limits()
    rate = _float(env, "MESSAGING_RATE_FRAMES_PER_S", default.frames_per_s)
    burst = _float(env, "MESSAGING_RATE_BURST", default.frames_burst)
    if rate < 10 or burst < 10:
        raise ConfigError("MESSAGING_RATE_FRAMES_PER_S and MESSAGING_RATE_BURST must be >= 10")
    return replace(default, frames_per_s=rate, frames_burst=burst)
