"""`python -m loadtests [--smoke] [--only w0,w1,...] [--out DIR] [--no-docs] [--no-profile]`.

Runs W0 (calibration), W1 (idle memory), W2 (chat) and W5 (locks under load), W3 (bulk sends)
and W4 (reconnection storm), each against its same-run baselines; prints the figures; writes one
JSON file, a PNG chart per workload and a Markdown summary (loadtests/report.py). A full run also
copies the charts and the summary to docs/performance/ (unless --no-docs).

Exit codes: 0 done (targets are reported, never enforced), 1 a correctness failure (a message
lost, duplicated or reordered, a send refused, a connection that failed or closed), 2 the bench
itself could not run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from loadtests import common
from loadtests.calibration import print_calibration, run_calibration
from loadtests.chat import ChatConfig, print_chat, run_chat
from loadtests.common import bench_env, log
from loadtests.crowd import CrowdConfig, print_crowd, run_crowd
from loadtests.idle import IdleConfig, print_idle, run_idle

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DOCS_DIR = Path(__file__).resolve().parent.parent / "docs" / "performance"
WORKLOADS = ("w0", "w1", "w2", "w3", "w4", "w5")
ALIASES = {"chat": ("w2", "w5"), "idle": ("w1",), "broadcast": ("w3", "w4")}
PARENTS_FULL = 100_000
PARENTS_SMOKE = 2_000


def _on_signal(signum: int, _frame: object) -> None:
    # unwind through every `finally`, so that servers and client processes are stopped
    raise SystemExit(128 + signum)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m loadtests", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny workloads, correctness only")
    parser.add_argument("--only", help="comma-separated workloads (w0..w5, chat, idle, broadcast)")
    parser.add_argument("--out", help=f"folder for the results (default {RESULTS_DIR})")
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/performance/")
    parser.add_argument("--no-profile", action="store_true", help="no py-spy profiles")
    return parser.parse_args(argv)


def _selected(only: str | None) -> set[str]:
    if not only:
        return set(WORKLOADS)
    chosen: set[str] = set()
    for name in only.split(","):
        name = name.strip().lower()
        if name in ALIASES:
            chosen.update(ALIASES[name])
        elif name in WORKLOADS:
            chosen.add(name)
        else:
            raise SystemExit(f"unknown workload {name!r}: choose among {', '.join(WORKLOADS)}")
    if "w5" in chosen:
        chosen.add("w2")  # the locks run under W2's load, against W2's p99
    if "w4" in chosen:
        chosen.add("w3")  # the storm reuses W3's connected crowd
    return chosen


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    signal.signal(signal.SIGTERM, _on_signal)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    chosen = _selected(args.only)
    smoke = args.smoke
    chat_cfg = ChatConfig.smoke() if smoke else ChatConfig()
    idle_cfg = IdleConfig.smoke() if smoke else IdleConfig()
    crowd_cfg = CrowdConfig.smoke() if smoke else CrowdConfig()
    stem = "smoke" if smoke else "bench"
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = Path(args.out) if args.out else RESULTS_DIR
    charts = folder / f"{stem}-{stamp}"
    started = time.monotonic()
    result: dict[str, Any] = {
        "mode": "smoke" if smoke else "full",
        "workloads": sorted(chosen),
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    busy = common.background_load(1.0)
    result["background_cores_busy_before"] = busy
    if busy > 0.2:
        log(
            f"warning: {busy} cores are busy with other work on this machine; every figure "
            "will be pessimistic (see machine_cores_busy / other_cores_busy in the results)"
        )
    ok = True
    try:
        with bench_env(statement_stats=not smoke) as bench:
            result["machine"] = common.machine_facts(bench)
            result["versions"] = common.versions(bench)
            ok = _workloads(
                bench, chosen, smoke, (chat_cfg, idle_cfg, crowd_cfg), result, args, charts
            )
    except (Exception, SystemExit, KeyboardInterrupt) as exc:
        code = exc.code if isinstance(exc, SystemExit) else None
        log(f"bench failed: {type(exc).__name__}: {exc}")
        if not isinstance(exc, SystemExit | KeyboardInterrupt):
            traceback.print_exc()
        return int(code) if isinstance(code, int) and code else 2
    result["seconds"] = round(time.monotonic() - started, 1)
    result["ok"] = ok
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}-{stamp}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    _draw(result, charts, path, publish=not smoke and not args.no_docs and chosen == set(WORKLOADS))
    print(f"\nResult: {'OK' if ok else 'CORRECTNESS FAILURE'} in {result['seconds']}s; {path}")
    return 0 if ok else 1


def _workloads(
    bench: common.BenchEnv,
    chosen: set[str],
    smoke: bool,
    cfgs: tuple[ChatConfig, IdleConfig, CrowdConfig],
    result: dict[str, Any],
    args: argparse.Namespace,
    charts: Path,
) -> bool:
    chat_cfg, idle_cfg, crowd_cfg = cfgs
    teachers = max(chat_cfg.users_needed, crowd_cfg.audience_groups, 10)
    parents = PARENTS_SMOKE if smoke else PARENTS_FULL
    roster = common.make_roster(teachers, parents)
    needs_service = bool(chosen & {"w2", "w3", "w4", "w5"}) or "w1" in chosen
    gateways, floor, generic = bench.start_all(
        ("gateway-a", "gateway-b") if needs_service else (),
        "floor" if chosen & {"w0", "w2", "w3", "w4"} else None,
        ("generic-a", "generic-b") if chosen & {"w2", "w3"} else (),
    )
    if gateways:  # W0 alone needs no roster
        t0 = time.monotonic()
        common.import_roster(bench, gateways[0], roster, api_docs=None if smoke else 1)
        log(
            f"roster: {len(roster.teachers)} teachers, {len(roster.parents)} parents in "
            f"{time.monotonic() - t0:.1f}s"
        )
    profiler = None
    if not smoke and not args.no_profile:
        from loadtests.profile import Profiler

        profiler = Profiler(charts / "profiles")
    ok = True
    if "w0" in chosen and floor is not None:
        result["w0"] = run_calibration(bench, floor, smoke)
        print_calibration(result["w0"])
    if "w1" in chosen:
        idle_users = [
            p
            for j, p in enumerate(roster.parents)
            if j >= chat_cfg.users_needed and j % teachers >= crowd_cfg.audience_groups
        ][: idle_cfg.max_connections]
        result["w1"] = run_idle(bench, idle_cfg, idle_users)
        print_idle(result["w1"])
        ok = ok and result["w1"]["ok"]
    if len(gateways) < 2:
        _print_correctness(result)
        return ok
    pair = (gateways[0], gateways[1])
    generic_pair = (generic[0], generic[1]) if len(generic) == 2 else None
    if "w2" in chosen:
        chat = run_chat(bench, chat_cfg, pair, floor, generic_pair, profiler)
        result["w2"], result["w5"] = chat["w2"], chat["w5"]
        print_chat(chat)
        ok = ok and chat["w2"]["correctness"]["ok"]
    if "w3" in chosen:
        crowd = run_crowd(bench, crowd_cfg, roster, pair, floor, generic_pair, profiler)
        result["w3"], result["w4"] = crowd["w3"], crowd["w4"]
        result["w3"]["config"] = crowd["config"]
        print_crowd(crowd)
        ok = ok and crowd["w3"]["ok"] and crowd["w4"]["ok"]
    _print_correctness(result)
    return ok


def _print_correctness(result: dict[str, Any]) -> None:
    lost = duplicated = reordered = 0
    if "w2" in result:
        c = result["w2"]["correctness"]
        lost, duplicated, reordered = c["lost"], c["duplicated"], c["reordered"]
    if "w3" in result:
        whole = result["w3"]["whole_school"]
        for send in [*result["w3"]["sends"], *([whole] if whole else [])]:
            if send["target"] != "service":
                continue  # a baseline's losses are reported in W3, not the service's
            lost += send["lost"]
            duplicated += send["duplicates"]
    if "w4" in result:
        c = result["w4"]["correctness"]
        lost += c["lost"]
        duplicated += c["duplicated"]
        reordered += c["reordered"]
    print(f"\nAll workloads: lost {lost}, duplicated {duplicated}, reordered {reordered}")
    if "w4" in result:
        again = result["w4"]["correctness"]["redelivered_after_resume"]
        print(
            f"W4: {again} events delivered again after a resume (at least once: a client drops "
            "them by (conv, seq); see the summary's findings)"
        )


def _draw(result: dict[str, Any], charts: Path, path: Path, *, publish: bool) -> None:
    try:
        from loadtests.report import write_report
    except ImportError as exc:  # matplotlib missing: the figures are in the JSON all the same
        log(f"no charts: {exc}")
        return
    try:
        written = write_report(result, charts, path.name)
        log(f"charts and summary in {charts}")
        if publish:
            DOCS_DIR.mkdir(parents=True, exist_ok=True)
            for file in written:
                shutil.copyfile(file, DOCS_DIR / file.name)
            shutil.copyfile(path, DOCS_DIR / "latest.json")
            log(f"docs/performance/ updated ({len(written)} files)")
    except Exception:
        log("the charts could not be drawn (the results are in the JSON):")
        traceback.print_exc()


if __name__ == "__main__":
    sys.exit(main())
