"""Postgres at scale: the partitioned log, its one-time migration, and the plans of the hot
queries.

Each test works in a database of its own on the session's server. The plans are the real ones:
the store's own functions run as the service's role with auto_explain on (every statement,
those inside `append_facts` included), against a log of 100,000 events that the planner knows
(ANALYZE), and no plan may read the log, or the members and conversations, sequentially.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from messaging.devservices import APP_ROLE, LocalPostgres
from messaging.store import audit, conversations, log
from messaging.store.log import Append, accept
from messaging.store.pool import create_pool, migrate, schema_sql
from messaging.store.verify import verify_log

pytestmark = pytest.mark.asyncio(loop_scope="session")

REPO_ROOT = Path(__file__).resolve().parents[2]
PARTITION_SCRIPT = REPO_ROOT / "deploy" / "postgres" / "partition-events.sql"
PARTITIONS = 16

# A log the planner takes seriously: 4,000 conversations of 25 events in 20 schools, with a
# staff member and a parent in each; every user is in 2 of them.
CONVERSATIONS = 4000
EVENTS_PER_CONVERSATION = 25
SEED = f"""
INSERT INTO schools (id, name) SELECT 's' || i, 'École ' || i FROM generate_series(1, 20) i;
INSERT INTO users (id, kind, name)
    SELECT 'u' || i, CASE WHEN i % 10 = 0 THEN 'staff' ELSE 'parent' END, 'Personne ' || i
    FROM generate_series(1, 20000) i;
INSERT INTO conversations (id, school, kind, owner, last_seq, created_at)
    SELECT 'c' || i, 's' || (i % 20 + 1), 'direct', 'u' || (i % 2000 * 10 + 10),
           {EVENTS_PER_CONVERSATION}, now() - i * interval '1 minute'
    FROM generate_series(1, {CONVERSATIONS}) i;
INSERT INTO members (conv, user_id, role, read_seq)
    SELECT 'c' || i, 'u' || (i % 2000 * 10 + 10), 'staff', 20
    FROM generate_series(1, {CONVERSATIONS}) i
    UNION ALL
    SELECT 'c' || i, 'u' || (i % 2000 * 10 + 1), 'parent', 10
    FROM generate_series(1, {CONVERSATIONS}) i;
INSERT INTO events (conv, seq, kind, actor, body, cid, lang, ts)
    SELECT 'c' || i, s, 'message', 'u' || (i % 2000 * 10 + 10), 'Bonjour numéro ' || s,
           'cid-' || s, 'fr',
           now() - ({CONVERSATIONS} - i) * interval '1 minute' + s * interval '1 s'
    FROM generate_series(1, {CONVERSATIONS}) i, generate_series(1, {EVENTS_PER_CONVERSATION}) s;
ANALYZE;
"""
CONV, STAFF, PARENT, SCHOOL = "c1234", "u12350", "u12341", "s15"

# Tables whose sequential scan is refused in a hot query (the log's partitions included).
BIG_TABLES = ("events", "members", "conversations")


def dsn(pg: LocalPostgres, role: str, database: str) -> str:
    return f"postgresql://{role}@127.0.0.1:{pg.port}/{database}"


@contextlib.asynccontextmanager
async def fresh_database(pg: LocalPostgres, name: str) -> AsyncIterator[str]:
    """An empty database owned by the schema's owner; yields the owner's DSN."""
    admin = await asyncpg.connect(pg.admin_dsn)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.execute(
            f"CREATE DATABASE {name} OWNER messaging_owner ENCODING 'UTF8' TEMPLATE template0"
        )
        yield dsn(pg, "messaging_owner", name)
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


async def relkind(conn: asyncpg.Connection, table: str) -> str:
    kind = await conn.fetchval("SELECT relkind FROM pg_class WHERE oid = $1::regclass", table)
    return str(kind.decode() if isinstance(kind, bytes) else kind)


# The partitioned log ---------------------------------------------------------------------------


async def test_new_database_gets_a_partitioned_append_only_log(schema: LocalPostgres) -> None:
    """A new database's log is hash-partitioned by conversation, every partition append-only
    and out of the service's reach; applying the schema again changes nothing."""
    async with fresh_database(schema, "deploy_new") as owner_dsn:
        await migrate(owner_dsn, APP_ROLE)
        await migrate(owner_dsn, APP_ROLE)
        owner = await asyncpg.connect(owner_dsn)
        app = await asyncpg.connect(dsn(schema, APP_ROLE, "deploy_new"))
        try:
            assert await relkind(owner, "events") == "p"
            parts = await owner.fetch(
                "SELECT inhrelid::regclass::text AS name FROM pg_inherits"
                " WHERE inhparent = 'events'::regclass ORDER BY 1"
            )
            assert [p["name"] for p in parts] == [f"events_p{i:02}" for i in range(PARTITIONS)]
            for part in ("events_p00", "events_p15"):
                with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                    await owner.execute(f"TRUNCATE {part}")
                for statement in (f"SELECT * FROM {part}", f"TRUNCATE {part}"):
                    with pytest.raises(asyncpg.InsufficientPrivilegeError):
                        await app.execute(statement)
            key = await owner.fetchval("SELECT pg_get_partkeydef('events'::regclass)")
            assert key == "HASH (conv)"
        finally:
            await app.close()
            await owner.close()


