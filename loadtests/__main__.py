"""`python -m loadtests [--smoke] [--only chat|idle] [--out DIR]`: run, print, write one JSON.

Exit codes: 0 done (targets are reported, never enforced), 1 a correctness failure (a message
lost, duplicated or reordered, a send refused, a connection that failed or closed), 2 the bench
itself could not run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from loadtests import common
from loadtests.chat import ChatConfig, print_chat, run_chat
from loadtests.common import bench_env, log
from loadtests.idle import IdleConfig, print_idle, run_idle

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _on_signal(signum: int, _frame: object) -> None:
    # unwind through every `finally`, so that servers and client processes are stopped
    raise SystemExit(128 + signum)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m loadtests", description=__doc__)
    parser.add_argument(
        "--smoke", action="store_true", help="tiny workloads, correctness only (~30 s)"
    )
    parser.add_argument("--only", choices=("chat", "idle"), help="run one workload")
    parser.add_argument("--out", help=f"folder for the JSON result (default {RESULTS_DIR})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    signal.signal(signal.SIGTERM, _on_signal)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    run_chat_workload = args.only in (None, "chat")
    run_idle_workload = args.only in (None, "idle")
    chat_cfg = ChatConfig.smoke() if args.smoke else ChatConfig()
    idle_cfg = IdleConfig.smoke() if args.smoke else IdleConfig()
    chat_users = chat_cfg.users_needed if run_chat_workload else 0
    idle_users = idle_cfg.max_connections if run_idle_workload else 0
    started = time.monotonic()
    result: dict[str, Any] = {
        "mode": "smoke" if args.smoke else "full",
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    ok = True
    busy = common.background_load(1.0)
    result["background_cores_busy_before"] = busy
    if busy > 0.2:
        log(
            f"warning: {busy} cores are busy with other work on this machine; every figure "
            "will be pessimistic (see machine_cores_busy / other_cores_busy in the results)"
        )
    try:
        with bench_env() as bench:
            result["machine"] = common.machine_facts(bench)
            result["versions"] = common.versions(bench)
            roster = common.make_roster(max(chat_users, 10), chat_users + idle_users)
            # the chat's gateways import the roster; the idle bench measures a fresh gateway
            if run_chat_workload:
                chat_gateways = bench.start_gateways("gateway-a", "gateway-b")
                importer = chat_gateways[0]
            else:
                importer = bench.start_gateway("gateway-import")
            t0 = time.monotonic()
            common.import_roster(bench, importer, roster)
            log(
                f"roster: {len(roster.teachers)} teachers, {len(roster.parents)} parents imported "
                f"in {time.monotonic() - t0:.1f}s"
            )
            if run_chat_workload:
                result["chat"] = run_chat(bench, chat_cfg, (chat_gateways[0], chat_gateways[1]))
                print_chat(result["chat"])
                ok = ok and result["chat"]["correctness"]["ok"]
            else:
                bench.stop_server(importer)
            if run_idle_workload:
                users = list(roster.parents[chat_users : chat_users + idle_users])
                result["idle"] = run_idle(bench, idle_cfg, users)
                print_idle(result["idle"])
                ok = ok and result["idle"]["ok"]
    except (Exception, SystemExit, KeyboardInterrupt) as exc:
        code = exc.code if isinstance(exc, SystemExit) else None
        log(f"bench failed: {type(exc).__name__}: {exc}")
        if not isinstance(exc, SystemExit | KeyboardInterrupt):
            traceback.print_exc()
        return int(code) if isinstance(code, int) and code else 2
    result["seconds"] = round(time.monotonic() - started, 1)
    result["ok"] = ok
    path = _write(result, args.out, "smoke" if args.smoke else "bench")
    print(f"\nResult: {'OK' if ok else 'CORRECTNESS FAILURE'} in {result['seconds']}s; {path}")
    return 0 if ok else 1


def _write(result: dict[str, Any], out: str | None, stem: str) -> Path:
    folder = Path(out) if out else RESULTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = folder / f"{stem}-{stamp}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    return path


if __name__ == "__main__":
    sys.exit(main())
