"""W3 (bulk sends to 10,000 connected parents) and W4 (5,000 parents drop and resume at once).

The same client processes (loadtests/crowdclient.py) connect the audience, 10,000 parents, to
each target: the service (half on each gateway), the generic baseline (half on each of its
processes) and the `websockets` floor (one process). Connecting them is itself timed: the first
half on the floor is "the bare accept time".

W3, bulk sends, alternating floor, generic and service in each round (the order rotating): the
office sends one message to the audience (the service: `POST /api/broadcasts` to the audience's
class groups, answered once 10,000 member rows and the events are committed; the generic build:
`POST /broadcast`, one publish on the school's channel; the floor: `websockets.broadcast` to
every socket). Measured: the time from the request to the last connected recipient's arrival,
the server CPU per delivery. Then one service send to the whole school (100,000 parents
persisted, the same 10,000 connected). Every connected recipient must get each message exactly
once, or the run fails.

W4, reconnection storm: 5,000 of the parents (five class groups, one group conversation each,
its teacher sending into it) drop at once, without a close handshake, and reconnect at once:
first on the floor and on the generic build (no traffic: the bare accept time of 5,000
connections), then on the service while the teachers keep sending, each parent resuming with
the last seq it holds of each conversation. Measured: the time until every parent has its
`ready` and until it holds every event up to what `ready` announced; the database statements
per reconnect (pg_stat_statements). Checked: each parent holds every seq of its class
conversation exactly once and in order, across the drop.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from loadtests import common
from loadtests.common import BenchEnv, Phase, ServerProcess, StatementCounts, log, summarize
from loadtests.crowdclient import NS, Crowd

# statements of a send's commit (the teachers keep sending during the storm), not of a reconnect
APPEND_PATH = (
    "WITH ev AS",  # the notification outbox, planned in the same transaction
    "append_facts",
    "INSERT INTO events",
    "BEGIN",
    "COMMIT",
    "mark_delivered",
    "UPDATE members m SET delivered_at",
)


STALL_S = 3.0


@dataclass(frozen=True)
class CrowdConfig:
    audience_groups: int = 100  #: W3: the parents of class groups 0..N-1 (10,000 of 100,000)
    storm_groups: int = 50  #: W4: the parents of class groups 0..N-1 (5,000)
    rounds: int = 3
    whole_school: bool = True
    procs: int = 4
    connect_concurrency: int = 100  #: handshakes in flight per client process
    storm_concurrency: int = 250
    flow_rate: float = 25.0  #: W4: messages/s into the class conversations during the storm
    baselines: tuple[str, ...] = ("generic", "floor")
    deliver_timeout_s: float = 60.0
    target_last_ratio: float = 1.0
    target_cpu_us: float = 15.0
    target_storm_ratio: float = 2.0
    target_queries: float = 1.0

    @classmethod
    def smoke(cls) -> CrowdConfig:
        return cls(
            audience_groups=4,
            storm_groups=2,
            rounds=1,
            procs=2,
            connect_concurrency=50,
            storm_concurrency=50,
            flow_rate=10.0,
            deliver_timeout_s=20.0,
        )


class CrowdBench:
    def __init__(
        self,
        bench: BenchEnv,
        cfg: CrowdConfig,
        roster: common.Roster,
        gateways: tuple[ServerProcess, ServerProcess],
        floor: ServerProcess | None,
        generic: tuple[ServerProcess, ServerProcess] | None,
        profiler: Any = None,
    ) -> None:
        self.bench = bench
        self.cfg = cfg
        self.roster = roster
        self.gateways = gateways
        self.floor = floor if "floor" in cfg.baselines else None
        self.generic = generic if "generic" in cfg.baselines else None
        self.profiler = profiler
        teachers = len(roster.teachers)
        self.audience = [
            p for j, p in enumerate(roster.parents) if j % teachers < cfg.audience_groups
        ]
        self.storm_users = [
            p for j, p in enumerate(roster.parents) if j % teachers < cfg.storm_groups
        ]
        self.targets: dict[str, list[ServerProcess]] = {"service": list(gateways)}
        if self.generic is not None:
            self.targets["generic"] = list(self.generic)
        if self.floor is not None:
            self.targets["floor"] = [self.floor]
        self.crowd: Crowd | None = None
        self.teacher_proc = 0

    # Helpers --------------------------------------------------------------------------------

    def _spread(
        self, users: list[str], servers: list[ServerProcess]
    ) -> list[list[tuple[str, int]]]:
        """Users over the client processes, alternating between the target's processes."""
        pairs = [(u, servers[i % len(servers)].port) for i, u in enumerate(users)]
        return [pairs[i :: self.cfg.procs] for i in range(self.cfg.procs)]

    def _call(self, command: str, args: list[Any], timeout: float = 300.0) -> list[Any]:
        assert self.crowd is not None
        return self.crowd.call(command, args, timeout, pipes=list(range(self.cfg.procs)))

    def _phase(self, target: str) -> Phase:
        groups: dict[str, Any] = {s.name: _pids(s.pid) for s in self.targets[target]}
        if target == "service":
            groups["postgres"] = self.bench.postgres_pids
        if target in ("service", "generic"):
            groups["redis"] = _pids(self.bench.redis.pid)
        assert self.crowd is not None
        groups["client_crowd"] = self.crowd.pids
        return Phase(groups)

    def _connect(self, target: str, users: list[str]) -> dict[str, Any]:
        phase = self._phase(target)
        started = time.monotonic()
        parts = self._call(
            "connect",
            [
                {"target": target, "users": part, "concurrency": self.cfg.connect_concurrency}
                for part in self._spread(users, self.targets[target])
            ],
        )
        seconds = time.monotonic() - started
        usage = phase.end()
        failed = sum(p["failed"] for p in parts)
        if failed:
            raise RuntimeError(f"{failed} {target} connections failed, e.g. {parts[0]['failures']}")
        server_cpu = _server_cpu(usage["cpu_seconds"], gateways_only=False)
        log(f"crowd: {len(users)} parents connected to {target} in {seconds:.1f}s")
        return {
            "connections": len(users),
            "seconds": round(seconds, 2),
            "per_s": round(len(users) / seconds, 1),
            "server_cpu_ms_per_connect": round(server_cpu / len(users) * 1e3, 3),
            **usage,
        }

    # W3 -------------------------------------------------------------------------------------

    def _send(
        self, target: str, tag: str, audience: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """One bulk send on `target`; returns when every connected recipient has it."""
        body = f"Rappel {tag} : journée pédagogique vendredi."
        phase = self._phase(target)
        profile = None
        if target == "service" and self.profiler is not None:
            profile = self.profiler.start(tag, list(self.gateways))
        t0 = time.monotonic()
        api_s = None
        recipients = len(self.audience)
        if target == "service":
            doc = {
                "school": self.roster.school,
                "audience": audience
                or {"groups": [f"bg-{g:05d}" for g in range(self.cfg.audience_groups)]},
                "body": body,
                "body_en": f"Reminder {tag}: no school on Friday.",
            }
            r = httpx.post(
                f"{self.gateways[0].url}/api/broadcasts",
                json=doc,
                timeout=120,
                headers={"Authorization": f"Bearer {self.bench.token(common.OFFICE_ID)}"},
            )
            api_s = time.monotonic() - t0
            if r.status_code != 202:
                raise RuntimeError(f"broadcast refused: {r.status_code} {r.text[:500]}")
            conv = r.json()["conv"]
            recipients = r.json()["recipients"]
        elif target == "generic":
            conv = tag
            assert self.generic is not None
            r = httpx.post(
                f"{self.generic[0].url}/broadcast", json={"conv": conv, "body": body}, timeout=60
            )
            r.raise_for_status()
        else:
            conv = tag
            assert self.floor is not None
            r = httpx.get(
                f"{self.floor.url}/broadcast", params={"conv": conv, "body": body}, timeout=60
            )
            r.raise_for_status()
        expected = len(self.audience)
        deadline = time.monotonic() + self.cfg.deliver_timeout_s
        seen, grew_at = -1, time.monotonic()
        while True:
            parts = self._call("arrivals", [{"target": target, "conv": conv}] * self.cfg.procs)
            received = sum(p["received"] for p in parts)
            now = time.monotonic()
            if received != seen:
                seen, grew_at = received, now
            # a send that stopped arriving for STALL_S lost the rest (a baseline that drops)
            if received >= expected or now > deadline or (received and now - grew_at > STALL_S):
                break
            time.sleep(0.02)
        last = max(p["last"] for p in parts)
        time.sleep(0.3)  # anything late (a duplicate) would show now
        usage = phase.end()
        if profile is not None:
            profile.stop()
        parts = self._call(
            "arrivals", [{"target": target, "conv": conv, "times": True}] * self.cfg.procs
        )
        times = [t - t0 for p in parts for t in p["times"]]
        received = len(times)
        deliveries = max(received, 1)
        result = {
            "target": target,
            "tag": tag,
            "recipients": recipients,
            "connected": expected,
            "received": received,
            "lost": expected - received,
            "duplicates": sum(p["duplicates"] for p in parts),
            "api_answer_ms": round(api_s * 1e3, 1) if api_s is not None else None,
            "last_recipient_ms": round((last - t0) * 1e3, 1),
            "first_recipient_ms": round(min(times, default=math.nan) * 1e3, 1),
            "arrival_cdf_ms": common.cdf(times, 1e3, 1),
            "server_cpu_us_per_delivery": round(
                _server_cpu(usage["cpu_seconds"], gateways_only=False) / deliveries * 1e6, 2
            ),
            "gateway_cpu_us_per_delivery": round(
                _server_cpu(usage["cpu_seconds"], gateways_only=True) / deliveries * 1e6, 2
            ),
            **usage,
        }
        if target == "service" and received:
            # gateway B serves only deliveries (the request and the commit are on A): its CPU
            # per delivery is the fan-out alone
            b_cpu = usage["cpu_seconds"].get(self.gateways[1].name, 0.0)
            result["fanout_only_cpu_us_per_delivery"] = round(b_cpu / (received / 2) * 1e6, 2)
        if profile is not None:
            result["profile"] = profile.summary()
        log(
            f"W3 {target} {tag}: last of {received}/{expected} after "
            f"{result['last_recipient_ms']} ms"
            f" (API {result['api_answer_ms']} ms); {result['gateway_cpu_us_per_delivery']} µs "
            f"gateway CPU per delivery; lost {result['lost']}, duplicated {result['duplicates']}"
        )
        return result

    def w3(self) -> dict[str, Any]:
        names = list(self.targets)
        sends: list[dict[str, Any]] = []
        for r in range(self.cfg.rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            sends += [self._send(target, f"b{r}-{target}") for target in order]
        whole = self._send("service", "school", {"school": True}) if self.cfg.whole_school else None
        per: dict[str, Any] = {}
        for target in names:
            mine = [s for s in sends if s["target"] == target]
            per[target] = {
                "sends": len(mine),
                "last_recipient_ms": summarize([s["last_recipient_ms"] for s in mine], 1, 1),
                "first_recipient_ms": summarize([s["first_recipient_ms"] for s in mine], 1, 1),
                "api_answer_ms": summarize(
                    [s["api_answer_ms"] for s in mine if s["api_answer_ms"] is not None], 1, 1
                ),
                "gateway_cpu_us_per_delivery": summarize(
                    [s["gateway_cpu_us_per_delivery"] for s in mine], 1, 2
                ),
                "fanout_only_cpu_us_per_delivery": summarize(
                    [
                        s["fanout_only_cpu_us_per_delivery"]
                        for s in mine
                        if "fanout_only_cpu_us_per_delivery" in s
                    ],
                    1,
                    2,
                ),
                "server_cpu_us_per_delivery": summarize(
                    [s["server_cpu_us_per_delivery"] for s in mine], 1, 2
                ),
            }
        service_last = per["service"]["last_recipient_ms"].get("p50")
        service_cpu = per["service"]["gateway_cpu_us_per_delivery"].get("p50")
        ratios = {
            f"last_vs_{b}": _ratio(service_last, per[b]["last_recipient_ms"].get("p50"))
            for b in names
            if b != "service"
        }
        ratios["cpu_us_vs_target"] = _ratio(service_cpu, self.cfg.target_cpu_us)
        return {
            "audience": len(self.audience),
            "sends": sends,
            "whole_school": whole,
            "by_target": per,
            "ratios": ratios,
            "targets": {
                "last_vs_generic": self.cfg.target_last_ratio,
                "gateway_cpu_us_per_delivery": self.cfg.target_cpu_us,
            },
            # the service must lose nothing; a baseline that loses is reported, not a failure
            "baseline_losses": {
                t: sum(s["lost"] + s["duplicates"] for s in sends if s["target"] == t)
                for t in names
                if t != "service"
            },
            "ok": all(
                s["lost"] == 0 and s["duplicates"] == 0
                for s in [*sends, *([whole] if whole else [])]
                if s["target"] == "service"
            ),
        }

    # W4 -------------------------------------------------------------------------------------

    def _storm(self, target: str, resume: bool) -> dict[str, Any]:
        phase = self._phase(target)
        statements = (
            StatementCounts(self.bench.pg.admin_dsn).start() if target == "service" else None
        )
        profile = None
        if target == "service" and self.profiler is not None:
            profile = self.profiler.start("storm", list(self.gateways))
        start_at = time.monotonic_ns() + int(0.2 * NS)
        spec = {
            "target": target,
            "users": self.storm_users,
            "start_at_ns": start_at,
            "concurrency": self.cfg.storm_concurrency,
            "resume": resume,
        }
        parts = self._call("storm", [spec] * self.cfg.procs, timeout=300)
        usage = phase.end()
        if profile is not None:
            profile.stop()
        ready = [x for p in parts for x in p["ready_s"]]
        caught = [x for p in parts for x in p["caught_up_s"]]
        dropped = sum(p["dropped"] for p in parts)
        failed = sum(p["failed"] for p in parts)
        result: dict[str, Any] = {
            "target": target,
            "dropped": dropped,
            "back": len(caught),
            "failed": failed,
            "failures": [f for p in parts for f in p["failures"]][:3],
            "all_ready_s": round(max(ready, default=math.nan), 3),
            "all_caught_up_s": round(max(caught, default=math.nan), 3),
            "ready_cdf_s": common.cdf(ready, 1, 3),
            "caught_up_cdf_s": common.cdf(caught, 1, 3),
            "server_cpu_ms_per_reconnect": round(
                _server_cpu(usage["cpu_seconds"], gateways_only=False) / max(dropped, 1) * 1e3, 3
            ),
            **usage,
        }
        rows = statements.delta() if statements is not None else []
        if rows:
            per = max(dropped, 1)
            hello = [r for r in rows if not any(k in r[0] for k in APPEND_PATH)]
            result["statements"] = rows[:15]
            result["statements_per_reconnect"] = round(sum(r[1] for r in hello) / per, 2)
            # (query, calls per reconnect, mean execution ms in PostgreSQL)
            result["statements_per_reconnect_by_query"] = [
                (q, round(n / per, 2), ms) for q, n, ms in hello[:8]
            ]
        result["cpu_ms_per_reconnect_by_process"] = {
            k: round(v / max(dropped, 1) * 1e3, 3) for k, v in usage["cpu_seconds"].items()
        }
        if profile is not None:
            result["profile"] = profile.summary()
        log(
            f"W4 {target}: {len(caught)}/{dropped} back, all ready after "
            f"{result['all_ready_s']} s, "
            f"all caught up after {result['all_caught_up_s']} s; "
            f"{result.get('statements_per_reconnect', '?')} statements per reconnect"
        )
        return result

    def w4(self) -> dict[str, Any]:
        storms: dict[str, Any] = {}
        for target in self.targets:
            if target != "service":
                storms[target] = self._storm(target, resume=False)
        # the class conversations, and their teachers sending all along the service's storm
        teachers = len(self.roster.teachers)
        by_group: dict[int, list[str]] = {}
        for j, parent in enumerate(self.roster.parents):
            if j % teachers < self.cfg.storm_groups:
                by_group.setdefault(j % teachers, []).append(parent)
        assert self.crowd is not None
        teacher_pipe = [self.cfg.procs]
        specs = [
            (common.teacher_id(g), self.gateways[0].port, members)
            for g, members in sorted(by_group.items())
        ]
        convs = self.crowd.call("connect_teachers", [{"teachers": specs}], pipes=teacher_pipe)[0]
        time.sleep(0.5)
        self.crowd.call("start_flow", [{"rate": self.cfg.flow_rate}], pipes=teacher_pipe)
        time.sleep(1.0)
        storms["service"] = self._storm("service", resume=True)
        time.sleep(1.0)
        flow = self.crowd.call("stop_flow", [None], pipes=teacher_pipe, timeout=120)[0]
        finals = {conv: max(seqs) for conv, seqs in flow["acked"].items()}
        time.sleep(0.5)
        checks = self._call("verify", [{"target": "service", "finals": finals}] * self.cfg.procs)
        verified = {
            k: sum(c[k] for c in checks)
            for k in ("checked", "lost", "duplicated", "redelivered_after_resume", "reordered")
        }
        closes: dict[str, int] = {}
        for c in checks:
            for code, n in c["unexpected_closes"].items():
                closes[str(code)] = closes.get(str(code), 0) + n
        service = storms["service"]
        floor = storms.get("floor")
        ratio = _ratio(service["all_caught_up_s"], floor["all_ready_s"]) if floor else None
        ok = (
            all(s["failed"] == 0 for s in storms.values())
            and verified["lost"] == 0
            and verified["duplicated"] == 0
            and verified["reordered"] == 0
            and verified["checked"] == len(self.storm_users)
            and not flow["errors"]
            and not closes
        )
        return {
            "clients": len(self.storm_users),
            "class_conversations": len(convs),
            "flow": {
                "rate": self.cfg.flow_rate,
                "acked": sum(len(v) for v in flow["acked"].values()),
                "errors": flow["errors"],
            },
            "storms": storms,
            "correctness": {**verified, "unexpected_closes": closes},
            "ratio_to_bare_accept": ratio,
            "targets": {
                "ratio_to_bare_accept": self.cfg.target_storm_ratio,
                "statements_per_reconnect": self.cfg.target_queries,
            },
            "ok": ok,
        }

    # Both -----------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        settings = {"secret": self.bench.secret, "school": self.roster.school}
        self.crowd = Crowd(self.cfg.procs + 1, settings)  # the last one holds W4's teachers
        try:
            connects: dict[str, Any] = {}
            order = [t for t in ("floor", "generic", "service") if t in self.targets]
            half = len(self.audience) // 2
            for target in order:
                # the first half at once: the accept time of a crowd, then the rest
                connects[target] = self._connect(target, self.audience[:half])
                self._connect(target, self.audience[half:])
            w3 = self.w3()
            w4 = self.w4()
            w3["connects"] = connects
            return {"config": asdict(self.cfg), "w3": w3, "w4": w4}
        finally:
            with contextlib.suppress(Exception):
                self.crowd.call("close", [None] * (self.cfg.procs + 1), timeout=30)
            self.crowd.stop()


def _pids(pid: int) -> Any:
    return lambda: [pid]


def _server_cpu(cpu: dict[str, float], *, gateways_only: bool) -> float:
    skip = ("client_", "postgres", "redis") if gateways_only else ("client_",)
    return sum(v for k, v in cpu.items() if not k.startswith(skip))


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return None
    return round(a / b, 2)


def run_crowd(
    bench: BenchEnv,
    cfg: CrowdConfig,
    roster: common.Roster,
    gateways: tuple[ServerProcess, ServerProcess],
    floor: ServerProcess | None,
    generic: tuple[ServerProcess, ServerProcess] | None,
    profiler: Any = None,
) -> dict[str, Any]:
    return CrowdBench(bench, cfg, roster, gateways, floor, generic, profiler).run()


def print_crowd(result: dict[str, Any]) -> None:
    w3, w4 = result["w3"], result["w4"]
    print(f"\n== W3 bulk sends to {w3['audience']} connected parents")
    for target, c in w3["connects"].items():
        print(
            f"  connect {c['connections']} to {target}: {c['seconds']} s ({c['per_s']}/s, "
            f"{c['server_cpu_ms_per_connect']} ms server CPU each)"
        )
    for target, per in w3["by_target"].items():
        print(
            f"  {target:>8}: last recipient p50 {per['last_recipient_ms'].get('p50')} ms "
            f"(max {per['last_recipient_ms'].get('max')}); gateway CPU "
            f"{per['gateway_cpu_us_per_delivery'].get('p50')} µs per delivery"
        )
    whole = w3["whole_school"]
    if whole:
        print(
            f"  whole school: {whole['recipients']} persisted, API {whole['api_answer_ms']} ms, "
            "last of "
            f"{whole['connected']} connected after {whole['last_recipient_ms']} ms"
        )
    print(f"  ratios: {w3['ratios']}; all delivered once: {w3['ok']}")
    print(f"\n== W4 reconnection storm: {w4['clients']} clients drop and come back at once")
    for target, s in w4["storms"].items():
        extra = ""
        if "statements_per_reconnect" in s:
            extra = f"; {s['statements_per_reconnect']} database statements per reconnect"
        print(
            f"  {target:>8}: all ready after {s['all_ready_s']} s, all caught up after "
            f"{s['all_caught_up_s']} s, {s['server_cpu_ms_per_reconnect']} ms server CPU "
            f"each{extra}"
        )
    c = w4["correctness"]
    print(
        f"  ratio to the bare accept time: {w4['ratio_to_bare_accept']} (target <= "
        f"{w4['targets']['ratio_to_bare_accept']}); {c['checked']} resumed conversations checked: "
        f"lost {c['lost']}, duplicated {c['duplicated']}, reordered {c['reordered']}; "
        f"redelivered after the resume (at least once) {c['redelivered_after_resume']} -> "
        f"{'OK' if w4['ok'] else 'FAILED'}"
    )
