"""W2 (live chat across two gateways) and W5 (locks under load), against same-run baselines.

    python -m loadtests.chat [--smoke] [--out DIR]

Teacher i and parent i share one direct conversation. Teachers (the senders) are connected to
gateway A, parents (the receivers) to gateway B, so every message crosses Postgres (a durable
group commit) and Redis (fan-out to the other process). Senders and receivers run in separate
OS processes on the lean client of loadtests/wsclient.py (loadtests/chatclient.py).

W2, fixed rate: 1,000 messages/s over 200 conversations, open loop, in segments that alternate
between the service and its two baselines (loadtests/baselines.py: the generic Starlette +
broadcaster build, senders on its process A and receivers on its process B; and the
`websockets` floor, one process), the order rotating each round. Measured per target:
end-to-end latency (the send frame's write to the `event` frame's arrival), send-to-ok latency,
committed messages/s, server CPU per message.

W2, ramp (the service only): steps at rising rates over 1,000 conversations; a step passes when
at least 95% of the offered rate is acknowledged and the p99 send-to-ok latency (unacknowledged
sends counting as infinitely late) stays under 250 ms; bisection steps narrow the maximum.

W5, locks under load: while the 1,000 messages/s flow, the principal locks conversations (20/s)
and unlocks each 100 ms after its `ok`. Measured: the time from the `lock` frame's write to the
`locked` event's arrival at the parent (gateway B) and at the teacher (gateway A), against W2's
p99 of the same run. Checked: no message is acknowledged that was sent after the principal held
the lock's `ok` (and before the unlock), none has a seq between the lock's and the unlock's,
and no receiver sees a message between `locked` and `unlocked`.

Correctness, over every phase and target: every acknowledged seq arrives exactly once and in
order, no conversation has a gap in its seqs, no connection closes unexpectedly, no send is
refused (but with `locked`, in W5). Any failure fails the run.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import math
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from loadtests import common
from loadtests.chatclient import MSGPACK, NS, WorkerPool
from loadtests.common import BenchEnv, PgDiagnostics, Phase, ServerProcess, log, summarize

JSON = "messaging.v1.json"


@dataclass(frozen=True)
class ChatConfig:
    pairs: int = 200  #: conversations of the fixed-rate phases
    rate: float = 1_000.0  #: messages/s of the fixed-rate phases
    segment_s: float = 4.0  #: one measured segment per target and round
    rounds: int = 2
    baselines: tuple[str, ...] = ("generic", "floor")
    warmup_rate: float = 500.0
    warmup_s: float = 1.0
    lock_s: float = 6.0  #: W5
    lock_rate: float = 20.0
    lock_hold_s: float = 0.1
    ramp_pairs: int = 1_000  #: conversations of the ramp
    ramp_steps: tuple[float, ...] = (1_000, 2_000, 4_000, 6_000, 8_000, 10_000)
    step_s: float = 3.0
    refine_steps: int = 2  #: bisection steps after the first failing step
    max_ok_p99_ms: float = 250.0
    min_ack_ratio: float = 0.95
    sender_procs: int = 2
    receiver_procs: int = 2
    drain_timeout_s: float = 20.0
    target_p99_ms: float = 5.0  #: at `rate`
    target_sustained: float = 5_000.0
    target_lock_ratio: float = 1.2  #: W5 lock p99 / W2 p99

    @classmethod
    def smoke(cls) -> ChatConfig:
        return cls(
            pairs=20,
            rate=200.0,
            segment_s=1.0,
            rounds=1,
            warmup_rate=100.0,
            warmup_s=0.5,
            lock_s=1.5,
            lock_rate=10.0,
            ramp_pairs=20,
            ramp_steps=(300.0,),
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
        gateways: tuple[ServerProcess, ServerProcess],
        floor: ServerProcess | None,
        generic: tuple[ServerProcess, ServerProcess] | None,
        profiler: Any = None,
    ) -> None:
        self.bench = bench
        self.cfg = cfg
        self.gw_a, self.gw_b = gateways
        self.floor = floor
        self.generic = generic
        self.profiler = profiler
        self.pool = WorkerPool()
        self.connected: dict[str, int] = defaultdict(int)
        self.targets: dict[str, dict[str, Any]] = {
            "service": {"a": self.gw_a.port, "b": self.gw_b.port, "sub": MSGPACK}
        }
        if generic is not None and "generic" in cfg.baselines:
            self.targets["generic"] = {"a": generic[0].port, "b": generic[1].port, "sub": JSON}
        if floor is not None and "floor" in cfg.baselines:
            self.targets["floor"] = {"a": floor.port, "b": floor.port, "sub": JSON}
        self._latency: dict[str, list[int]] = {}
        self._lock_latency: dict[str, dict[str, list[int]]] = {}

    def _servers(self, target: str) -> dict[str, Callable[[], list[int]]]:
        if target == "service":
            return self.bench.server_groups([self.gw_a, self.gw_b])
        if target == "generic":
            assert self.generic is not None
            groups = {gw.name: _pids(gw.pid) for gw in self.generic}
            groups["redis"] = _pids(self.bench.redis.pid)
            return groups
        assert self.floor is not None
        return {self.floor.name: _pids(self.floor.pid)}

    def _connect(self, target: str, hi: int) -> None:
        lo = self.connected[target]
        if hi <= lo:
            return
        started = time.monotonic()
        self.pool.call("receiver", "connect", (target, lo, hi))
        self.pool.call("sender", "connect", (target, lo, hi))
        self.connected[target] = hi
        log(f"chat: {target} pairs {lo}..{hi - 1} connected in {time.monotonic() - started:.1f}s")

    def _run(
        self,
        tag: str,
        target: str,
        rate: float,
        duration: float,
        active: int,
        **extra: Any,
    ) -> dict[str, Any]:
        """One open-loop step on every sender process; the merged measurements, the CPU of the
        target's servers and of the clients, and the gateway's metrics over the step and its
        drain."""
        groups = self._servers(target)
        groups["client_senders"] = lambda: self.pool.pids("sender")
        groups["client_receivers"] = lambda: self.pool.pids("receiver")
        service = target == "service"
        metrics_before = _gateway_metrics(self.gw_a) if service else {}
        phase = Phase(groups)
        start_at = time.monotonic_ns() + int(0.3 * NS)
        spec = {
            "tag": tag,
            "target": target,
            "rate": rate,
            "duration": duration,
            "active": active,
            "start_at_ns": start_at,
            "drain_s": self.cfg.drain_timeout_s,
            **extra,
        }
        profile = (
            self.profiler.start(tag, [self.gw_a, self.gw_b]) if service and self.profiler else None
        )
        with PgDiagnostics(self.bench.pg.admin_dsn) as diagnostics:
            parts = self.pool.call(
                "sender", "run", spec, timeout=duration + self.cfg.drain_timeout_s + 60
            )
        if profile is not None:
            profile.stop()
        usage = phase.end()
        cpu = usage["cpu_seconds"]
        wall = usage["wall_s"]
        ok_ns = [x for p in parts for x in p["ok_ns"]]
        ack_at = [x for p in parts for x in p["ack_at"]]
        sent = sum(p["sent"] for p in parts)
        errors: dict[str, int] = defaultdict(int)
        for p in parts:
            for code, count in p["errors"].items():
                errors[code] += count
        window_end = start_at + int((duration + self.cfg.max_ok_p99_ms / 1e3) * NS)
        acked_in_window = sum(1 for t in ack_at if t <= window_end)
        # unacknowledged sends count as infinitely late (refusals of W5 are not sends)
        refused = sum(errors.values())
        late = sorted([x / 1e6 for x in ok_ns] + [math.inf] * (sent - len(ok_ns) - refused))
        p99 = common.percentile(late, 99) if late else math.nan
        server_cpu = sum(v for k, v in cpu.items() if not k.startswith("client_"))
        acked = len(ok_ns)
        result: dict[str, Any] = {
            "tag": tag,
            "target": target,
            "offered_rate": rate,
            "duration_s": duration,
            "conversations": active,
            "sent": sent,
            "acked": acked,
            "unacked": sum(p["unacked"] for p in parts),
            "errors": dict(errors),
            "acked_rate": round(acked_in_window / duration, 1),
            "ok_p99_ms_with_unacked": None if math.isinf(p99) else round(p99, 2),
            "ok_latency_ms": summarize(ok_ns, 1e-6),
            "schedule_lag_ms": summarize([x for p in parts for x in p["lag_ns"]], 1e-6),
            **usage,
            "server_cpu_seconds": round(server_cpu, 3),
            "server_cpu_ms_per_message": round(server_cpu / acked * 1e3, 4) if acked else None,
            "server_cores_busy": round(server_cpu / wall, 2),
            "client_cores_busy": round(
                sum(v for k, v in cpu.items() if k.startswith("client_")) / wall, 2
            ),
            "_ok_ns": ok_ns,
            "_outcomes": [o for p in parts for o in p["outcomes"]],
        }
        if service:
            pg = diagnostics.result()
            if acked and pg.get("wal_bytes") is not None:
                pg["wal_bytes_per_message"] = round(pg["wal_bytes"] / acked)
            result["postgres"] = pg
            result["gateway_a"] = _metrics_delta(metrics_before, _gateway_metrics(self.gw_a))
        if profile is not None:
            result["profile"] = profile.summary()
        return result

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
        settings = {
            "targets": self.targets,
            "secret": self.bench.secret,
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

    def _phases(self) -> dict[str, Any]:
        cfg = self.cfg
        names = list(self.targets)
        for target in names:
            self._connect(target, cfg.pairs)
            self._run(f"w-{target}", target, cfg.warmup_rate, cfg.warmup_s, cfg.pairs)
        self._wait_delivered()
        segments: list[dict[str, Any]] = []
        for r in range(cfg.rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for target in order:
                log(f"chat: W2 {target}, {cfg.rate:.0f} msg/s, {cfg.segment_s:g}s (round {r + 1})")
                segments.append(
                    self._run(f"p1-{target}-{r}", target, cfg.rate, cfg.segment_s, cfg.pairs)
                )
                self._wait_delivered()
        self.pool.call("sender", "connect_principal", only=0)
        log(f"chat: W5 locks at {cfg.lock_rate:g}/s under {cfg.rate:.0f} msg/s for {cfg.lock_s:g}s")
        locks = {"rate": cfg.lock_rate, "hold_s": cfg.lock_hold_s}
        w5 = self._run(
            "w5", "service", cfg.rate, cfg.lock_s, cfg.pairs, locks=locks, log_sends=True
        )
        self._wait_delivered()
        ramp = self._ramp()
        self._wait_delivered()
        correctness, lock_records = self._check()
        return self._report(segments, w5, lock_records, ramp, correctness)

    def _ramp(self) -> dict[str, Any]:
        cfg = self.cfg
        self._connect("service", cfg.ramp_pairs)
        if cfg.ramp_pairs > cfg.pairs:
            # every conversation of the ramp sends once or twice before the measured steps
            self._run("rw", "service", cfg.warmup_rate, cfg.warmup_s, cfg.ramp_pairs)
            self._wait_delivered()
        steps: list[dict[str, Any]] = []
        passed: dict[str, Any] | None = None
        failed: dict[str, Any] | None = None
        counter = itertools.count(1)

        def step(rate: float) -> bool:
            tag = f"r{next(counter)}"
            log(f"chat: ramp step {rate:.0f} msg/s for {cfg.step_s:g}s")
            result = self._run(tag, "service", rate, cfg.step_s, cfg.ramp_pairs)
            result["passed"] = self._passes(result)
            steps.append(result)
            log(
                f"chat:   acked {result['acked_rate']:.0f}/s, ok p99 "
                f"{result['ok_p99_ms_with_unacked']} ms, server CPU "
                f"{result['server_cores_busy']} cores -> {'pass' if result['passed'] else 'FAIL'}"
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
        for s in steps:
            s.pop("_ok_ns", None)
            s.pop("_outcomes", None)
        sustained = passed["acked_rate"] if passed else 0.0
        return {
            "steps": steps,
            "sustained_max_per_s": sustained,
            "sustained_step": passed["offered_rate"] if passed else None,
            "limited_by_ramp_top": bool(passed)
            and passed is steps[-1]
            and passed["offered_rate"] >= max(cfg.ramp_steps),
            "server_cpu_ms_per_message_at_max": passed["server_cpu_ms_per_message"]
            if passed
            else None,
        }

    def _check(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
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
        self._lock_latency = {
            side: {
                tag: [x for part in parts for x in part["lock_latency_ns"].get(tag, [])]
                for tag in {t for part in parts for t in part["lock_latency_ns"]}
            }
            for side, parts in (("parent", receivers), ("teacher", senders))
        }
        correctness = {
            "acked": acked_total,
            "delivered": sum(len(v) for v in received.values()),
            "lost": lost,
            "duplicated": duplicated,
            "reordered": reordered,
            "acked_seq_reused": acked_total - sum(len(set(v)) for v in acked.values()),
            "delivered_unacked": unacked_delivered,
            "gaps": sum(r["gaps"] for r in receivers),
            "receiver_non_increasing_events": sum(r["non_increasing"] for r in receivers),
            "messages_seen_while_locked": sum(r["messages_while_locked"] for r in receivers),
            "unexpected_closes": dict(closes),
            "other_frames": dict(others),
        }
        return correctness, [rec for part in senders for rec in part["locks"]]

    def _merge(self, target: str, segments: list[dict[str, Any]]) -> dict[str, Any]:
        mine = [s for s in segments if s["target"] == target]
        e2e = [x for s in mine for x in self._latency.get(s["tag"], [])]
        ok_ns = [x for s in mine for x in s["_ok_ns"]]
        acked = sum(s["acked"] for s in mine)
        duration = sum(s["duration_s"] for s in mine)
        server_cpu = sum(s["server_cpu_seconds"] for s in mine)
        wall = sum(s["wall_s"] for s in mine)
        return {
            "segments": len(mine),
            "offered_rate": mine[0]["offered_rate"] if mine else None,
            "duration_s": duration,
            "sent": sum(s["sent"] for s in mine),
            "acked": acked,
            "unacked": sum(s["unacked"] for s in mine),
            "errors": sum(sum(s["errors"].values()) for s in mine),
            "committed_per_s": round(acked / duration, 1) if duration else None,
            "end_to_end_ms": summarize(e2e, 1e-6, 3),
            "end_to_end_cdf_ms": common.cdf(e2e, 1e-6),
            "ok_latency_ms": summarize(ok_ns, 1e-6, 3),
            "ok_latency_cdf_ms": common.cdf(ok_ns, 1e-6),
            "server_cpu_ms_per_message": round(server_cpu / acked * 1e3, 4) if acked else None,
            "server_cores_busy": round(server_cpu / wall, 2) if wall else None,
            "client_cores_busy": _mean(s["client_cores_busy"] for s in mine),
            "machine_cores_busy": _mean(s["machine_cores_busy"] for s in mine),
            "other_cores_busy": _mean(s["other_cores_busy"] for s in mine),
            "cpu_seconds": _sum_dicts(s["cpu_seconds"] for s in mine),
        }

    def _locks_report(
        self, w5: dict[str, Any], records: list[dict[str, Any]], w2_p99: float
    ) -> dict[str, Any]:
        outcomes = w5.pop("_outcomes")
        w5.pop("_ok_ns", None)
        after_ack = inside = 0
        by_conv: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for rec in records:
            by_conv[rec["conv"]].append(rec)
        for conv, written, seq, code in outcomes:
            if code:
                continue
            for rec in by_conv.get(conv, ()):
                if rec["lock_ok_at"] < written < rec["unlock_written"]:
                    after_ack += 1
                if (
                    rec["lock_seq"]
                    and rec["unlock_seq"]
                    and rec["lock_seq"] < seq < rec["unlock_seq"]
                ):
                    inside += 1
        parent = self._lock_latency.get("parent", {}).get("w5", [])
        teacher = self._lock_latency.get("teacher", {}).get("w5", [])
        both = parent + teacher
        prop = summarize(both, 1e-6, 3)
        p99 = prop.get("p99", math.nan)
        same_phase = summarize(self._latency.get("w5", []), 1e-6, 3)
        errors = dict(w5["errors"])
        refused_locked = errors.pop("locked", 0)
        return {
            "locks": len(records),
            "lock_errors": sum(1 for r in records if r["lock_error"] or r["unlock_error"]),
            "propagation_ms": prop,
            "propagation_cdf_ms": common.cdf(both, 1e-6),
            "propagation_to_parent_ms": summarize(parent, 1e-6, 3),
            "propagation_to_teacher_ms": summarize(teacher, 1e-6, 3),
            "lock_ok_ms": summarize([r["lock_ok_at"] - r["lock_written"] for r in records], 1e-6),
            "sends_refused_locked": refused_locked,
            "other_send_errors": errors,
            "accepted_after_lock_ack": after_ack,
            "accepted_with_seq_inside_lock": inside,
            # the messages sent meanwhile: the same load, the same moment
            "end_to_end_ms": same_phase,
            "ratio_to_same_phase_message_p99": _ratio(p99, same_phase.get("p99")),
            "load": {
                k: w5[k]
                for k in (
                    "offered_rate",
                    "acked",
                    "machine_cores_busy",
                    "other_cores_busy",
                    "server_cores_busy",
                )
            },
            "w2_p99_ms": w2_p99,
            "target_ratio": self.cfg.target_lock_ratio,
            "ratio_to_w2_p99": round(p99 / w2_p99, 2) if w2_p99 else None,
        }

    def _report(
        self,
        segments: list[dict[str, Any]],
        w5: dict[str, Any],
        lock_records: list[dict[str, Any]],
        ramp: dict[str, Any],
        correctness: dict[str, Any],
    ) -> dict[str, Any]:
        cfg = self.cfg
        fixed = {target: self._merge(target, segments) for target in self.targets}
        service = fixed["service"]
        p99 = service["end_to_end_ms"].get("p99", math.nan)
        locks = self._locks_report(w5, lock_records, p99)
        for s in segments:
            s.pop("_ok_ns", None)
            s.pop("_outcomes", None)
        correctness["errors_phase1"] = sum(f["errors"] for f in fixed.values())
        correctness["unacked_phase1"] = sum(f["unacked"] for f in fixed.values())
        correctness["errors_ramp"] = sum(sum(s["errors"].values()) for s in ramp["steps"])
        correctness["locks"] = {
            k: locks[k]
            for k in (
                "lock_errors",
                "accepted_after_lock_ack",
                "accepted_with_seq_inside_lock",
                "other_send_errors",
            )
        }
        correctness["ok"] = (
            correctness["lost"] == 0
            and correctness["duplicated"] == 0
            and correctness["reordered"] == 0
            and correctness["acked_seq_reused"] == 0
            and correctness["gaps"] == 0
            and correctness["receiver_non_increasing_events"] == 0
            and correctness["messages_seen_while_locked"] == 0
            and not correctness["unexpected_closes"]
            and correctness["errors_phase1"] == 0
            and correctness["unacked_phase1"] == 0
            and locks["lock_errors"] == 0
            and locks["accepted_after_lock_ack"] == 0
            and locks["accepted_with_seq_inside_lock"] == 0
            and not locks["other_send_errors"]
        )
        sustained = ramp["sustained_max_per_s"]
        ratios = {
            f"p99_vs_{b}": _ratio(p99, fixed[b]["end_to_end_ms"].get("p99"))
            for b in self.targets
            if b != "service"
        }
        ratios.update(
            {
                f"cpu_per_message_vs_{b}": _ratio(
                    service["server_cpu_ms_per_message"], fixed[b]["server_cpu_ms_per_message"]
                )
                for b in self.targets
                if b != "service"
            }
        )
        profiles = {s["tag"]: s.pop("profile") for s in segments if "profile" in s}
        return {
            "w2": {
                "config": asdict(cfg),
                "fixed_rate": fixed,
                "segments": segments,
                "ramp": ramp,
                "ratios": ratios,
                "profiles": profiles,
                "correctness": correctness,
                "targets": {
                    "p99_e2e_ms": cfg.target_p99_ms,
                    "p99_e2e_ratio": _ratio(p99, cfg.target_p99_ms),
                    "sustained_per_s": cfg.target_sustained,
                    "sustained_ratio": round(sustained / cfg.target_sustained, 2),
                },
            },
            "w5": locks,
        }


def _pids(pid: int) -> Callable[[], list[int]]:
    return lambda: [pid]


def _mean(values: Iterable[float]) -> float | None:
    items = list(values)
    return round(sum(items) / len(items), 2) if items else None


def _sum_dicts(dicts: Iterable[dict[str, float]]) -> dict[str, float]:
    total: dict[str, float] = defaultdict(float)
    for d in dicts:
        for k, v in d.items():
            total[k] += v
    return {k: round(v, 3) for k, v in total.items()}


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return None
    return round(a / b, 2)


def run_chat(
    bench: BenchEnv,
    cfg: ChatConfig,
    gateways: tuple[ServerProcess, ServerProcess],
    floor: ServerProcess | None = None,
    generic: tuple[ServerProcess, ServerProcess] | None = None,
    profiler: Any = None,
) -> dict[str, Any]:
    """W2 and W5 on an environment whose roster holds `cfg.users_needed` pairs, on the gateways
    (A, B) and the baselines given."""
    return ChatBench(bench, cfg, gateways, floor, generic, profiler).run()


def print_chat(result: dict[str, Any]) -> None:
    w2 = result["w2"]
    c = w2["correctness"]
    t = w2["targets"]
    cfg = w2["config"]
    print(
        f"\n== W2 chat: {cfg['pairs']} direct conversations, senders on process A, receivers on B"
    )
    for target, f in w2["fixed_rate"].items():
        e2e, ok = f["end_to_end_ms"], f["ok_latency_ms"]
        print(
            f"  {target:>8}: {f['offered_rate']:.0f} msg/s offered, "
            f"{f['committed_per_s']} acked/s; "
            f"end-to-end p50 {e2e.get('p50')} p99 {e2e.get('p99')} max {e2e.get('max')} ms; "
            f"ok p99 {ok.get('p99')} ms; server CPU {f['server_cpu_ms_per_message']} ms/msg; "
            f"machine {f['machine_cores_busy']} cores busy, "
            f"{f['other_cores_busy']} outside the bench"
        )
    print(f"  ratios: {w2['ratios']}")
    ramp = w2["ramp"]
    print(f"  ramp over {cfg['ramp_pairs']} conversations ({cfg['step_s']:g}s steps):")
    for s in ramp["steps"]:
        print(
            f"    {s['offered_rate']:>7.0f}/s offered  {s['acked_rate']:>7.0f}/s acked  "
            f"ok p99 {s['ok_p99_ms_with_unacked'] or 'inf':>8} ms  "
            f"CPU {s['server_cpu_ms_per_message']} ms/msg  server {s['server_cores_busy']} "
            f"client {s['client_cores_busy']} other {s['other_cores_busy']} cores  "
            f"batch {s['gateway_a']['mean_batch_size']}  {'pass' if s['passed'] else 'FAIL'}"
        )
    top = (
        " (the ramp's top step: the real maximum is higher)" if ramp["limited_by_ramp_top"] else ""
    )
    print(f"    sustained maximum: {ramp['sustained_max_per_s']:.0f} committed msg/s{top}")
    print(
        f"  targets: p99 ratio {t['p99_e2e_ratio']} (<= 1 meets); sustained ratio "
        f"{t['sustained_ratio']} (>= 1 meets)"
    )
    w5 = result["w5"]
    prop = w5["propagation_ms"]
    print(
        f"\n== W5 locks: {w5['locks']} locks under {w5['load']['offered_rate']:.0f} msg/s; "
        f"propagation p50 {prop.get('p50')} p99 {prop.get('p99')} ms (W2 p99 {w5['w2_p99_ms']} ms "
        f"-> ratio {w5['ratio_to_w2_p99']}, target <= {w5['target_ratio']}); "
        f"{w5['sends_refused_locked']} sends refused `locked`; accepted after the lock's ok: "
        f"{w5['accepted_after_lock_ack']}"
    )
    print(
        f"Correctness (W2, W5): {c['acked']} acknowledged, {c['delivered']} delivered, "
        f"lost {c['lost']}, duplicated {c['duplicated']}, reordered {c['reordered']}, gaps "
        f"{c['gaps']}, unexpected closes {c['unexpected_closes'] or 0}, send errors "
        f"{c['errors_phase1']} -> {'OK' if c['ok'] else 'FAILED'}"
    )


def main(argv: list[str] | None = None) -> int:
    from loadtests.__main__ import main as bench_main

    parser = argparse.ArgumentParser(prog="python -m loadtests.chat", description=__doc__)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    forwarded = ["--only", "w2,w5"] + (["--smoke"] if args.smoke else [])
    if args.out:
        forwarded += ["--out", args.out]
    return bench_main(forwarded)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
