"""Bulk sends: how long until the rows are committed and the last connected recipient has it.

    python -m loadtests.broadcast [--parents 100000] [--connected 10000] [--smoke]

A synthetic roster of PARENTS parents (one child each, in 20 class groups); CONNECTED of them
are connected, half on each of two gateway processes, from two client processes. Then the
office sends to 1,000 chosen parents, to two groups (10,000 parents) and to the whole school.
For each: the API's answer (it answers once everything is committed, so it is also the commit
time), the time from that answer until the last connected recipient has the message, and the
gateways' CPU per delivery. Every connected recipient must get the message exactly once, in
their language, or the run fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import multiprocessing.connection
import sys
import time
import traceback
from typing import Any

import httpx
import orjson

from loadtests import common
from loadtests.wsclient import WsClient, connect

GROUPS = 20
OFFICE = common.OFFICE_ID
SUBPROTOCOL = "messaging.v1.json"


class Receivers:
    """One client process: connected parents recording when each broadcast message arrives."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.s = settings
        self.clients: list[WsClient] = []
        self.arrivals: dict[str, list[float]] = {}  # conv -> wall-clock arrival times
        self.langs: dict[str, dict[str, int]] = {}
        self.per_user: dict[tuple[str, str], int] = {}
        self._ready: dict[WsClient, asyncio.Future[None]] = {}

    def _on_frame(self, client: WsClient, payload: bytes, _binary: bool) -> None:
        frame = orjson.loads(payload)
        t = frame.get("t")
        if t == "ready":
            fut = self._ready.pop(client, None)
            if fut is not None and not fut.done():
                fut.set_result(None)
        elif t == "event" and frame.get("kind") == "message":
            conv = frame["conv"]
            self.arrivals.setdefault(conv, []).append(time.time())
            langs = self.langs.setdefault(conv, {})
            langs[frame.get("lang", "?")] = langs.get(frame.get("lang", "?"), 0) + 1
            key = (conv, client.user)
            self.per_user[key] = self.per_user.get(key, 0) + 1

    async def connect_all(self, users: list[tuple[str, str, int]]) -> int:
        sem = asyncio.Semaphore(64)

        async def one(user: str, token: str, port: int) -> None:
            async with sem:
                loop = asyncio.get_running_loop()
                client = await connect("127.0.0.1", port, "/ws", SUBPROTOCOL, self._on_frame)
                client.user = user
                self._ready[client] = loop.create_future()
                client.send_text(orjson.dumps({"t": "hello", "token": token}).decode())
                await asyncio.wait_for(self._ready[client], 120)
                self.clients.append(client)

        await asyncio.gather(*(one(u, t, p) for u, t, p in users))
        return len(self.clients)

    def report(self, conv: str) -> dict[str, Any]:
        counts = [n for (c, _), n in self.per_user.items() if c == conv]
        return {
            "received": len(self.arrivals.get(conv, [])),
            "users": len(counts),
            "duplicates": sum(n - 1 for n in counts if n > 1),
            "last": max(self.arrivals.get(conv, [0.0])),
            "langs": self.langs.get(conv, {}),
        }

    async def serve(self, pipe: multiprocessing.connection.Connection) -> None:
        loop = asyncio.get_running_loop()
        while True:
            command, args = await loop.run_in_executor(None, pipe.recv)
            try:
                if command == "connect":
                    pipe.send(("ok", await self.connect_all(args)))
                elif command == "report":
                    await asyncio.sleep(0)
                    pipe.send(("ok", self.report(args)))
                elif command == "quit":
                    for client in self.clients:
                        with contextlib.suppress(Exception):
                            await client.close(timeout=1)
                    pipe.send(("ok", None))
                    return
            except Exception:
                pipe.send(("error", traceback.format_exc()))


def _worker(settings: dict[str, Any], pipe: multiprocessing.connection.Connection) -> None:
    common.die_with_parent()
    common.raise_nofile()
    asyncio.run(Receivers(settings).serve(pipe))


def _call(pipes: list[Any], command: str, args: list[Any], timeout: float = 300) -> list[Any]:
    for pipe, arg in zip(pipes, args, strict=True):
        pipe.send((command, arg))
    out = []
    for pipe in pipes:
        if not pipe.poll(timeout):
            raise TimeoutError(f"receivers did not answer {command}")
        status, value = pipe.recv()
        if status != "ok":
            raise RuntimeError(value)
        out.append(value)
    return out


