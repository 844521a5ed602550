"""The event log is append-only in Postgres itself, whoever connects (PROTOCOL.md section 6)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from messaging.devservices import LocalPostgres
from tests.rosters import SchoolIds
from tests.servers import Gateway, connect

pytestmark = pytest.mark.asyncio(loop_scope="session")

WRITES = {
    "update": "UPDATE events SET body = 'falsifié' WHERE conv = $1",
    "update_no_op": "UPDATE events SET seq = seq WHERE conv = $1",
    "delete": "DELETE FROM events WHERE conv = $1",
    "delete_one": "DELETE FROM events WHERE conv = $1 AND seq = 2",
    "upsert": "INSERT INTO events (conv, seq, kind, actor, body) VALUES ($1, 2, 'message', 'x',"
    " 'x') ON CONFLICT (conv, seq) DO UPDATE SET body = 'x'",
}


@pytest_asyncio.fixture(loop_scope="session")
async def conv(gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds) -> str:
    """A conversation of three events: created and two messages."""
    async with connect(gateways[0], secret, school.teacher) as teacher:
        opened = await teacher.request(
            {"t": "open", "school": school.school, "members": [school.parent]}
        )
        for i in range(2):
            sent = await teacher.request(
                {"t": "send", "conv": opened["conv"], "cid": f"a{i}", "body": f"Message {i}"}
            )
            assert sent["t"] == "ok", sent
    return str(opened["conv"])


@pytest_asyncio.fixture(loop_scope="session")
async def app_db(pg: LocalPostgres) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(pg.app_dsn)
    try:
        yield conn
    finally:
        await conn.close()


@pytest_asyncio.fixture(loop_scope="session")
async def owner_db(pg: LocalPostgres) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(pg.owner_dsn)
    try:
        yield conn
    finally:
        await conn.close()


async def _rows(db: asyncpg.Connection, conv: str) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT xmin::text AS xmin, * FROM events WHERE conv = $1 ORDER BY seq", conv
    )
    return [dict(r) for r in rows]


@pytest.mark.parametrize("statement", list(WRITES), ids=list(WRITES))
async def test_app_role_cannot_change_events(
    app_db: asyncpg.Connection, conv: str, statement: str
) -> None:
    """UPDATE and DELETE by the service's own role fail for lack of privilege."""
    before = await _rows(app_db, conv)
    assert [r["seq"] for r in before] == [1, 2, 3]
    with pytest.raises(asyncpg.InsufficientPrivilegeError) as refused:
        await app_db.execute(WRITES[statement], conv)
    assert "permission denied" in str(refused.value)
    assert await _rows(app_db, conv) == before


async def test_app_role_cannot_truncate_events(app_db: asyncpg.Connection, conv: str) -> None:
    """TRUNCATE by the service's own role fails for lack of privilege."""
    before = await _rows(app_db, conv)
    for statement in ("TRUNCATE events", "TRUNCATE events CASCADE"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await app_db.execute(statement)
    assert await _rows(app_db, conv) == before


@pytest.mark.parametrize("statement", list(WRITES), ids=list(WRITES))
async def test_owner_cannot_change_events(
    owner_db: asyncpg.Connection, conv: str, statement: str
) -> None:
    """UPDATE and DELETE by the schema's owner are refused by the append-only trigger."""
    before = await _rows(owner_db, conv)
    assert [r["seq"] for r in before] == [1, 2, 3]
    with pytest.raises(asyncpg.InsufficientPrivilegeError) as refused:
        await owner_db.execute(WRITES[statement], conv)
    assert "append-only" in str(refused.value)
    assert await _rows(owner_db, conv) == before


async def test_owner_cannot_truncate_events(owner_db: asyncpg.Connection, conv: str) -> None:
    """TRUNCATE by the schema's owner is refused by the append-only trigger."""
    before = await _rows(owner_db, conv)
    with pytest.raises(asyncpg.InsufficientPrivilegeError) as refused:
        await owner_db.execute("TRUNCATE events")
    assert "append-only" in str(refused.value)
    assert await _rows(owner_db, conv) == before


@pytest.mark.parametrize(
    "statement",
    [
        "ALTER TABLE events DISABLE TRIGGER events_no_update_delete",
        "ALTER TABLE events DISABLE TRIGGER ALL",
        "ALTER TABLE events DISABLE TRIGGER USER",
        "DROP TRIGGER events_no_update_delete ON events",
        "DROP TRIGGER events_no_truncate ON events",
        "ALTER TABLE events ADD COLUMN note text",
        "ALTER TABLE events RENAME TO old_events",
        "DROP TABLE events",
        "CREATE OR REPLACE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql"
        " AS $$ BEGIN RETURN OLD; END; $$",
        "SET session_replication_role = replica",
    ],
    ids=[
        "disable_one_trigger",
        "disable_all_triggers",
        "disable_user_triggers",
        "drop_row_trigger",
        "drop_truncate_trigger",
        "add_column",
        "rename",
        "drop_table",
        "replace_trigger_function",
        "replication_role",
    ],
)
async def test_app_role_cannot_alter_the_log_or_its_triggers(
    app_db: asyncpg.Connection, statement: str
) -> None:
    """The service's role can neither disable, drop nor replace the log's safeguards."""
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await app_db.execute(statement)
    triggers = await app_db.fetch(
        "SELECT tgname, tgenabled::text AS tgenabled FROM pg_trigger"
        " WHERE tgrelid = 'events'::regclass AND NOT tgisinternal ORDER BY tgname"
    )
    assert [(t["tgname"], t["tgenabled"]) for t in triggers] == [
        ("events_no_truncate", "O"),
        ("events_no_update_delete", "O"),
    ]


async def test_app_role_holds_only_select_and_insert_on_events(
    app_db: asyncpg.Connection, pg: LocalPostgres
) -> None:
    """The role of MESSAGING_DATABASE_URL holds SELECT and INSERT on events and nothing more,
    and is neither a superuser nor the table's owner."""
    role = await app_db.fetchval("SELECT current_user")
    assert role == pg.app_dsn.split("://", 1)[1].split("@", 1)[0]
    rights = {
        p: await app_db.fetchval("SELECT has_table_privilege('events', $1)", p)
        for p in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "TRIGGER", "REFERENCES")
    }
    assert rights == {
        "SELECT": True,
        "INSERT": True,
        "UPDATE": False,
        "DELETE": False,
        "TRUNCATE": False,
        "TRIGGER": False,
        "REFERENCES": False,
    }
    facts = await app_db.fetchrow(
        "SELECT r.rolsuper, r.rolbypassrls, pg_has_role(t.tableowner, 'USAGE') AS owns"
        " FROM pg_roles r, pg_tables t WHERE r.rolname = current_user"
        " AND t.schemaname = 'public' AND t.tablename = 'events'"
    )
    assert (facts["rolsuper"], facts["rolbypassrls"], facts["owns"]) == (False, False, False)
