"""Live chat across two gateway processes: latency at a fixed rate, then the sustained maximum.

    python -m loadtests.chat [--smoke] [--out DIR]

Teacher i and parent i share one direct conversation. Teachers (the senders) are connected to
gateway A, parents (the receivers) to gateway B, so every message crosses Postgres (a durable
group commit) and Redis (fan-out to the other process). Senders and receivers run in separate
OS processes, each with its own event loop (uvloop), on the lean client of loadtests/wsclient.py,
speaking `messaging.v1.msgpack`.

Phase 1, fixed rate: 1,000 messages/s in total for 10 s over 200 conversations, open loop (each
send is scheduled by the clock, never by a previous reply). Measured:
- end-to-end latency: from the send frame's write (its timestamp travels in the body) to the
  `event` frame's arrival at the receiving parent (CLOCK_MONOTONIC is shared by all processes);
- send-to-ok latency: from the same write to the `ok`, which the gateway sends after the commit;
- committed messages per second, server CPU seconds per message (both gateways, every
  PostgreSQL process, Redis), client CPU.

Phase 2, open-loop ramp: steps of a few seconds at rising rates over 1,000 conversations (the
gateway's per-connection flood control allows 20 frames/s per connection, so 200 senders could
not offer more than 4,000/s; 1,000 keep each sender at or under 10/s). A step passes when the
acknowledged rate is at least 95% of the offered rate and the p99 send-to-ok latency stays
under 250 ms (sends not acknowledged count as infinitely late). After the first failing step,
bisection steps narrow the maximum. The sustained maximum is the best passing step's
acknowledged (= committed) rate.

Correctness, checked over every phase: each receiver checks every conversation's seqs; every
acknowledged seq must arrive exactly once, in increasing order. Any loss, duplicate, reordering,
send error or unexpected close fails the run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import multiprocessing
import multiprocessing.connection
import os
import sys
import time
import traceback
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
import msgpack

from loadtests import common
from loadtests.common import (
    BenchEnv,
    CpuSampler,
    MachineCpu,
    PgDiagnostics,
    ServerProcess,
    log,
    summarize,
)
from loadtests.wsclient import WsClient, connect

SUBPROTOCOL = "messaging.v1.msgpack"
FILLER = "Bonjour, petit rappel : la sortie au musée a lieu jeudi, merci de signer le formulaire."
NS = 1_000_000_000


@dataclass(frozen=True)
class ChatConfig:
    pairs: int = 200  #: conversations of phase 1
    rate: float = 1_000.0  #: messages/s of phase 1
    duration_s: float = 10.0
    warmup_rate: float = 500.0
    warmup_s: float = 2.0
    ramp_pairs: int = 1_000  #: conversations of phase 2
    ramp_steps: tuple[float, ...] = (1_000, 2_000, 4_000, 6_000, 8_000, 10_000)
    step_s: float = 4.0
    refine_steps: int = 3  #: bisection steps after the first failing step
    max_ok_p99_ms: float = 250.0
    min_ack_ratio: float = 0.95
    sender_procs: int = 2
    receiver_procs: int = 2
    drain_timeout_s: float = 20.0
    target_p99_ms: float = 5.0  #: at `rate`
    target_sustained: float = 5_000.0

    @classmethod
    def smoke(cls) -> ChatConfig:
        return cls(
            pairs=20,
            rate=200.0,
            duration_s=2.0,
            warmup_rate=100.0,
            warmup_s=0.5,
            ramp_pairs=40,
            ramp_steps=(200.0, 400.0),
            step_s=1.0,
            refine_steps=0,
            sender_procs=1,
            receiver_procs=1,
            drain_timeout_s=10.0,
        )

    @property
    def users_needed(self) -> int:
        return max(self.pairs, self.ramp_pairs)


# ==============================================================================================
# Client processes
# ==============================================================================================


@dataclass
class _Sender:
    """One teacher connection: its conversation and its sends waiting for their `ok`."""

    pair: int
    client: WsClient
    conv: str = ""
    next_id: int = 1
    # request id -> (write time ns, step tag)
    pending: dict[int, tuple[int, str]] = field(default_factory=dict)
    control: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)


@dataclass
class _StepLog:
    sent: int = 0
    lag_ns: list[int] = field(default_factory=list)
    ok_ns: list[int] = field(default_factory=list)  #: send-to-ok latencies
    ack_at: list[int] = field(default_factory=list)  #: ok arrival times
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))


class ChatWorker:
    """A client process: `sender` (teachers on gateway A) or `receiver` (parents on B)."""

    def __init__(self, role: str, index: int, settings: dict[str, Any]) -> None:
        self.role = role
        self.index = index
        self.s = settings
        self.procs = settings["sender_procs" if role == "sender" else "receiver_procs"]
        self.port = settings["port_a" if role == "sender" else "port_b"]
        self.clients: dict[int, WsClient] = {}
        self.senders: dict[int, _Sender] = {}
        self.steps: dict[str, _StepLog] = defaultdict(_StepLog)
        self.outstanding: dict[str, int] = defaultdict(int)  #: tag -> sends without a reply
        self.drained: dict[str, asyncio.Event] = {}  #: tag -> set when its last reply came
        self.acked: dict[str, list[int]] = defaultdict(list)  #: conv -> acked seqs
        # receivers
        self.received: dict[str, list[int]] = defaultdict(list)  #: conv -> message seqs
        self.last_seq: dict[str, int] = {}
        self.latency: dict[str, list[int]] = defaultdict(list)  #: tag -> end-to-end ns
        self.messages = 0
        self.non_increasing = 0
        self.others: dict[str, int] = defaultdict(int)
        self.unexpected_closes: dict[int, int] = defaultdict(int)
        self.closing = False
        self._ready: dict[WsClient, asyncio.Future[dict[str, Any]]] = {}

    # Frames ---------------------------------------------------------------------------------

    def _on_close(self, client: WsClient) -> None:
        fut = self._ready.pop(client, None)
        if fut is not None and not fut.done():
            fut.set_exception(ConnectionError(f"closed with {client.close_code}"))
        if not self.closing:
            self.unexpected_closes[client.close_code or 1006] += 1

    def _on_sender_frame(self, client: WsClient, payload: bytes, _binary: bool) -> None:
        frame = msgpack.unpackb(payload)
        t = frame.get("t")
        sender: _Sender = client.data  # type: ignore[assignment]
        if t == "ok" or t == "error":
            rid = frame.get("id")
            entry = sender.pending.pop(rid, None)
            if entry is not None:
                now = time.monotonic_ns()
                written, tag = entry
                self.outstanding[tag] -= 1
                if self.outstanding[tag] == 0 and tag in self.drained:
                    self.drained[tag].set()
                step = self.steps[tag]
                if t == "ok":
                    step.ok_ns.append(now - written)
                    step.ack_at.append(now)
                    self.acked[frame["conv"]].append(frame["seq"])
                else:
                    step.errors[str(frame.get("code"))] += 1
                return
            fut = sender.control.pop(rid, None)
            if fut is not None and not fut.done():
                fut.set_result(frame)
                return
            self.others[f"unmatched_{t}"] += 1
        elif t == "ready":
            self._resolve_ready(client, frame)
        else:
            self.others[str(t)] += 1

    def _on_receiver_frame(self, client: WsClient, payload: bytes, _binary: bool) -> None:
        frame = msgpack.unpackb(payload)
        t = frame.get("t")
        if t == "event":
            conv, seq = frame["conv"], frame["seq"]
            if seq <= self.last_seq.get(conv, 0):
                self.non_increasing += 1
            else:
                self.last_seq[conv] = seq
            if frame.get("kind") == "message":
                now = time.monotonic_ns()
                self.received[conv].append(seq)
                self.messages += 1
                tag, stamp, _ = frame["body"].split(" ", 2)
                self.latency[tag].append(now - int(stamp))
        elif t == "ready":
            self._resolve_ready(client, frame)
        else:
            self.others[str(t)] += 1

    def _resolve_ready(self, client: WsClient, frame: dict[str, Any]) -> None:
        fut = self._ready.pop(client, None)
        if fut is not None and not fut.done():
            fut.set_result(frame)

    # Commands ---------------------------------------------------------------------------------

    def my_pairs(self, lo: int, hi: int) -> list[int]:
        return [i for i in range(lo, hi) if i % self.procs == self.index]

    async def connect(self, lo: int, hi: int) -> dict[str, Any]:
        """Connect (and, for senders, open the conversation of) each of my pairs in [lo, hi)."""
        from messaging.gateway.auth import mint_token

        started = time.monotonic()
        gate = asyncio.Semaphore(50)
        handler = self._on_sender_frame if self.role == "sender" else self._on_receiver_frame

        async def one(pair: int) -> None:
            user = common.teacher_id(pair) if self.role == "sender" else common.parent_id(pair)
            async with gate:
                client = await connect(
                    "127.0.0.1", self.port, "/ws", SUBPROTOCOL, handler, on_close=self._on_close
                )
                client.user = user
                ready: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
                self._ready[client] = ready
                if self.role == "sender":
                    client.data = _Sender(pair, client)
                token = mint_token(self.s["secret"], user, ttl_s=6 * 3600)
                client.send_binary(msgpack.packb({"t": "hello", "token": token}))
                await asyncio.wait_for(ready, 30)
                self.clients[pair] = client
                if self.role == "sender":
                    sender: _Sender = client.data  # type: ignore[assignment]
                    reply = await self._request(
                        sender,
                        {
                            "t": "open",
                            "school": self.s["school"],
                            "members": [common.parent_id(pair)],
                        },
                    )
                    if reply.get("t") != "ok":
                        raise RuntimeError(f"open refused for pair {pair}: {reply}")
                    sender.conv = reply["conv"]
                    self.senders[pair] = sender

        pairs = self.my_pairs(lo, hi)
        await asyncio.gather(*(one(p) for p in pairs))
        return {"connected": len(pairs), "seconds": round(time.monotonic() - started, 2)}

    async def _request(self, sender: _Sender, frame: dict[str, Any]) -> dict[str, Any]:
        rid = sender.next_id
        sender.next_id += 1
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        sender.control[rid] = fut
        sender.client.send_binary(msgpack.packb({**frame, "id": rid}))
        return await asyncio.wait_for(fut, 30)

    async def run(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Open loop: send `rate * mine / active` messages/s, each at its scheduled time."""
        tag: str = spec["tag"]
        active: int = spec["active"]
        senders = [self.senders[p] for p in sorted(self.senders) if p < active]
        step = self.steps[tag]
        if not senders:
            return {"tag": tag, "sent": 0}
        my_rate = spec["rate"] * len(senders) / active
        total = round(my_rate * spec["duration"])
        t0 = spec["start_at_ns"]
        interval_ns = NS / my_rate
        n = len(senders)
        pack = msgpack.packb
        mono = time.monotonic_ns
        i = 0
        await asyncio.sleep(max(0.0, (t0 - mono()) / NS))
        while i < total:
            now = mono()
            due = min(total, int((now - t0) / interval_ns) + 1)
            while i < due:
                sender = senders[i % n]
                rid = sender.next_id
                sender.next_id += 1
                written = mono()
                sender.client.send_binary(
                    pack(
                        {
                            "t": "send",
                            "id": rid,
                            "conv": sender.conv,
                            "cid": f"{tag}.{rid}",
                            "body": f"{tag} {written} {FILLER}",
                        }
                    )
                )
                sender.pending[rid] = (written, tag)
                self.outstanding[tag] += 1
                step.lag_ns.append(written - (t0 + int(i * interval_ns)))
                i += 1
            step.sent = i
            if i < total:
                next_at = t0 + i * interval_ns
                await asyncio.sleep(max(0.0, (next_at - mono()) / NS))
        # wait for the acknowledgements of this step (the queue drains before the next step)
        drained = self.drained.setdefault(tag, asyncio.Event())
        if self.outstanding[tag] > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(drained.wait(), spec["drain_s"])
        unacked = self.outstanding[tag]
        return {
            "tag": tag,
            "sent": step.sent,
            "unacked": unacked,
            "ok_ns": step.ok_ns,
            "ack_at": step.ack_at,
            "lag_ns": step.lag_ns,
            "errors": dict(step.errors),
        }

    def counts(self) -> dict[str, Any]:
        if self.role == "sender":
            pending = sum(len(s.pending) for s in self.senders.values())
            return {"acked": sum(len(v) for v in self.acked.values()), "pending": pending}
        return {"messages": self.messages}

    def collect(self) -> dict[str, Any]:
        common_part = {
            "others": dict(self.others),
            "unexpected_closes": dict(self.unexpected_closes),
        }
        if self.role == "sender":
            return {"acked": dict(self.acked), **common_part}
        return {
            "received": dict(self.received),
            "latency_ns": dict(self.latency),
            "non_increasing": self.non_increasing,
            **common_part,
        }

    async def close(self) -> dict[str, Any]:
        self.closing = True
        await asyncio.gather(
            *(c.close(timeout=5) for c in self.clients.values()), return_exceptions=True
        )
        return {"closed": len(self.clients)}

    async def serve(self, pipe: multiprocessing.connection.Connection) -> None:
        loop = asyncio.get_running_loop()
        while True:
            command, args = await loop.run_in_executor(None, pipe.recv)
            if command == "quit":
                return
            try:
                if command == "connect":
                    result: Any = await self.connect(*args)
                elif command == "run":
                    result = await self.run(args)
                elif command == "counts":
                    result = self.counts()
                elif command == "collect":
                    result = self.collect()
                elif command == "close":
                    result = await self.close()
                else:
                    raise ValueError(f"unknown command {command!r}")
                pipe.send(("ok", result))
            except Exception:
                pipe.send(("error", traceback.format_exc()))


