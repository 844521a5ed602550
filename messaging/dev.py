"""`messaging dev`, what `make run` starts: a whole service on one machine for a developer.

It starts Postgres and Redis with their data under the data folder (reused on the next run),
applies the schema, loads the demo school, and serves on http://127.0.0.1:PORT with
MESSAGING_DEV_LOGIN=1. Ctrl-C stops everything it started.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from messaging import config, logconfig
from messaging.devservices import (
    dev_postgres_datadir,
    ensure_server_packages,
    start_postgres,
    start_redis,
)

DEMO_ROSTER = Path(__file__).with_name("demo_roster.json")


async def _prepare(settings: config.Settings, app_role: str) -> list[str]:
    from messaging.store.pool import create_pool, migrate
    from messaging.store.roster import import_roster

    await migrate(settings.migrate_database_url, app_role)
    doc = json.loads(DEMO_ROSTER.read_text(encoding="utf-8"))
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        await import_roster(pool, doc)
    finally:
        await pool.close()
    return [u["id"] for u in doc.get("staff", [])] + [u["id"] for u in doc.get("parents", [])]


def run_dev(data_dir: Path, *, port: int = 8000) -> int:
    from messaging.cli import serve

    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    ensure_server_packages()
    pg_dir = dev_postgres_datadir(data_dir.parent)
    if pg_dir.parent != data_dir:
        print(f"Postgres data is kept in {pg_dir} (the postgres account cannot reach {data_dir})")
    pg = start_postgres(pg_dir, persistent=True)
    try:
        redis = start_redis(data_dir / "redis", persistent=True)
        try:
            env = dict(os.environ)
            env.setdefault("MESSAGING_DATABASE_URL", pg.app_dsn)
            env.setdefault("MESSAGING_MIGRATE_DATABASE_URL", pg.owner_dsn)
            env.setdefault("MESSAGING_REDIS_URL", redis.url)
            env.setdefault("MESSAGING_DEV_LOGIN", "1")
            env.setdefault("MESSAGING_ADMIN_SUBJECTS", "admin")
            settings = config.load(env, data_dir=data_dir)
            logconfig.configure(settings.log_format)
            users = asyncio.run(_prepare(settings, "messaging_app"))
            _banner(port, users)
            serve(settings, "127.0.0.1", port)
        finally:
            redis.stop()
    finally:
        pg.stop()
    return 0


def _banner(port: int, users: list[str]) -> None:
    print(
        f"""
  Messaging service: http://127.0.0.1:{port}
  Demo users: {", ".join(users)}
  A token for one of them (valid 12 h):   .venv/bin/messaging token par-1
  Then connect to ws://127.0.0.1:{port}/ws and send {{"t": "hello", "token": "..."}}.
  Ctrl-C stops the service, Postgres and Redis; data stays under .data/.
""",
        flush=True,
    )