async def test_existing_plain_log_is_kept_and_the_script_partitions_it(
    schema: LocalPostgres,
) -> None:
    """A log created before partitioning stays a plain table at migrate; the one-time script of
    deploy/postgres/ moves every event, hashes and all, into the partitioned table."""
    async with fresh_database(schema, "deploy_legacy") as owner_dsn:
        owner = await asyncpg.connect(owner_dsn)
        try:
            await create_legacy_schema(owner)
            await migrate(owner_dsn, APP_ROLE)
            assert await relkind(owner, "events") == "r"
            app_dsn = dsn(schema, APP_ROLE, "deploy_legacy")
            await append_some_events(app_dsn, conversations=12, events=6)
            before = await owner.fetch("SELECT conv, seq, hash FROM events ORDER BY conv, seq")

            await owner.execute(PARTITION_SCRIPT.read_text(encoding="utf-8"))
            await migrate(owner_dsn, APP_ROLE)

            assert await relkind(owner, "events") == "p"
            after = await owner.fetch("SELECT conv, seq, hash FROM events ORDER BY conv, seq")
            assert after == before and len(after) == 12 * 6
            await append_some_events(app_dsn, conversations=12, events=1, first_seq=7)
            pool = await create_pool(app_dsn, min_size=1, max_size=1)
            try:
                async with pool.acquire() as conn:
                    report = await verify_log(conn)
            finally:
                await pool.close()
            assert report.ok and report.events == 12 * 7, report.breaks
            app = await asyncpg.connect(app_dsn)
            try:
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await app.execute("SELECT 1 FROM events_unpartitioned")
            finally:
                await app.close()
        finally:
            await owner.close()


async def create_legacy_schema(owner: asyncpg.Connection) -> None:
    """schema.sql as it was before partitioning: the same, with a plain `events` table."""
    sql = schema_sql()
    cut = sql.index("DO $$\nBEGIN\n    IF to_regclass('public.events') IS NULL THEN")
    await owner.execute(sql[:cut])
    await owner.execute(
        """CREATE TABLE events (
               conv text NOT NULL REFERENCES conversations(id), seq bigint NOT NULL,
               kind text NOT NULL, actor text NOT NULL, body text,
               data jsonb NOT NULL DEFAULT '{}'::jsonb, target bigint, cid text,
               ts timestamptz NOT NULL DEFAULT clock_timestamp(), PRIMARY KEY (conv, seq))"""
    )