def _worker_main(
    role: str, index: int, settings: dict[str, Any], pipe: multiprocessing.connection.Connection
) -> None:
    common.die_with_parent()
    common.raise_nofile()
    worker = ChatWorker(role, index, settings)
    try:
        import uvloop

        uvloop.run(worker.serve(pipe))
    except ImportError:
        asyncio.run(worker.serve(pipe))


class WorkerPool:
    """Client processes and their command pipes."""

    def __init__(self) -> None:
        self.procs: list[multiprocessing.process.BaseProcess] = []
        self.pipes: dict[str, list[multiprocessing.connection.Connection]] = defaultdict(list)

    def start(self, role: str, count: int, settings: dict[str, Any]) -> None:
        ctx = multiprocessing.get_context("spawn")
        for index in range(count):
            ours, theirs = ctx.Pipe()
            proc = ctx.Process(
                target=_worker_main,
                args=(role, index, settings, theirs),
                name=f"chat-{role}-{index}",
                daemon=True,
            )
            proc.start()
            theirs.close()
            self.procs.append(proc)
            self.pipes[role].append(ours)

    def pids(self, role: str) -> list[int]:
        return [p.pid for p in self.procs if p.name.startswith(f"chat-{role}") and p.pid]

    def call(self, role: str, command: str, args: Any = (), timeout: float = 120.0) -> list[Any]:
        pipes = self.pipes[role]
        for pipe in pipes:
            pipe.send((command, args))
        results = []
        deadline = time.monotonic() + timeout
        for pipe in pipes:
            if not pipe.poll(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"{role} workers did not answer {command!r} in {timeout:.0f}s")
            status, value = pipe.recv()
            if status != "ok":
                raise RuntimeError(f"{role} worker failed on {command!r}:\n{value}")
            results.append(value)
        return results

    def stop(self) -> None:
        for pipes in self.pipes.values():
            for pipe in pipes:
                with contextlib.suppress(Exception):
                    pipe.send(("quit", ()))
        for proc in self.procs:
            proc.join(5)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join()


