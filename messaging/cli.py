"""The `messaging` command: serve, worker, migrate, import-roster, token, and `dev` (`make run`).

Configuration comes from `MESSAGING_*` environment variables (see README); a wrong value stops
the command with the variable's name and exit code 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

import structlog
from redis.exceptions import RedisError

from messaging import config, logconfig
from messaging.errors import MessagingError, RosterInvalid
from messaging.store.roster import ImportResult

log = structlog.get_logger("messaging.cli")

DEMO_ROSTER = Path(__file__).with_name("demo_roster.json")


def _settings(args: argparse.Namespace) -> config.Settings:
    settings = config.load()
    logconfig.configure(settings.log_format)
    return settings


def serve(settings: config.Settings, host: str | None = None, port: int | None = None) -> None:
    from messaging.gateway.app import create_app
    from messaging.gateway.server import run

    run(
        create_app(settings),
        settings,
        host or settings.host,
        settings.port if port is None else port,
    )


def cmd_serve(args: argparse.Namespace) -> int:
    serve(_settings(args), args.host, args.port)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    import os

    from messaging.store.pool import migrate

    # Only the database is needed here: the owner's DSN to apply, the service's to grant.
    app_dsn = os.environ.get("MESSAGING_DATABASE_URL", "")
    owner_dsn = os.environ.get("MESSAGING_MIGRATE_DATABASE_URL") or app_dsn
    if not owner_dsn:
        raise config.ConfigError(
            "MESSAGING_MIGRATE_DATABASE_URL or MESSAGING_DATABASE_URL is needed"
        )
    logconfig.configure(os.environ.get("MESSAGING_LOG_FORMAT", "auto"))
    asyncio.run(migrate(owner_dsn, urlparse(app_dsn).username if app_dsn else None))
    print("schema applied")
    return 0


async def _import(settings: config.Settings, doc: object) -> None:
    from messaging.store.pool import create_pool
    from messaging.store.roster import import_roster

    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        result = await import_roster(pool, doc)
    finally:
        await pool.close()
    print(
        f"imported {result.schools} schools, {result.groups} groups, {result.staff} staff, "
        f"{result.students} students, {result.parents} parents; "
        f"{len(result.deactivated_users)} users deactivated"
    )
    await _announce(settings, result)


async def _announce(settings: config.Settings, result: ImportResult) -> None:
    """Tell connected clients what the import changed: groups locked for want of staff, and
    sockets of deactivated users to close (4003), through the gateways' Redis channels."""
    from messaging.bus.base import user_channel
    from messaging.bus.cluster import publish_once
    from messaging.bus.hub import close_envelope
    from messaging.errors import CloseCode
    from messaging.gateway.services import event_messages

    messages = event_messages(result.events)
    env = close_envelope(CloseCode.REVOKED)
    messages += [(user_channel(u), env) for u in result.deactivated_users]
    if not messages:
        return
    try:
        await publish_once(settings.redis_url, messages)
    except (OSError, RedisError):
        print(
            "warning: Redis unreachable; connected clients learn of the changes when they "
            "reconnect",
            file=sys.stderr,
        )


def cmd_import_roster(args: argparse.Namespace) -> int:
    settings = _settings(args)
    try:
        doc = json.loads(Path(args.file).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_import(settings, doc))
    except RosterInvalid as exc:
        print(f"roster refused, nothing applied ({len(exc.problems)} problems):", file=sys.stderr)
        for path, message in exc.problems:
            print(f"  {path}: {message}", file=sys.stderr)
        return 1
    except MessagingError as exc:
        print(f"roster import failed: {exc.code.value}", file=sys.stderr)
        return 1
    return 0


def cmd_verify_log(args: argparse.Namespace) -> int:
    import os

    from messaging.store.pool import create_pool
    from messaging.store.verify import verify_log

    dsn = os.environ.get("MESSAGING_DATABASE_URL") or os.environ.get(
        "MESSAGING_MIGRATE_DATABASE_URL", ""
    )
    if not dsn:
        raise config.ConfigError("MESSAGING_DATABASE_URL is needed")

    async def run() -> int:
        pool = await create_pool(dsn, min_size=1, max_size=1)
        try:
            async with pool.acquire() as conn:
                report = await verify_log(conn, args.school)
        finally:
            await pool.close()
        print(
            f"checked {report.events} events in {report.conversations} conversations "
            f"in {report.seconds:.2f} s"
        )
        for b in report.breaks:
            print(f"BROKEN conversation {b.conv} at seq {b.seq}: {b.reason}")
        print("all chains intact" if report.ok else f"{len(report.breaks)} broken chain(s)")
        return 0 if report.ok else 1

    return asyncio.run(run())


def cmd_token(args: argparse.Namespace) -> int:
    import os

    from messaging.gateway.auth import mint_token

    # Only the signing secret is needed: the one configured, else the local development one
    # that `make run` generated under .data/.
    secret = os.environ.get("MESSAGING_JWT_SECRET") or config.local_jwt_secret(
        config.DEFAULT_DATA_DIR
    )
    print(mint_token(secret, args.user, ttl_s=args.ttl))
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from messaging.notifications.broadcasts import release_due_broadcasts
    from messaging.notifications.worker import PeriodicJob, run_worker

    settings = _settings(args)
    try:
        return asyncio.run(
            run_worker(settings, [PeriodicJob("broadcasts", 2.0, release_due_broadcasts)])
        )
    except MessagingError as exc:  # the database cannot be reached at start
        print(f"worker cannot start: {exc.code.value}", file=sys.stderr)
        return 1


def cmd_dev(args: argparse.Namespace) -> int:
    from messaging.dev import run_dev

    return run_dev(Path(args.data_dir), port=args.port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="messaging", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="run one gateway process (HTTP API and WebSocket)")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser(
        "worker", help="the notifier: releases held notifications and sends them; periodic jobs"
    )
    p.set_defaults(func=cmd_worker)
    p = sub.add_parser("migrate", help="apply schema.sql (idempotent)")
    p.set_defaults(func=cmd_migrate)
    p = sub.add_parser("import-roster", help="load a roster document (JSON)")
    p.add_argument("file")
    p.set_defaults(func=cmd_import_roster)
    p = sub.add_parser(
        "verify-log", help="recompute the event log's hash chains; exit 1 naming any break"
    )
    p.add_argument("--school", help="only this school's conversations")
    p.set_defaults(func=cmd_verify_log)
    p = sub.add_parser("token", help="print a signed token for a user (HS256 secret needed)")
    p.add_argument("user")
    p.add_argument("--ttl", type=int, default=12 * 3600, help="seconds (default 12 h)")
    p.set_defaults(func=cmd_token)
    p = sub.add_parser(
        "dev", help="local Postgres and Redis under .data/, demo school, serve (make run)"
    )
    p.add_argument("--data-dir", default=".data")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=cmd_dev)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except config.ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
