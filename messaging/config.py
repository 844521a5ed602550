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
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit

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
class Notify:
    """The notifier (`messaging worker`): where e-mail and push go, and how it retries."""

    # the service's address as people reach it, for the link in e-mails
    public_url: str = "http://127.0.0.1:8000"
    smtp_from: str = "messagerie@localhost"
    smtp_timeout_s: float = 30.0
    # the VAPID private key, as PEM; None: no Web Push
    vapid_private_pem: str | None = field(default=None, repr=False)
    vapid_subject: str = "mailto:messagerie@localhost"
    # plain http:// push endpoints (tests and development only)
    push_allow_http: bool = False
    # first wait after a failed try; x4 each time, then a recorded failure after max_attempts
    retry_base_s: float = 60.0
    max_attempts: int = 6
    poll_s: float = 1.0
    concurrency: int = 8


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
    # ClamAV's clamd (tcp://host:port or unix:///path); unset: uploads are not virus-scanned
    clamd_url: str | None = None
    smtp_url: str | None = None
    notify_delay_s: float = 60.0
    dev_login: bool = False
    log_format: str = "auto"  # auto: readable lines on a terminal, JSON otherwise
    db_pool_min: int = 2
    db_pool_max: int = 10
    limits: Limits = field(default_factory=Limits)
    timeouts: Timeouts = field(default_factory=Timeouts)
    notify: Notify = field(default_factory=Notify)

    def attachment_store(self) -> AttachmentStore:
        return parse_attachments_url(self.attachments_url)

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
    if not redis_url.startswith(("redis://", "rediss://", "unix://", *REDIS_CLUSTER_PREFIXES)):
        raise ConfigError(f"MESSAGING_REDIS_URL must be a redis:// URL, got {redis_url!r}")
    parse_redis_cluster_url(redis_url)
    keys_file = env.get("MESSAGING_JWT_PUBLIC_KEYS") or None
    secret = env.get("MESSAGING_JWT_SECRET") or None
    if secret is None and keys_file is None:
        secret = local_jwt_secret(data_dir)
    if keys_file is not None and not Path(keys_file).is_file():
        raise ConfigError(f"MESSAGING_JWT_PUBLIC_KEYS names no readable file: {keys_file!r}")
    log_format = env.get("MESSAGING_LOG_FORMAT", "auto")
    if log_format not in ("auto", "json", "console"):
        raise ConfigError(f"MESSAGING_LOG_FORMAT must be auto, json or console, got {log_format!r}")
    attachments_url = (
        env.get("MESSAGING_ATTACHMENTS_URL") or (data_dir / "attachments").resolve().as_uri()
    )
    parse_attachments_url(attachments_url)
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
        attachments_url=attachments_url,
        clamd_url=_clamd_url(env),
        smtp_url=_smtp_url(env),
        notify_delay_s=_float(env, "MESSAGING_NOTIFY_DELAY_S", 60.0),
        dev_login=_bool(env, "MESSAGING_DEV_LOGIN", False),
        log_format=log_format,
        db_pool_min=_int(env, "MESSAGING_DB_POOL_MIN", 2, 1, 1000),
        db_pool_max=_int(env, "MESSAGING_DB_POOL_MAX", 10, 1, 1000),
        limits=_limits(env),
        notify=_notify(env),
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


# Redis Cluster ---------------------------------------------------------------------------------

REDIS_CLUSTER_PREFIXES = ("redis+cluster://", "rediss+cluster://")


@dataclass(frozen=True, slots=True)
class RedisClusterURL:
    """`redis+cluster://[user:password@]host:port[,host:port...]` names a Redis Cluster by any of
    its nodes (seeds; the others are discovered); `rediss+cluster://` connects with TLS. The
    gateways then fan out with sharded pub/sub (messaging/bus/cluster.py)."""

    seeds: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False


def parse_redis_cluster_url(url: str) -> RedisClusterURL | None:
    """None for a single server's URL; the cluster's seeds and credentials otherwise. Refused
    with the variable's name when unusable (a password in the URL is never repeated)."""
    name = "MESSAGING_REDIS_URL"
    if not url.startswith(REDIS_CLUSTER_PREFIXES):
        return None
    scheme, rest = url.split("://", 1)
    netloc, _, tail = rest.partition("/")
    if tail.strip("/") or "?" in netloc:
        raise ConfigError(f"{name}: a redis+cluster:// URL takes no database, path or options")
    credentials, _, hosts = netloc.rpartition("@")
    username, _, password = credentials.partition(":")
    seeds = tuple(_seed(name, h) for h in hosts.split(","))
    return RedisClusterURL(
        seeds=seeds,
        username=unquote(username) or None,
        password=unquote(password) or None,
        tls=scheme == "rediss+cluster",
    )


def _seed(name: str, hostport: str) -> tuple[str, int]:
    parts = urlsplit("//" + hostport.strip())
    port = _port_of(parts)
    if not parts.hostname or port is None:
        raise ConfigError(f"{name}: each cluster node must be host:port, got {hostport!r}")
    return parts.hostname, port


# Attachments -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttachmentStore:
    """Where attachments are kept: `file` (a local folder) or `s3` (S3-compatible storage).

    `file:///var/lib/messaging/attachments`
    `s3://[ACCESS_KEY:SECRET_KEY@]bucket[/prefix]?endpoint=https://...&region=...`: without
    keys in the URL, the usual AWS sources (AWS_ACCESS_KEY_ID ..., ~/.aws, instance role).
    """

    kind: str
    path: Path | None = None
    bucket: str = ""
    prefix: str = ""
    endpoint: str | None = None
    region: str = "us-east-1"
    access_key: str | None = None
    secret_key: str | None = field(default=None, repr=False)


