"""Fixtures of the notification tests: a gateway with Web Push on, an SMTP server per test,
`messaging worker` processes, and helpers to write, read and look into the outbox.

A test's workers start with every pending notification of earlier tests cancelled, so that
what a test sees is its own; they are stopped when the test ends.
"""

from __future__ import annotations

import asyncio
import inspect
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
import pytest_asyncio

from messaging.domain.hours import DAYS
from messaging.gateway.auth import mint_token
from tests.notifications.support import (
    PushEndpoint,
    SmtpServer,
    Worker,
    start_push_endpoint,
    start_smtp,
    start_worker,
    vapid_pem,
)
from tests.rosters import SchoolIds, make_school, roster_doc
from tests.servers import Client, Gateway, start_gateway

TORONTO = ZoneInfo("America/Toronto")
ALL_WEEK = {d: [["00:00", "24:00"]] for d in DAYS}


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("notification-logs")


@pytest.fixture(scope="session")
def vapid_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("vapid") / "vapid.pem"
    path.write_bytes(vapid_pem())
    return path


@pytest.fixture(scope="session")
def notify_env(service_env: dict[str, str], vapid_key: Path) -> dict[str, str]:
    """The environment of this folder's gateway and workers (each worker adds its SMTP URL)."""
    return {
        **service_env,
        "MESSAGING_NOTIFY_DELAY_S": "1",
        "MESSAGING_VAPID_PRIVATE_KEY": str(vapid_key),
        "MESSAGING_VAPID_SUBJECT": "mailto:direction@example.org",
        "MESSAGING_PUSH_ALLOW_HTTP": "1",
        "MESSAGING_PUBLIC_URL": "https://messagerie.example.org",
        "MESSAGING_SMTP_FROM": "messagerie@example.org",
        "MESSAGING_WORKER_POLL_S": "0.2",
        "MESSAGING_NOTIFY_RETRY_S": "0.3",
        "MESSAGING_SMTP_TIMEOUT_S": "2",
    }


@pytest.fixture(scope="session")
def gateway(notify_env: dict[str, str], log_dir: Path) -> Iterator[Gateway]:
    gw = start_gateway(notify_env, log_dir)
    try:
        yield gw
    finally:
        gw.terminate()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = start_smtp()
    try:
        yield server
    finally:
        server.sink.release.set()
        server.controller.stop()


@pytest.fixture
def push_endpoint() -> Iterator[PushEndpoint]:
    endpoint = start_push_endpoint()
    try:
        yield endpoint
    finally:
        endpoint.stop()


@pytest.fixture
def owner_dsn(service_env: dict[str, str]) -> str:
    return service_env["MESSAGING_MIGRATE_DATABASE_URL"]


StartWorker = Callable[..., Worker]


@pytest_asyncio.fixture(loop_scope="session")
async def workers(
    notify_env: dict[str, str], log_dir: Path, smtp: SmtpServer, owner_dsn: str
) -> AsyncIterator[StartWorker]:
    """Start `messaging worker` processes sending to this test's SMTP server; notifications
    left pending by earlier tests are cancelled first."""
    conn = await asyncpg.connect(owner_dsn)
    try:
        await conn.execute(
            """UPDATE notifications SET state = 'cancelled', error = 'test_reset', done_at = now()
               WHERE state = 'pending'"""
        )
        await conn.execute(
            """UPDATE notification_holds SET released_at = now(), outcome = 'cancelled'
               WHERE released_at IS NULL"""
        )
    finally:
        await conn.close()
    started: list[Worker] = []

    def start(**extra: str) -> Worker:
        worker = start_worker(notify_env, log_dir, MESSAGING_SMTP_URL=smtp.url, **extra)
        started.append(worker)
        return worker

    try:
        yield start
    finally:
        for worker in started:
            worker.terminate()


# Schools and people ------------------------------------------------------------------------------


def off_hours_now() -> dict[str, list[list[str]]]:
    """Working hours that exclude the present moment: one hour, three days from today."""
    today = datetime.now(UTC).astimezone(TORONTO).date()
    day = DAYS[(today + timedelta(days=3)).weekday()]
    return {d: ([["10:00", "11:00"]] if d == day else []) for d in DAYS}


def import_school(gw: Gateway, secret: str, school: SchoolIds) -> None:
    response = httpx.post(
        f"{gw.url}/api/admin/roster",
        json=roster_doc(school),
        headers={"Authorization": f"Bearer {mint_token(secret, 'admin')}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text


def new_school(
    gw: Gateway,
    secret: str,
    *,
    teacher_hours: dict[str, Any] | None = None,
    parents_in_a: int = 0,
    **features: bool,
) -> SchoolIds:
    """A fresh school; its teacher (group A) works all week unless `teacher_hours` says else."""
    school = make_school(parents_in_a=parents_in_a, **features)
    for member in school.doc["staff"]:
        member["working_hours"] = ALL_WEEK
        if member["id"] == school.teacher and teacher_hours is not None:
            member["working_hours"] = teacher_hours
    import_school(gw, secret, school)
    return school


def email_of(school: SchoolIds, user: str) -> str:
    for person in [*school.doc["staff"], *school.doc["parents"]]:
        if person["id"] == user:
            return str(person["email"])
    raise KeyError(user)


def api(gw: Gateway, secret: str, user: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=gw.url,
        headers={"Authorization": f"Bearer {mint_token(secret, user)}"},
        timeout=15,
    )


async def open_direct(client: Client, school: SchoolIds, other: str) -> str:
    reply = await client.request({"t": "open", "school": school.school, "members": [other]})
    assert reply["t"] == "ok", reply
    return str(reply["conv"])


async def send(client: Client, conv: str, body: str) -> int:
    reply = await client.request(
        {"t": "send", "conv": conv, "cid": secrets.token_hex(8), "body": body}
    )
    assert reply["t"] == "ok", reply
    return int(reply["seq"])


async def outbox_rows(dsn: str, conv: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(
            await conn.fetch("SELECT * FROM notifications WHERE conv = $1 ORDER BY id", conv)
        )
    finally:
        await conn.close()


async def deliveries(dsn: str, conv: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(
            await conn.fetch(
                "SELECT * FROM notification_deliveries WHERE conv = $1 ORDER BY id", conv
            )
        )
    finally:
        await conn.close()


async def eventually(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    """Wait until `predicate()` (or the awaitable it returns) is true."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.1)
