"""Memory per idle authenticated connection: the gateway against a bare echo server.

    python -m loadtests.idle [--smoke] [--out DIR]

One gateway process (`python -m messaging serve`, its open-file limit raised to its hard limit)
receives 5,000 then 19,000 connections of distinct parents, each from a browser-like client:
the websockets client offering per-message deflate (which the server refuses), sending `hello`
with a token and waiting for `ready`, then staying idle. The gateway's resident memory (RSS) is
read before (after a warm-up and a settle delay) and after each step (after a settle delay, once
it is stable); the difference divided by the number of connections is the memory per idle
connection.

The same run measures the same thing on the bare uvicorn + Starlette echo server of
loadtests/echo.py (same uvicorn settings): each client sends one text frame, gets its echo, and
stays idle. The ratio gateway / echo is the gateway's own overhead per connection (target:
at most 1.1).

Clients are spread over several processes (each holds fewer than 15,000 sockets: a process may
hold at most 20,000 open files).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import multiprocessing.connection
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from typing import Any

from loadtests import common
from loadtests.common import BenchEnv, CpuSampler, MachineCpu, ServerProcess, log, rss_bytes

KIB = 1024


@dataclass(frozen=True)
class IdleConfig:
    steps: tuple[int, ...] = (5_000,)  #: cumulative connection counts
    client_procs: int = 3
    connect_concurrency: int = 64  #: handshakes in flight per client process
    settle_s: float = 2.0
    warmup_connections: int = 50
    target_ratio: float = 1.1

    @classmethod
    def smoke(cls) -> IdleConfig:
        return cls(steps=(100,), client_procs=1, settle_s=0.3, warmup_connections=10)

    @property
    def max_connections(self) -> int:
        return max(self.steps)


# ==============================================================================================
# Client processes (the websockets library, as a browser would negotiate)
# ==============================================================================================


class IdleWorker:
    def __init__(self, settings: dict[str, Any]) -> None:
        self.s = settings
        self.connections: list[Any] = []

    async def _open_one(self, url: str, origin: str, mode: str, user: str | None) -> None:
        from websockets.asyncio.client import connect

        from messaging.gateway.auth import mint_token

        subprotocols = ["messaging.v1.json"] if mode == "gateway" else None
        ws = await connect(
            url,
            subprotocols=subprotocols,  # type: ignore[arg-type]
            compression="deflate",
            origin=origin,  # type: ignore[arg-type]
            ping_interval=None,
            open_timeout=120,
            close_timeout=5,
        )
        try:
            if ws.response is not None and ws.response.headers.get("Sec-WebSocket-Extensions"):
                raise RuntimeError("the server accepted per-message deflate")
            if mode == "gateway":
                assert user is not None
                token = mint_token(self.s["secret"], user)
                await ws.send(json.dumps({"t": "hello", "token": token}))
                reply = json.loads(await asyncio.wait_for(ws.recv(), 120))
                if reply.get("t") != "ready":
                    raise RuntimeError(f"expected ready, got {reply}")
            else:
                await ws.send("bonjour")
                if await asyncio.wait_for(ws.recv(), 120) != "bonjour":
                    raise RuntimeError("echo mismatch")
        except BaseException:
            await ws.close()
            raise
        self.connections.append(ws)

    async def connect(self, spec: dict[str, Any]) -> dict[str, Any]:
        started = time.monotonic()
        gate = asyncio.Semaphore(self.s["concurrency"])
        failures: list[str] = []
        url, origin, mode = spec["url"], spec["origin"], spec["mode"]

        async def one(user: str | None) -> None:
            async with gate:
                try:
                    await self._open_one(url, origin, mode, user)
                except Exception as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")

        users: list[str | None] = spec["users"] if mode == "gateway" else [None] * spec["count"]
        await asyncio.gather(*(one(u) for u in users))
        return {
            "opened": len(users) - len(failures),
            "failed": len(failures),
            "failures": failures[:5],
            "seconds": round(time.monotonic() - started, 2),
        }

    async def close(self) -> dict[str, Any]:
        conns, self.connections = self.connections, []
        for chunk in range(0, len(conns), 500):
            closing = (c.close() for c in conns[chunk : chunk + 500])
            await asyncio.gather(*closing, return_exceptions=True)
        return {"closed": len(conns)}

    async def open_count(self) -> int:
        from websockets.protocol import State

        return sum(1 for c in self.connections if c.state is State.OPEN)

    async def serve(self, pipe: multiprocessing.connection.Connection) -> None:
        loop = asyncio.get_running_loop()
        while True:
            command, args = await loop.run_in_executor(None, pipe.recv)
            if command == "quit":
                return
            try:
                if command == "connect":
                    result: Any = await self.connect(args)
                elif command == "close":
                    result = await self.close()
                elif command == "open_count":
                    result = await self.open_count()
                else:
                    raise ValueError(f"unknown command {command!r}")
                pipe.send(("ok", result))
            except Exception:
                pipe.send(("error", traceback.format_exc()))


def _worker_main(settings: dict[str, Any], pipe: multiprocessing.connection.Connection) -> None:
    common.die_with_parent()
    common.raise_nofile()
    worker = IdleWorker(settings)
    try:
        import uvloop

        uvloop.run(worker.serve(pipe))
    except ImportError:
        asyncio.run(worker.serve(pipe))


class IdleClients:
    def __init__(self, count: int, settings: dict[str, Any]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.procs: list[multiprocessing.process.BaseProcess] = []
        self.pipes: list[multiprocessing.connection.Connection] = []
        for index in range(count):
            ours, theirs = ctx.Pipe()
            proc = ctx.Process(
                target=_worker_main, args=(settings, theirs), name=f"idle-{index}", daemon=True
            )
            proc.start()
            theirs.close()
            self.procs.append(proc)
            self.pipes.append(ours)

    def call(self, command: str, args: list[Any], timeout: float = 600.0) -> list[Any]:
        for pipe, arg in zip(self.pipes, args, strict=True):
            pipe.send((command, arg))
        results = []
        deadline = time.monotonic() + timeout
        for pipe in self.pipes:
            if not pipe.poll(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"idle clients did not answer {command!r} in {timeout:.0f}s")
            status, value = pipe.recv()
            if status != "ok":
                raise RuntimeError(f"idle client failed on {command!r}:\n{value}")
            results.append(value)
        return results

    def stop(self) -> None:
        """Quit, or kill: the kernel closes the sockets of a dead process at once."""
        for pipe in self.pipes:
            with contextlib.suppress(Exception):
                pipe.send(("quit", ()))
        for proc in self.procs:
            proc.join(3)
            if proc.is_alive():
                proc.kill()
                proc.join()


# ==============================================================================================
# The orchestrator
# ==============================================================================================


def _settled_rss(pid: int, settle_s: float, max_wait_s: float = 15.0) -> int:
    """RSS after `settle_s`, then once two readings 0.5 s apart differ by under 0.5%."""
    time.sleep(settle_s)
    deadline = time.monotonic() + max_wait_s
    previous = rss_bytes(pid)
    while True:
        time.sleep(0.5)
        current = rss_bytes(pid)
        if abs(current - previous) <= 0.005 * previous or time.monotonic() > deadline:
            return current
        previous = current


def _redis_used_memory(bench: BenchEnv) -> int:
    import redis as redis_py

    client = redis_py.Redis.from_url(bench.redis.url)
    try:
        return int(client.info("memory")["used_memory"])
    finally:
        client.close()


def _split(items: list[Any], parts: int) -> list[list[Any]]:
    return [items[i::parts] for i in range(parts)]


def _measure(
    bench: BenchEnv,
    server: ServerProcess,
    mode: str,
    users: list[str],
    cfg: IdleConfig,
) -> dict[str, Any]:
    """Connect the configured steps of idle clients to `server`; RSS before and after each."""
    settings = {"secret": bench.secret, "concurrency": cfg.connect_concurrency}
    clients = IdleClients(cfg.client_procs, settings)
    spec = {"url": server.ws_url, "origin": server.url, "mode": mode}
    try:
        # warm-up: code paths, pools and caches touched once, then the baseline
        warm = users[: cfg.warmup_connections]
        warm_specs = [
            {**spec, "users": part, "count": len(part)} for part in _split(warm, cfg.client_procs)
        ]
        clients.call("connect", warm_specs)
        clients.call("close", [None] * cfg.client_procs)
        baseline = _settled_rss(server.pid, cfg.settle_s)
        redis_before = _redis_used_memory(bench)
        result: dict[str, Any] = {"baseline_rss_mib": round(baseline / 2**20, 1), "steps": []}
        done = 0
        ok = True
        for total in cfg.steps:
            batch = users[done:total]
            sampler = CpuSampler({"server": lambda: [server.pid]})
            before = sampler.snapshot()
            machine = MachineCpu()
            started = time.monotonic()
            parts = _split(batch, cfg.client_procs)
            replies = clients.call(
                "connect", [{**spec, "users": p, "count": len(p)} for p in parts]
            )
            seconds = time.monotonic() - started
            machine_cores = machine.cores()
            cpu = CpuSampler.delta(before, sampler.snapshot())["server"]
            failed = sum(r["failed"] for r in replies)
            if failed:
                ok = False
                log(f"idle: {failed} {mode} connections failed, e.g. {replies[0]['failures']}")
            done = total
            rss = _settled_rss(server.pid, cfg.settle_s)
            still_open = sum(clients.call("open_count", [None] * cfg.client_procs))
            if still_open != total:
                ok = False
                log(f"idle: {total - still_open} {mode} connections closed while idle")
            step = {
                "connections": total,
                "open_after_settle": still_open,
                "failed": failed,
                "rss_mib": round(rss / 2**20, 1),
                "kib_per_connection": round((rss - baseline) / KIB / total, 2),
                "connect_seconds": round(seconds, 1),
                "connects_per_s": round(len(batch) / seconds, 0) if seconds else None,
                "server_cpu_ms_per_connect": round(cpu / len(batch) * 1e3, 3) if batch else None,
                "machine_cores_busy_while_connecting": machine_cores,
            }
            if mode == "gateway":
                redis_now = _redis_used_memory(bench)
                step["redis_bytes_per_subscription"] = round((redis_now - redis_before) / total)
            result["steps"].append(step)
            log(
                f"idle: {mode} {total} connections: RSS {step['rss_mib']} MiB, "
                f"{step['kib_per_connection']} KiB/connection "
                f"({step['connects_per_s']}/s, {step['server_cpu_ms_per_connect']} ms CPU each)"
            )
        result["ok"] = ok
        return result
    finally:
        clients.stop()


def run_idle(bench: BenchEnv, cfg: IdleConfig, users: list[str]) -> dict[str, Any]:
    """The bare uvicorn + Starlette echo server, the gateway, then the `websockets` floor, each
    a fresh process; `users` are distinct parents."""
    if len(users) < cfg.max_connections:
        raise ValueError(f"{cfg.max_connections} users needed, {len(users)} given")
    measured: dict[str, Any] = {}
    # started together (their imports take seconds), measured one after the other: an idle
    # server's memory does not move while another is measured
    servers = dict(zip(("echo", "gateway", "floor"), bench.start_idle_servers(), strict=True))
    try:
        for mode, server in servers.items():
            log(f"W1: {mode}, steps {cfg.steps}")
            measured[mode] = _measure(bench, server, mode, users, cfg)
            bench.stop_server(server)
    finally:
        bench.stop_servers(*servers.values())
    gw, ec, fl = measured["gateway"], measured["echo"], measured["floor"]
    comparison = []
    for g, e, f in zip(gw["steps"], ec["steps"], fl["steps"], strict=True):
        comparison.append(
            {
                "connections": g["connections"],
                "gateway_kib": g["kib_per_connection"],
                "echo_kib": e["kib_per_connection"],
                "floor_kib": f["kib_per_connection"],
                "ratio": _ratio(g["kib_per_connection"], e["kib_per_connection"]),
                "ratio_to_floor": _ratio(g["kib_per_connection"], f["kib_per_connection"]),
                "target_ratio": cfg.target_ratio,
            }
        )
    return {
        "config": asdict(cfg),
        "gateway": gw,
        "echo": ec,
        "floor": fl,
        "comparison": comparison,
        "ok": gw["ok"] and ec["ok"] and fl["ok"],
    }


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b > 0 else None


def print_idle(result: dict[str, Any]) -> None:
    print("\n== Idle connections: resident memory per connection (RSS delta / connections)")
    for c in result["comparison"]:
        print(
            f"  {c['connections']:>6} connections: gateway {c['gateway_kib']:.1f} KiB, "
            f"bare echo {c['echo_kib']:.1f} KiB, websockets floor {c['floor_kib']:.1f} KiB "
            f"-> ratio {c['ratio']} "
            f"(target <= {c['target_ratio']})"
        )
    for name in ("gateway", "echo", "floor"):
        part = result[name]
        last = part["steps"][-1]
        extra = ""
        if "redis_bytes_per_subscription" in last:
            extra = f", Redis +{last['redis_bytes_per_subscription']} B per subscribed user"
        print(
            f"  {name}: baseline {part['baseline_rss_mib']} MiB, {last['connections']} conns "
            f"{last['rss_mib']} MiB; {last['connects_per_s']} connects/s, "
            f"{last['server_cpu_ms_per_connect']} ms server CPU per connect{extra}"
        )
    print(f"  all connections opened and still open after settling: {result['ok']}")


def main(argv: list[str] | None = None) -> int:
    from loadtests.__main__ import main as bench_main

    parser = argparse.ArgumentParser(prog="python -m loadtests.idle", description=__doc__)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    forwarded = ["--only", "w1"] + (["--smoke"] if args.smoke else [])
    if args.out:
        forwarded += ["--out", args.out]
    return bench_main(forwarded)


if __name__ == "__main__":
    sys.exit(main())