def parse_attachments_url(url: str) -> AttachmentStore:
    """MESSAGING_ATTACHMENTS_URL, refused with the variable's name when unusable (a secret in
    the URL is never repeated in the message)."""
    name = "MESSAGING_ATTACHMENTS_URL"
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ConfigError(f"{name} must be file:///absolute/folder, got {url!r}")
        return AttachmentStore(kind="file", path=Path(unquote(parts.path)))
    if parts.scheme != "s3":
        raise ConfigError(f"{name} must start with file:// or s3://")
    bucket = parts.hostname or ""
    if not bucket:
        raise ConfigError(f"{name}: an s3:// URL needs a bucket (s3://bucket?endpoint=...)")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(query) - {"endpoint", "region"}
    if unknown:
        raise ConfigError(f"{name}: unknown parameter(s) {', '.join(sorted(unknown))}")
    endpoint = query.get("endpoint")
    if endpoint is not None and urlsplit(endpoint).scheme not in ("http", "https"):
        raise ConfigError(f"{name}: endpoint must be an http:// or https:// URL")
    if (parts.username is None) != (parts.password is None):
        raise ConfigError(f"{name}: give both the access key and the secret key, or neither")
    return AttachmentStore(
        kind="s3",
        bucket=bucket,
        prefix=parts.path.strip("/"),
        endpoint=endpoint,
        region=query.get("region", "us-east-1"),
        access_key=unquote(parts.username) if parts.username is not None else None,
        secret_key=unquote(parts.password) if parts.password is not None else None,
    )


def _clamd_url(env: Mapping[str, str]) -> str | None:
    raw = env.get("MESSAGING_CLAMD_URL") or None
    if raw is None:
        return None
    parts = urlsplit(raw)
    tcp_ok = parts.scheme == "tcp" and parts.hostname and _port_of(parts) is not None
    unix_ok = parts.scheme == "unix" and parts.path.startswith("/")
    if not (tcp_ok or unix_ok):
        raise ConfigError(
            f"MESSAGING_CLAMD_URL must be tcp://host:port or unix:///path, got {raw!r}"
        )
    return raw


def _port_of(parts: SplitResult) -> int | None:
    try:
        return parts.port
    except ValueError:  # not a number, or out of range
        return None


# Notifications ---------------------------------------------------------------------------------


def _smtp_url(env: Mapping[str, str]) -> str | None:
    """`smtp://[user:password@]host[:port]` (STARTTLS when offered) or `smtps://` (TLS)."""
    raw = env.get("MESSAGING_SMTP_URL") or None
    if raw is None:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname or _port_of(parts) is None:
        raise ConfigError(
            "MESSAGING_SMTP_URL must be smtp://host:port or smtps://host:port"
            " (credentials, if any, as user:password@)"
        )
    return raw


def _notify(env: Mapping[str, str]) -> Notify:
    default = Notify()
    public_url = (env.get("MESSAGING_PUBLIC_URL") or default.public_url).rstrip("/")
    if urlsplit(public_url).scheme not in ("http", "https") or not urlsplit(public_url).netloc:
        raise ConfigError(f"MESSAGING_PUBLIC_URL must be an http(s):// URL, got {public_url!r}")
    smtp_from = env.get("MESSAGING_SMTP_FROM") or default.smtp_from
    if smtp_from.count("@") != 1 or any(c.isspace() for c in smtp_from):
        raise ConfigError(f"MESSAGING_SMTP_FROM must be an e-mail address, got {smtp_from!r}")
    subject = env.get("MESSAGING_VAPID_SUBJECT") or default.vapid_subject
    if not subject.startswith(("mailto:", "https://")):
        raise ConfigError("MESSAGING_VAPID_SUBJECT must be a mailto: or https:// URL")
    max_attempts = _int(env, "MESSAGING_NOTIFY_MAX_ATTEMPTS", default.max_attempts, 1, 100)
    return Notify(
        public_url=public_url,
        smtp_from=smtp_from,
        smtp_timeout_s=_float(env, "MESSAGING_SMTP_TIMEOUT_S", default.smtp_timeout_s) or 1.0,
        vapid_private_pem=_vapid_pem(env.get("MESSAGING_VAPID_PRIVATE_KEY") or None),
        vapid_subject=subject,
        push_allow_http=_bool(env, "MESSAGING_PUSH_ALLOW_HTTP", False),
        retry_base_s=_float(env, "MESSAGING_NOTIFY_RETRY_S", default.retry_base_s),
        max_attempts=max_attempts,
        poll_s=_float(env, "MESSAGING_WORKER_POLL_S", default.poll_s) or default.poll_s,
        concurrency=_int(env, "MESSAGING_NOTIFY_CONCURRENCY", default.concurrency, 1, 256),
    )


def _vapid_pem(raw: str | None) -> str | None:
    """MESSAGING_VAPID_PRIVATE_KEY: a PEM file, or the key itself (PEM, or base64url of the raw
    32-byte P-256 key or of its DER form); returned as PEM. Never repeated in an error."""
    if raw is None:
        return None
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    name = "MESSAGING_VAPID_PRIVATE_KEY"
    text = raw
    if not raw.lstrip().startswith("-----") and Path(raw).is_file():
        text = Path(raw).read_text(encoding="utf-8")
    try:
        if "-----BEGIN" in text:
            key = serialization.load_pem_private_key(text.encode(), password=None)
        else:
            data = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
            if len(data) == 32:
                key = ec.derive_private_key(int.from_bytes(data, "big"), ec.SECP256R1())
            else:
                key = serialization.load_der_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{name} is not a readable private key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ConfigError(f"{name} must be a P-256 (prime256v1) key")
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem.decode()