# ==============================================================================================
# The orchestrator
# ==============================================================================================


def _gateway_metrics(gw: ServerProcess) -> dict[str, float]:
    """The sums and counts of the gateway's batch-size and send-to-commit histograms."""
    wanted = (
        "messaging_append_batch_size_sum",
        "messaging_append_batch_size_count",
        "messaging_send_commit_seconds_sum",
        "messaging_send_commit_seconds_count",
    )
    found: dict[str, float] = {}
    with contextlib.suppress(httpx.HTTPError):
        text = httpx.get(gw.url + "/metrics", timeout=5).text
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name in wanted:
                found[name] = float(value)
    return found


def _metrics_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    def d(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    batches = d("messaging_append_batch_size_count")
    sends = d("messaging_send_commit_seconds_count")
    return {
        "transactions": int(batches),
        "mean_batch_size": round(d("messaging_append_batch_size_sum") / batches, 2)
        if batches
        else None,
        "mean_send_to_commit_ms": round(d("messaging_send_commit_seconds_sum") / sends * 1e3, 2)
        if sends
        else None,
    }


class ChatBench:
    def __init__(
        self,
        bench: BenchEnv,
        cfg: ChatConfig,
        gateways: tuple[ServerProcess, ServerProcess] | None = None,
    ) -> None:
        self.bench = bench
        self.cfg = cfg
        self.gw_a: ServerProcess | None = gateways[0] if gateways else None
        self.gw_b: ServerProcess | None = gateways[1] if gateways else None
        self.pool = WorkerPool()
        self.connected = 0

    def _sampler(self) -> CpuSampler:
        assert self.gw_a is not None and self.gw_b is not None
        groups = self.bench.server_groups([self.gw_a, self.gw_b])
        groups["client_senders"] = lambda: self.pool.pids("sender")
        groups["client_receivers"] = lambda: self.pool.pids("receiver")
        return CpuSampler(groups)

    def _connect(self, hi: int) -> None:
        if hi <= self.connected:
            return
        lo = self.connected
        started = time.monotonic()
        self.pool.call("receiver", "connect", (lo, hi))
        self.pool.call("sender", "connect", (lo, hi))
        self.connected = hi
        log(f"chat: pairs {lo}..{hi - 1} connected in {time.monotonic() - started:.1f}s")

    def _run(self, tag: str, rate: float, duration: float, active: int, drain: float) -> Any:
        """One open-loop step on every sender process; returns the merged measurements and the
        server/client CPU and gateway metrics over the step and its drain."""
        sampler = self._sampler()
        assert self.gw_a is not None
        metrics_before = _gateway_metrics(self.gw_a)
        before = sampler.snapshot()
        machine = MachineCpu()
        wall = time.monotonic()
        start_at = time.monotonic_ns() + int(0.3 * NS)
        spec = {
            "tag": tag,
            "rate": rate,
            "duration": duration,
            "active": active,
            "start_at_ns": start_at,
            "drain_s": drain,
        }
        with PgDiagnostics(self.bench.pg.admin_dsn) as diagnostics:
            parts = self.pool.call("sender", "run", spec, timeout=duration + drain + 60)
        after = sampler.snapshot()
        machine_cores = machine.cores()
        wall = time.monotonic() - wall
        cpu = CpuSampler.delta(before, after)
        ok_ns = [x for p in parts for x in p.get("ok_ns", [])]
        ack_at = [x for p in parts for x in p.get("ack_at", [])]
        lag = [x for p in parts for x in p.get("lag_ns", [])]
        sent = sum(p["sent"] for p in parts)
        unacked = sum(p.get("unacked", 0) for p in parts)
        errors: dict[str, int] = defaultdict(int)
        for p in parts:
            for code, count in p.get("errors", {}).items():
                errors[code] += count
        window_end = start_at + int((duration + self.cfg.max_ok_p99_ms / 1e3) * NS)
        acked_in_window = sum(1 for t in ack_at if t <= window_end)
        # unacknowledged sends count as infinitely late
        late = sorted([x / 1e6 for x in ok_ns] + [math.inf] * (sent - len(ok_ns)))
        p99 = common.percentile(late, 99) if late else math.nan
        server_cpu = sum(v for k, v in cpu.items() if not k.startswith("client_"))
        acked = len(ok_ns)
        pg = diagnostics.result()
        if acked and pg.get("wal_bytes") is not None:
            pg["wal_bytes_per_message"] = round(pg["wal_bytes"] / acked)
        return {
            "tag": tag,
            "offered_rate": rate,
            "duration_s": duration,
            "conversations": active,
            "sent": sent,
            "sent_rate": round(sent / duration, 1),
            "acked": acked,
            "unacked": unacked,
            "errors": dict(errors),
            "acked_rate": round(acked_in_window / duration, 1),
            "ok_p99_ms_with_unacked": None if math.isinf(p99) else round(p99, 2),
            "ok_latency_ms": summarize(ok_ns, 1e-6),
            "schedule_lag_ms": summarize(lag, 1e-6),
            "cpu_seconds": cpu,
            "server_cpu_seconds": round(server_cpu, 3),
            "server_cpu_ms_per_message": round(server_cpu / acked * 1e3, 4) if acked else None,
            "server_cores_busy": round(server_cpu / wall, 2),
            "client_cores_busy": round(
                sum(v for k, v in cpu.items() if k.startswith("client_")) / wall, 2
            ),
            "machine_cores_busy": machine_cores,
            "other_cores_busy": round(machine_cores - sum(cpu.values()) / wall, 2),
            "measured_wall_s": round(wall, 2),
            "gateway_a": _metrics_delta(metrics_before, _gateway_metrics(self.gw_a)),
            "postgres": pg,
        }

    def _passes(self, step: dict[str, Any]) -> bool:
        p99 = step["ok_p99_ms_with_unacked"]
        return (
            not step["errors"]
            and step["acked_rate"] >= self.cfg.min_ack_ratio * step["offered_rate"]
            and p99 is not None
            and p99 < self.cfg.max_ok_p99_ms
        )

    def _wait_delivered(self) -> None:
        """Until the receivers hold as many messages as the senders got acknowledged."""
        deadline = time.monotonic() + self.cfg.drain_timeout_s
        while True:
            senders = self.pool.call("sender", "counts")
            acked = sum(s["acked"] for s in senders)
            pending = sum(s["pending"] for s in senders)
            received = sum(r["messages"] for r in self.pool.call("receiver", "counts"))
            if (received >= acked and pending == 0) or time.monotonic() > deadline:
                return
            time.sleep(0.1)

    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        bench = self.bench
        if self.gw_a is None or self.gw_b is None:
            self.gw_a, self.gw_b = bench.start_gateways("gateway-a", "gateway-b")
        settings = {
            "port_a": self.gw_a.port,
            "port_b": self.gw_b.port,
            "secret": bench.secret,
            "school": common.SCHOOL_ID,
            "sender_procs": cfg.sender_procs,
            "receiver_procs": cfg.receiver_procs,
        }
        try:
            self.pool.start("receiver", cfg.receiver_procs, settings)
            self.pool.start("sender", cfg.sender_procs, settings)
            return self._phases()
        finally:
            with contextlib.suppress(Exception):
                self.pool.call("sender", "close", timeout=30)
                self.pool.call("receiver", "close", timeout=30)
            self.pool.stop()
            bench.stop_servers(*(gw for gw in (self.gw_a, self.gw_b) if gw is not None))

    def _phases(self) -> dict[str, Any]:
        cfg = self.cfg
        self._connect(cfg.pairs)
        log(f"chat: warm-up {cfg.warmup_rate:.0f} msg/s for {cfg.warmup_s:g}s")
        self._run("w", cfg.warmup_rate, cfg.warmup_s, cfg.pairs, cfg.drain_timeout_s)
        self._wait_delivered()
        log(f"chat: phase 1, {cfg.rate:.0f} msg/s for {cfg.duration_s:g}s, {cfg.pairs} convs")
        phase1 = self._run("p1", cfg.rate, cfg.duration_s, cfg.pairs, cfg.drain_timeout_s)
        self._wait_delivered()
        self._connect(cfg.ramp_pairs)
        # every conversation of the ramp sends once or twice before the measured steps
        self._run("rw", cfg.warmup_rate, cfg.warmup_s, cfg.ramp_pairs, cfg.drain_timeout_s)
        self._wait_delivered()
        steps: list[dict[str, Any]] = []
        passed: dict[str, Any] | None = None
        failed: dict[str, Any] | None = None
        counter = itertools.count(1)

        def step(rate: float) -> bool:
            tag = f"r{next(counter)}"
            log(f"chat: ramp step {rate:.0f} msg/s for {cfg.step_s:g}s")
            result = self._run(tag, rate, cfg.step_s, cfg.ramp_pairs, cfg.drain_timeout_s)
            result["passed"] = self._passes(result)
            steps.append(result)
            log(
                f"chat:   acked {result['acked_rate']:.0f}/s, ok p99 "
                f"{result['ok_p99_ms_with_unacked']} ms, server CPU "
                f"{result['server_cores_busy']} cores -> "
                f"{'pass' if result['passed'] else 'FAIL'}"
            )
            self._wait_delivered()
            return bool(result["passed"])

        for rate in cfg.ramp_steps:
            if step(rate):
                passed = steps[-1]
            else:
                failed = steps[-1]
                break
        if failed is not None:
            lo = passed["offered_rate"] if passed else 0.0
            hi = failed["offered_rate"]
            for _ in range(cfg.refine_steps):
                mid = round((lo + hi) / 2 / 100) * 100
                if mid <= lo or mid >= hi:
                    break
                if step(mid):
                    lo = mid
                    if passed is None or mid > passed["offered_rate"]:
                        passed = steps[-1]
                else:
                    hi = mid
        self._wait_delivered()
        correctness = self._check()
        return self._report(phase1, steps, passed, correctness)

    def _check(self) -> dict[str, Any]:
        senders = self.pool.call("sender", "collect", timeout=120)
        receivers = self.pool.call("receiver", "collect", timeout=120)
        acked: dict[str, list[int]] = defaultdict(list)
        for part in senders:
            for conv, seqs in part["acked"].items():
                acked[conv].extend(seqs)
        received: dict[str, list[int]] = {}
        for part in receivers:
            received.update(part["received"])
        lost = duplicated = reordered = unacked_delivered = 0
        for conv in set(acked) | set(received):
            want = set(acked.get(conv, []))
            got = received.get(conv, [])
            got_set = set(got)
            lost += len(want - got_set)
            duplicated += len(got) - len(got_set)
            unacked_delivered += len(got_set - want)
            highest = 0
            for seq in got:
                if seq < highest:
                    reordered += 1
                highest = max(highest, seq)
        acked_total = sum(len(v) for v in acked.values())
        acked_dupes = acked_total - sum(len(set(v)) for v in acked.values())
        closes: dict[str, int] = defaultdict(int)
        others: dict[str, int] = defaultdict(int)
        for part in (*senders, *receivers):
            for code, count in part["unexpected_closes"].items():
                closes[str(code)] += count
            for kind, count in part["others"].items():
                others[kind] += count
        self._latency = {
            tag: [x for part in receivers for x in part["latency_ns"].get(tag, [])]
            for tag in {t for part in receivers for t in part["latency_ns"]}
        }
        return {
            "acked": acked_total,
            "delivered": sum(len(v) for v in received.values()),
            "lost": lost,
            "duplicated": duplicated,
            "reordered": reordered,
            "acked_seq_reused": acked_dupes,
            "delivered_unacked": unacked_delivered,
            "unexpected_closes": dict(closes),
            "other_frames": dict(others),
            "receiver_non_increasing_events": sum(r["non_increasing"] for r in receivers),
        }

    def _report(
        self,
        phase1: dict[str, Any],
        steps: list[dict[str, Any]],
        passed: dict[str, Any] | None,
        correctness: dict[str, Any],
    ) -> dict[str, Any]:
        cfg = self.cfg
        e2e = summarize(self._latency.get("p1", []), 1e-6, 3)
        phase1["end_to_end_ms"] = e2e
        phase1["committed_per_s"] = round(phase1["acked"] / cfg.duration_s, 1)
        ramp_errors = sum(sum(s["errors"].values()) for s in steps)
        correctness["errors_phase1"] = sum(phase1["errors"].values())
        correctness["errors_ramp"] = ramp_errors
        ok = (
            correctness["lost"] == 0
            and correctness["duplicated"] == 0
            and correctness["reordered"] == 0
            and correctness["acked_seq_reused"] == 0
            and not correctness["unexpected_closes"]
            and correctness["errors_phase1"] == 0
            and phase1["unacked"] == 0
        )
        correctness["ok"] = ok
        sustained = passed["acked_rate"] if passed else 0.0
        reached_top = (
            bool(passed) and passed is steps[-1] and passed["offered_rate"] >= max(cfg.ramp_steps)
        )
        p99 = e2e.get("p99", math.nan)
        return {
            "config": asdict(cfg),
            "phase1": phase1,
            "ramp": {
                "steps": steps,
                "sustained_max_per_s": sustained,
                "sustained_step": passed["offered_rate"] if passed else None,
                "limited_by_ramp_top": reached_top,
                "server_cpu_ms_per_message_at_max": passed["server_cpu_ms_per_message"]
                if passed
                else None,
            },
            "correctness": correctness,
            "targets": {
                "p99_e2e_ms": cfg.target_p99_ms,
                "p99_e2e_ratio": round(p99 / cfg.target_p99_ms, 2),
                "sustained_per_s": cfg.target_sustained,
                "sustained_ratio": round(sustained / cfg.target_sustained, 2),
            },
        }


def run_chat(
    bench: BenchEnv,
    cfg: ChatConfig,
    gateways: tuple[ServerProcess, ServerProcess] | None = None,
) -> dict[str, Any]:
    """The chat workload on an environment whose roster holds `cfg.users_needed` pairs, on
    `gateways` (A, B) when given (they are stopped at the end), else on two new ones."""
    return ChatBench(bench, cfg, gateways).run()


def print_chat(result: dict[str, Any]) -> None:
    p1 = result["phase1"]
    e2e = p1["end_to_end_ms"]
    ok = p1["ok_latency_ms"]
    ramp = result["ramp"]
    c = result["correctness"]
    t = result["targets"]
    cfg = result["config"]
    print(f"\n== Chat: {cfg['pairs']} direct conversations, senders on gateway A, receivers on B")
    print(
        f"Phase 1, {p1['offered_rate']:.0f} msg/s offered for {p1['duration_s']:.0f}s: "
        f"{p1['committed_per_s']:.0f} committed msg/s"
    )
    print(
        f"  end-to-end latency ms: p50 {e2e.get('p50')}  p90 {e2e.get('p90')}  "
        f"p99 {e2e.get('p99')}  max {e2e.get('max')}  (n={e2e.get('count')})"
    )
    print(
        f"  send-to-ok latency ms: p50 {ok.get('p50')}  p90 {ok.get('p90')}  "
        f"p99 {ok.get('p99')}  max {ok.get('max')}"
    )
    gw = p1["gateway_a"]
    print(
        f"  server CPU {p1['server_cpu_ms_per_message']} ms/message "
        f"({p1['server_cores_busy']} cores busy: {_cpu_line(p1['cpu_seconds'])}; "
        f"client {p1['client_cores_busy']} cores; {gw['transactions']} commits, "
        f"mean batch {gw['mean_batch_size']}; machine {p1['machine_cores_busy']} cores busy, "
        f"{p1['other_cores_busy']} outside the bench's processes)"
    )
    print(f"  {_pg_line(p1['postgres'])}")
    print(f"Phase 2, ramp over {cfg['ramp_pairs']} conversations ({cfg['step_s']:.0f}s steps):")
    for s in ramp["steps"]:
        print(
            f"  {s['offered_rate']:>7.0f}/s offered  {s['acked_rate']:>7.0f}/s acked  "
            f"ok p99 {s['ok_p99_ms_with_unacked'] or 'inf':>8} ms  "
            f"CPU {s['server_cpu_ms_per_message']} ms/msg  server {s['server_cores_busy']} "
            f"client {s['client_cores_busy']} other {s['other_cores_busy']} cores  "
            f"batch {s['gateway_a']['mean_batch_size']}  "
            f"{'pass' if s['passed'] else 'FAIL'}"
        )
    top = ""
    if ramp["limited_by_ramp_top"]:
        top = " (the ramp's top step: the real maximum is higher)"
    print(f"  sustained maximum: {ramp['sustained_max_per_s']:.0f} committed msg/s{top}")
    print(
        f"Correctness: {c['acked']} acknowledged, {c['delivered']} delivered, lost {c['lost']}, "
        f"duplicated {c['duplicated']}, reordered {c['reordered']}, send errors "
        f"{c['errors_phase1']} (phase 1) / {c['errors_ramp']} (ramp), unexpected closes "
        f"{c['unexpected_closes'] or 0} -> {'OK' if c['ok'] else 'FAILED'}"
    )
    print(
        f"Targets: p99 {e2e.get('p99')} ms vs {t['p99_e2e_ms']} ms -> ratio {t['p99_e2e_ratio']} "
        f"(<= 1 meets); sustained {ramp['sustained_max_per_s']:.0f} vs "
        f"{t['sustained_per_s']:.0f}/s -> ratio {t['sustained_ratio']} (>= 1 meets)"
    )


def _pg_line(pg: dict[str, Any]) -> str:
    shares = pg.get("backend_time_share_in_transactions") or {}
    parts = ", ".join(f"{v:.0%} {k}" for k, v in shares.items() if v >= 0.01)
    return (
        f"Postgres: {pg.get('wal_flushes')} WAL flushes of {pg.get('wal_flush_mean_ms')} ms mean; "
        f"service backends in a transaction: {pg.get('backends_in_a_transaction_mean')} on "
        f"average, of their time: {parts}"
    )


def _cpu_line(cpu: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f}s" for k, v in cpu.items() if not k.startswith("client_"))


def main(argv: list[str] | None = None) -> int:
    from loadtests.__main__ import main as bench_main

    parser = argparse.ArgumentParser(prog="python -m loadtests.chat", description=__doc__)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    forwarded = ["--only", "chat"] + (["--smoke"] if args.smoke else [])
    if args.out:
        forwarded += ["--out", args.out]
    return bench_main(forwarded)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
