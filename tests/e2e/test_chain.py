"""The hash chain: `messaging verify-log` passes an untouched log and names a forged event."""

from __future__ import annotations

import os
import subprocess
import sys

import asyncpg
import pytest

from messaging.devservices import LocalPostgres
from tests.rosters import SchoolIds
from tests.servers import Gateway, connect

pytestmark = pytest.mark.asyncio(loop_scope="session")


def verify(env: dict[str, str], school: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "messaging", "verify-log", "--school", school],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def _conversation(gw: Gateway, secret: str, school: SchoolIds) -> str:
    async with connect(gw, secret, school.teacher) as teacher:
        conv = str(
            (
                await teacher.request(
                    {"t": "open", "school": school.school, "members": [school.parent]}
                )
            )["conv"]
        )
        for i in range(4):
            await teacher.request({"t": "send", "conv": conv, "cid": f"c{i}", "body": f"n°{i}"})
        await teacher.request({"t": "delete", "conv": conv, "seq": 3})
    return conv


async def _as_owner(pg: LocalPostgres, sql: str, *args: object) -> None:
    """What someone holding the schema owner's rights could do, triggers aside."""
    conn = await asyncpg.connect(pg.owner_dsn)
    try:
        async with conn.transaction():
            await conn.execute("ALTER TABLE events DISABLE TRIGGER events_no_update_delete")
            await conn.execute(sql, *args)
            await conn.execute("ALTER TABLE events ENABLE TRIGGER events_no_update_delete")
    finally:
        await conn.close()


async def test_untouched_log_verifies(
    gateways: tuple[Gateway, Gateway],
    secret: str,
    school: SchoolIds,
    service_env: dict[str, str],
) -> None:
    """Every chain of a school recomputes to the stored hashes."""
    await _conversation(gateways[0], secret, school)
    result = verify(service_env, school.school)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all chains intact" in result.stdout
    assert "checked 6 events in 1 conversations" in result.stdout


async def test_forged_body_is_named(
    gateways: tuple[Gateway, Gateway],
    secret: str,
    school: SchoolIds,
    service_env: dict[str, str],
    pg: LocalPostgres,
) -> None:
    """A message altered directly in the database is named by conversation and seq."""
    conv = await _conversation(gateways[0], secret, school)
    await _as_owner(pg, "UPDATE events SET body = 'forged' WHERE conv = $1 AND seq = 4", conv)
    result = verify(service_env, school.school)
    assert result.returncode == 1
    assert f"BROKEN conversation {conv} at seq 4: hash_mismatch" in result.stdout


async def test_removed_newest_event_is_caught(
    gateways: tuple[Gateway, Gateway],
    secret: str,
    school: SchoolIds,
    service_env: dict[str, str],
    pg: LocalPostgres,
) -> None:
    """Deleting the newest event leaves the chain short of where the conversation ends."""
    conv = await _conversation(gateways[0], secret, school)
    await _as_owner(pg, "DELETE FROM events WHERE conv = $1 AND seq = 6", conv)
    result = verify(service_env, school.school)
    assert result.returncode == 1
    assert f"BROKEN conversation {conv} at seq 6: chain_end_mismatch" in result.stdout


async def test_removed_middle_event_is_a_gap(
    gateways: tuple[Gateway, Gateway],
    secret: str,
    school: SchoolIds,
    service_env: dict[str, str],
    pg: LocalPostgres,
) -> None:
    """Deleting an event in the middle is reported at the first missing seq."""
    conv = await _conversation(gateways[0], secret, school)
    await _as_owner(pg, "DELETE FROM events WHERE conv = $1 AND seq = 2", conv)
    result = verify(service_env, school.school)
    assert result.returncode == 1
    assert f"BROKEN conversation {conv} at seq 3: seq_gap" in result.stdout