def run(parents: int, connected: int) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        bench = stack.enter_context(common.bench_env())
        gw_a, gw_b = bench.start_gateways("gateway-a", "gateway-b")
        roster = common.make_roster(GROUPS, parents)
        started = time.perf_counter()
        common.import_roster(bench, gw_a, roster)
        common.log(f"roster: {parents} parents imported in {time.perf_counter() - started:.1f}s")
        # parent j is in group j % GROUPS: connect the first `connected` parents of groups 0, 1
        in_two_groups = [p for j, p in enumerate(roster.parents) if j % GROUPS in (0, 1)]
        online = in_two_groups[:connected]
        ctx = multiprocessing.get_context("spawn")
        pipes, procs = [], []
        for _ in range(2):
            ours, theirs = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=({}, theirs), daemon=True)
            proc.start()
            pipes.append(ours)
            procs.append(proc)
        try:
            halves = [
                [(u, bench.token(u), gw.port) for u in online[i::2]]
                for i, gw in enumerate((gw_a, gw_b))
            ]
            started = time.perf_counter()
            _call(pipes, "connect", halves)
            common.log(
                f"{len(online)} recipients connected in {time.perf_counter() - started:.1f}s"
            )
            audiences: list[tuple[str, dict[str, Any], set[str]]] = [
                ("1,000 chosen parents", {"parents": online[:1000]}, set(online[:1000])),
                ("two groups", {"groups": ["bg-00000", "bg-00001"]}, set(online)),
                ("the whole school", {"school": True}, set(online)),
            ]
            results = [
                _one(bench, gw_a, gw_b, pipes, roster.school, name, audience, expected)
                for name, audience, expected in audiences
            ]
        finally:
            with contextlib.suppress(Exception):
                _call(pipes, "quit", [None, None], timeout=30)
            for proc in procs:
                proc.join(5)
                if proc.is_alive():
                    proc.kill()
    return {"parents": parents, "connected": len(online), "sends": results}


def _one(
    bench: common.BenchEnv,
    gw_a: common.ServerProcess,
    gw_b: common.ServerProcess,
    pipes: list[Any],
    school: str,
    name: str,
    audience: dict[str, Any],
    expected: set[str],
) -> dict[str, Any]:
    cpu_before = {gw.name: common.cpu_seconds(gw.pid) or 0.0 for gw in (gw_a, gw_b)}
    doc = {
        "school": school,
        "audience": audience,
        "body": "Rappel : journée pédagogique vendredi.",
        "body_en": "Reminder: no school on Friday (teacher training day).",
    }
    sent_at = time.time()
    t0 = time.perf_counter()
    r = httpx.post(
        f"{gw_a.url}/api/broadcasts",
        json=doc,
        timeout=120,
        headers={"Authorization": f"Bearer {bench.token(OFFICE)}"},
    )
    api_s = time.perf_counter() - t0
    answered = time.time()
    if r.status_code != 202:
        raise RuntimeError(f"broadcast refused: {r.status_code} {r.text[:500]}")
    sent = r.json()
    conv = sent["conv"]
    deadline = time.monotonic() + 60
    while True:
        reports = _call(pipes, "report", [conv, conv])
        received = sum(x["received"] for x in reports)
        if received >= len(expected) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    time.sleep(0.5)  # anything late (a duplicate) would show now
    reports = _call(pipes, "report", [conv, conv])
    cpu = sum((common.cpu_seconds(gw.pid) or 0.0) - cpu_before[gw.name] for gw in (gw_a, gw_b))
    received = sum(x["received"] for x in reports)
    duplicates = sum(x["duplicates"] for x in reports)
    last = max(x["last"] for x in reports)
    langs: dict[str, int] = {}
    for x in reports:
        for k, v in x["langs"].items():
            langs[k] = langs.get(k, 0) + v
    result = {
        "audience": name,
        "recipients": sent["recipients"],
        "connected_recipients": len(expected),
        "received": received,
        "duplicates": duplicates,
        "lost": len(expected) - (received - duplicates),
        "langs": langs,
        "api_answer_s": round(api_s, 3),
        "last_recipient_after_answer_ms": round((last - answered) * 1000, 1),
        "last_recipient_after_request_ms": round((last - sent_at) * 1000, 1),
        "gateway_cpu_us_per_delivery": round(cpu / max(received, 1) * 1e6, 1),
    }
    common.log(
        f"{name}: {sent['recipients']} recipients committed, API answered in {api_s:.3f}s; "
        f"last of {len(expected)} connected reached {result['last_recipient_after_answer_ms']} ms "
        f"after the answer; {result['gateway_cpu_us_per_delivery']} µs gateway CPU per delivery; "
        f"lost {result['lost']}, duplicated {duplicates}"
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parents", type=int, default=100_000)
    parser.add_argument("--connected", type=int, default=10_000)
    parser.add_argument("--smoke", action="store_true", help="2,000 parents, 400 connected")
    args = parser.parse_args(argv)
    parents, connected = (2_000, 400) if args.smoke else (args.parents, args.connected)
    result = run(parents, connected)
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    failed = [s for s in result["sends"] if s["lost"] or s["duplicates"]]
    targets = {
        "100,000 committed (s)": 1.0,
        "last of 10,000 after commit (ms)": 200.0,
        "gateway CPU per delivery (µs)": 15.0,
    }
    whole = result["sends"][-1]
    print(
        f"targets: commit {whole['api_answer_s']} s vs {targets['100,000 committed (s)']} s; "
        f"last connected {whole['last_recipient_after_answer_ms']} ms vs 200 ms; "
        f"{whole['gateway_cpu_us_per_delivery']} µs vs 15 µs per delivery"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
