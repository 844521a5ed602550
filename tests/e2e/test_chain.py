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


@pytest.mark.parametrize(
    ("tampering", "seq", "reason"),
    [
        # a message's text altered directly in the database
        ("UPDATE events SET body = 'forged' WHERE conv = $1 AND seq = 4", 4, "hash_mismatch"),
        # the newest event removed: the chain ends short of the conversation's head
        ("DELETE FROM events WHERE conv = $1 AND seq = 6", 6, "chain_end_mismatch"),
        # an event in the middle removed: reported at the first missing seq
        ("DELETE FROM events WHERE conv = $1 AND seq = 2", 3, "seq_gap"),
    ],
    ids=["forged-body", "removed-newest", "removed-middle"],
)
async def test_tampering_is_named(
    gateways: tuple[Gateway, Gateway],
    secret: str,
    school: SchoolIds,
    service_env: dict[str, str],
    pg: LocalPostgres,
    tampering: str,
    seq: int,
    reason: str,
) -> None:
    """Each kind of tampering by the schema's owner is named by conversation, seq and reason."""
    conv = await _conversation(gateways[0], secret, school)
    await _as_owner(pg, tampering, conv)
    result = verify(service_env, school.school)
    assert result.returncode == 1
    assert f"BROKEN conversation {conv} at seq {seq}: {reason}" in result.stdout
