"""W0, calibration: what this machine does with no service code at all, in the same run.

- PostgreSQL: the time of one durable single-row commit (an autocommit `INSERT` into a logged
  table, fsync and synchronous_commit on) and of a `SELECT 1` round trip, from asyncpg.
- Redis: the round trip of one `PUBLISH` from redis-py, the rate of pipelined `PUBLISH`es from
  redis-py (what the gateway's publisher does), and from `redis-benchmark` (C) when installed.
- The `websockets` floor (loadtests/baselines.py): the round trip of an echo at a fixed rate over
  lean client connections (loadtests/wsclient.py) from this process.

The floor's broadcast to 10,000 sockets and its accept rate are measured by W3 and W4, on the
same client processes as the service.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from typing import Any

import orjson

from loadtests.common import BenchEnv, ServerProcess, log, summarize
from loadtests.wsclient import WsClient, connect


async def _postgres(dsn: str, rounds: int) -> dict[str, Any]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS bench_calibration (id bigserial, body text)")
        insert = await conn.prepare("INSERT INTO bench_calibration (body) VALUES ($1)")
        select = await conn.prepare("SELECT 1")
        commits, trips = [], []
        for i in range(rounds):
            started = time.perf_counter()
            await insert.fetch(f"calibration {i}")
            commits.append(time.perf_counter() - started)
            started = time.perf_counter()
            await select.fetchval()
            trips.append(time.perf_counter() - started)
        await conn.execute("DROP TABLE bench_calibration")
    finally:
        await conn.close()
    return {
        "single_row_commit_ms": summarize(commits, 1e3, 3),
        "select_1_round_trip_ms": summarize(trips, 1e3, 3),
    }


async def _redis(url: str, rounds: int, pipelined: int) -> dict[str, Any]:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        trips = []
        for _ in range(rounds):
            started = time.perf_counter()
            await client.publish("bench-calibration", b"x" * 200)
            trips.append(time.perf_counter() - started)
        started = time.perf_counter()
        for _ in range(pipelined // 1000):
            pipe = client.pipeline(transaction=False)
            for _ in range(1000):
                pipe.publish("bench-calibration", b"x" * 200)
            await pipe.execute()
        seconds = time.perf_counter() - started
    finally:
        await client.aclose()
    return {
        "publish_round_trip_ms": summarize(trips, 1e3, 3),
        "redis_py_pipelined_publish_per_s": round(pipelined / seconds),
    }


def _redis_benchmark(port: int, requests: int) -> float | None:
    program = shutil.which("redis-benchmark")
    if program is None:
        return None
    result = subprocess.run(
        [
            program,
            "-p",
            str(port),
            "-q",
            "-n",
            str(requests),
            "-P",
            "16",
            "PUBLISH",
            "bench",
            "x" * 200,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    found = re.search(r":\s*([\d.]+) requests per second", result.stdout)
    return float(found.group(1)) if found else None


async def _echo(port: int, connections: int, rate: float, seconds: float) -> dict[str, Any]:
    sent: dict[int, int] = {}
    rtts: list[int] = []

    def on_message(_client: WsClient, payload: bytes, _binary: bool) -> None:
        frame = orjson.loads(payload)
        started = sent.pop(frame.get("id", -1), None)
        if started is not None:
            rtts.append(time.monotonic_ns() - started)

    clients = [
        await connect("127.0.0.1", port, "/ws", "messaging.v1.json", on_message)
        for _ in range(connections)
    ]
    total = int(rate * seconds)
    t0 = time.monotonic()
    for i in range(total):
        await asyncio.sleep(max(0.0, t0 + i / rate - time.monotonic()))
        sent[i] = time.monotonic_ns()
        clients[i % connections].send_text_bytes(
            orjson.dumps({"t": "echo", "id": i, "body": "x" * 100})
        )
    await asyncio.sleep(0.5)
    for client in clients:
        await client.close(timeout=2)
    return {"echoes": total, "answered": len(rtts), "round_trip_ms": summarize(rtts, 1e-6, 3)}


def run_calibration(bench: BenchEnv, floor: ServerProcess, smoke: bool) -> dict[str, Any]:
    rounds = 50 if smoke else 300
    log("W0: PostgreSQL commit, Redis PUBLISH, websockets echo")
    result: dict[str, Any] = {"postgres": asyncio.run(_postgres(bench.pg.owner_dsn, rounds))}
    result["redis"] = asyncio.run(_redis(bench.redis.url, rounds, 2_000 if smoke else 50_000))
    result["redis"]["redis_benchmark_publish_per_s"] = _redis_benchmark(
        bench.redis.port, 10_000 if smoke else 200_000
    )
    result["floor_echo"] = asyncio.run(
        _echo(floor.port, 20 if smoke else 200, 1_000.0, 1.0 if smoke else 3.0)
    )
    return result


def print_calibration(result: dict[str, Any]) -> None:
    pg, rd, echo = result["postgres"], result["redis"], result["floor_echo"]
    print("\n== W0 calibration (no service code)")
    print(
        f"  PostgreSQL: durable single-row commit p50 {pg['single_row_commit_ms']['p50']} ms, "
        f"p99 {pg['single_row_commit_ms']['p99']} ms; SELECT 1 p50 "
        f"{pg['select_1_round_trip_ms']['p50']} ms"
    )
    print(
        f"  Redis: PUBLISH round trip p50 {rd['publish_round_trip_ms']['p50']} ms; pipelined "
        f"{rd['redis_py_pipelined_publish_per_s']}/s (redis-py), "
        f"{rd['redis_benchmark_publish_per_s']}/s (redis-benchmark)"
    )
    rtt = echo["round_trip_ms"]
    print(
        f"  websockets floor: echo round trip at 1,000/s p50 {rtt.get('p50')} ms, "
        f"p99 {rtt.get('p99')} ms ({echo['answered']}/{echo['echoes']} answered)"
    )
