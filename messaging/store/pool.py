"""The Postgres pool, the schema migration, and the translation of asyncpg errors.

asyncpg errors become `MessagingError`s here and nowhere else: a caller sees `unavailable` when
the database cannot be reached, `conflict` on a constraint race, `internal` on anything else.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path

import asyncpg
import orjson
import structlog

from messaging.errors import ErrorCode, MessagingError

log = structlog.get_logger(__name__)

Pool = asyncpg.Pool
Connection = asyncpg.Connection


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda v: orjson.dumps(v).decode(),
        decoder=orjson.loads,
        schema="pg_catalog",
    )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """No reset on release: the service never leaves session state on a pooled connection
    (no SET, LISTEN, session advisory locks or open cursors outside a transaction), so the
    reset query asyncpg would send each time is a round trip for nothing."""


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose connections decode jsonb to Python values."""
    try:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            init=_init_connection,
            reset=_keep_session,
            command_timeout=30,
        )
    except (OSError, asyncpg.PostgresError) as exc:
        raise MessagingError(ErrorCode.UNAVAILABLE, "unavailable") from exc
    assert pool is not None
    return pool


@contextlib.asynccontextmanager
async def translated_errors() -> AsyncIterator[None]:
    """Turn database failures into protocol errors at the store's edge."""
    try:
        yield
    except MessagingError:
        raise
    except asyncpg.UniqueViolationError as exc:
        raise MessagingError(ErrorCode.CONFLICT) from exc
    except (asyncpg.ForeignKeyViolationError, asyncpg.CheckViolationError) as exc:
        raise MessagingError(ErrorCode.INVALID) from exc
    except asyncpg.InsufficientPrivilegeError as exc:
        raise MessagingError(ErrorCode.FORBIDDEN) from exc
    except (
        OSError,
        asyncpg.CannotConnectNowError,
        asyncpg.ConnectionDoesNotExistError,
        asyncpg.TooManyConnectionsError,
        asyncpg.InterfaceError,
        TimeoutError,
    ) as exc:
        raise MessagingError(ErrorCode.UNAVAILABLE) from exc
    except asyncpg.PostgresError as exc:
        log.error("database_error", sqlstate=exc.sqlstate, error_class=type(exc).__name__)
        raise MessagingError(ErrorCode.INTERNAL) from exc


def schema_sql() -> str:
    """schema.sql: at the project's root in a checkout, inside the package when installed."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here.parent / "schema.sql", here / "schema.sql"):
        if candidate.is_file():
            return candidate.read_text(encoding="utf-8")
    return resources.files("messaging").joinpath("schema.sql").read_text(encoding="utf-8")


APP_GRANTS = """
GRANT USAGE ON SCHEMA public TO {role};
GRANT SELECT, INSERT ON events TO {role};
GRANT SELECT, INSERT, UPDATE ON schools, class_groups, users, staff_roles, students,
    parent_children, conversations, members TO {role};
GRANT DELETE ON staff_roles, parent_children TO {role};
REVOKE UPDATE, DELETE, TRUNCATE ON events FROM {role};
GRANT SELECT, INSERT ON audit_reads TO {role};
GRANT USAGE ON SEQUENCE audit_reads_id_seq TO {role};
REVOKE UPDATE, DELETE, TRUNCATE ON audit_reads FROM {role};
GRANT SELECT, INSERT, UPDATE, DELETE ON attachments TO {role};
GRANT SELECT, INSERT ON attachment_uses TO {role};
GRANT SELECT, INSERT, UPDATE, DELETE ON notifications, push_subscriptions TO {role};
GRANT SELECT, INSERT, UPDATE ON notification_holds, notification_prefs TO {role};
GRANT SELECT, INSERT ON notification_deliveries, notification_hours_changes TO {role};
GRANT USAGE ON SEQUENCE notifications_id_seq, notification_holds_id_seq,
    notification_deliveries_id_seq, notification_hours_changes_id_seq TO {role};
GRANT SELECT, INSERT, UPDATE ON broadcasts TO {role};
"""


async def migrate(owner_dsn: str, app_role: str | None) -> None:
    """Apply schema.sql as the schema's owner and grant the service's role its rights.

    Serialised with an advisory lock, so several processes starting at once apply it once each
    without tripping over each other.
    """
    conn = await asyncpg.connect(owner_dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock(724011)")
        try:
            await conn.execute(schema_sql())
            owner = await conn.fetchval("SELECT current_user")
            if app_role and app_role != owner:
                quoted = await conn.fetchval("SELECT quote_ident($1)", app_role)
                await conn.execute(APP_GRANTS.format(role=quoted))
        finally:
            await conn.execute("SELECT pg_advisory_unlock(724011)")
    finally:
        await conn.close()
    log.info("schema_applied", app_role=app_role)