async def append_some_events(
    app_dsn: str, *, conversations: int, events: int, first_seq: int = 1
) -> None:
    """Messages appended as the service appends them (seqs, hash chain), in new or existing
    conversations c0, c1 ..."""
    pool = await create_pool(app_dsn, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn, conn.transaction():
            if first_seq == 1:
                await conn.execute(
                    """INSERT INTO schools (id, name) VALUES ('s1', 'École') ON CONFLICT DO NOTHING;
                       INSERT INTO users (id, kind, name) VALUES ('u1', 'staff', 'Personne')
                       ON CONFLICT DO NOTHING"""
                )
                await conn.executemany(
                    "INSERT INTO conversations (id, school, kind) VALUES ($1, 's1', 'group')",
                    [(f"c{i}",) for i in range(conversations)],
                )
            items = [
                Append(conv=f"c{i}", actor="u1", kind="message", rule=accept, body=f"m{n}")
                for i in range(conversations)
                for n in range(first_seq, first_seq + events)
            ]
            outcomes = await log.append_batch(conn, items)
            assert all(isinstance(o, log.Appended) for o in outcomes), outcomes
    finally:
        await pool.close()


# Plans ------------------------------------------------------------------------------------------


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def plans_db(schema: LocalPostgres) -> AsyncIterator[str]:
    """A database with the schema, a seeded log, and auto_explain on for the service's role:
    every statement it runs sends its plan (JSON) to the client as a NOTICE."""
    async with fresh_database(schema, "deploy_plans") as owner_dsn:
        await migrate(owner_dsn, APP_ROLE)
        owner = await asyncpg.connect(owner_dsn)
        try:
            await owner.execute(SEED)
        finally:
            await owner.close()
        admin = await asyncpg.connect(schema.admin_dsn)
        try:
            for setting, value in (
                ("session_preload_libraries", "auto_explain"),
                ("auto_explain.log_min_duration", "0"),
                ("auto_explain.log_nested_statements", "on"),
                ("auto_explain.log_format", "json"),
                ("auto_explain.log_level", "notice"),
            ):
                await admin.execute(
                    f"ALTER ROLE {APP_ROLE} IN DATABASE deploy_plans SET {setting} = '{value}'"
                )
        finally:
            await admin.close()
        yield dsn(schema, APP_ROLE, "deploy_plans")


class Plans:
    """The plans of the statements run on one pooled connection, collected from its notices."""

    def __init__(self) -> None:
        self.plans: list[dict[str, Any]] = []

    def listener(self, _conn: object, message: asyncpg.PostgresLogMessage) -> None:
        text = message.message or ""
        if "plan:" in text:
            self.plans.append(json.loads(text.split("plan:", 1)[1]))

    def reading(self, table_prefixes: tuple[str, ...]) -> list[dict[str, Any]]:
        """The plans that read one of these tables (or their partitions)."""
        return [p for p in self.plans if any(n[1].startswith(table_prefixes) for n in nodes(p))]

    def sequential_scans(self) -> list[tuple[str, str]]:
        """(query, table) of every sequential scan of a big table, partitions included."""
        found = []
        for plan in self.plans:
            for node_type, relation in nodes(plan):
                if node_type == "Seq Scan" and big(relation):
                    found.append((plan.get("Query Text", "")[:200], relation))
        return found


def big(relation: str) -> bool:
    return any(relation == t or relation.startswith(t + "_p") for t in BIG_TABLES)


def nodes(plan: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(node type, relation) of every node of a plan."""
    stack = [plan["Plan"]]
    while stack:
        node = stack.pop()
        yield node["Node Type"], node.get("Relation Name", "")
        stack.extend(node.get("Plans", []))


class Held:
    """A pool of the one connection the plans are collected on (duck-typed `asyncpg.Pool`):
    asyncpg drops a connection's listeners each time it goes back to its pool."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        yield self._conn


@contextlib.asynccontextmanager
async def explained(app_dsn: str) -> AsyncIterator[tuple[Any, Plans]]:
    pool = await create_pool(app_dsn, min_size=1, max_size=1)
    plans = Plans()
    try:
        async with pool.acquire() as conn:
            conn.add_log_listener(plans.listener)
            try:
                yield Held(conn), plans
            finally:
                conn.remove_log_listener(plans.listener)
    finally:
        await pool.close()


async def hot_path(pool: Any) -> None:
    """What a busy day does: sends (a message, a retried cid, a deletion), the list of `ready`,
    fetches in every direction, a resume, typing's facts, a read marker, the audit view."""
    async with pool.acquire() as conn:
        async with conn.transaction():
            outcomes = await log.append_batch(
                conn,
                [
                    Append(
                        conv=CONV, actor=STAFF, kind="message", rule=accept, body="Allo", cid="n1",
                    ),
                    Append(
                        conv=CONV, actor=STAFF, kind="message", rule=accept,
                        body="Bonjour numéro 4", cid="cid-4",
                    ),
                    Append(conv=CONV, actor=STAFF, kind="deleted", rule=accept, target=3, cid="d1"),
                ],
            )  # fmt: skip
            assert [getattr(o, "seq", None) for o in outcomes] == [26, 4, 27], outcomes
        await conversations.conversations_of(conn, STAFF)
        await conversations.conversations_of(conn, PARENT)
        await log.read_range(conn, CONV, after=None, before=None, limit=50)
        await log.read_range(conn, CONV, after=5, before=None, limit=50)
        await log.read_range(conn, CONV, after=None, before=20, limit=50)
        await log.read_since_many(conn, STAFF, [(CONV, 3), ("c3234", 10)], 200)
        await conversations.facts_of(conn, CONV)
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            await audit.view_conversation(conn, CONV)
    await conversations.mark_read(pool, STAFF, CONV, 22)


async def test_hot_queries_read_the_log_through_its_indexes(plans_db: str) -> None:
    """The send path (`append_facts` included), `ready`, fetches, resume, read markers and the
    audit view: no sequential scan of the log, of members or of conversations."""
    async with explained(plans_db) as (pool, plans):
        await hot_path(pool)
    on_the_log = plans.reading(("events",))
    # append_facts' three reads, the insert, the unread counts, 3 fetches, resume, audit view
    assert len(on_the_log) >= 8, [p.get("Query Text", "")[:80] for p in plans.plans]
    assert plans.sequential_scans() == []


async def test_audit_searches_can_use_an_index_on_the_log(plans_db: str) -> None:
    """The principal's searches (by member, text, dates) have a plan that reads the log only
    through its indexes: the one the planner picks once the log outgrows a scan."""
    since = datetime.now(UTC) - timedelta(hours=1)
    searches = [
        audit.Filters(),
        audit.Filters(member=STAFF),
        audit.Filters(q="bonjour"),
        audit.Filters(since=since),
        audit.Filters(since=since - timedelta(days=1), until=since),
        audit.Filters(q="numéro", since=since),
    ]
    async with explained(plans_db) as (pool, plans):
        async with pool.acquire() as conn, conn.transaction():
            # what the planner does when a sequential scan costs more than any index path
            await conn.execute("SET LOCAL enable_seqscan = off")
            for filters in searches:
                await audit.search_conversations(conn, SCHOOL, filters, after=None, limit=20)
    assert len(plans.reading(("events",))) >= 4
    assert plans.sequential_scans() == []
