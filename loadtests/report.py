"""Charts (one PNG per workload) and a Markdown summary from a result file's contents.

    python -m loadtests.report RESULT.json [--out DIR]

`write_report(result, folder)` draws w0.png ... w5.png for the workloads the run measured and
writes summary.md: every target with its measured figure and ratio, the machine, the load
outside the bench at the time, correctness, and where the gateways' time went (py-spy).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

COLORS = {"service": "#c0392b", "generic": "#2980b9", "floor": "#7f8c8d", "echo": "#2980b9"}


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _cdf_line(ax: Any, cdf: dict[str, list[float]], label: str, color: str) -> None:
    if cdf.get("v"):
        ax.plot(cdf["v"], cdf["q"], label=label, color=color, drawstyle="steps-post")


def _g(d: dict[str, Any] | None, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def chart_w0(r: dict[str, Any], plt: Any, path: Path) -> None:
    w0 = r["w0"]
    names = ["PostgreSQL\ncommit", "PostgreSQL\nSELECT 1", "Redis\nPUBLISH", "websockets\necho"]
    stats = [
        w0["postgres"]["single_row_commit_ms"],
        w0["postgres"]["select_1_round_trip_ms"],
        w0["redis"]["publish_round_trip_ms"],
        w0["floor_echo"]["round_trip_ms"],
    ]
    fig, ax = plt.subplots(figsize=(7, 4))
    xs = range(len(names))
    ax.bar(
        [x - 0.2 for x in xs], [s.get("p50", 0) for s in stats], 0.4, label="p50", color="#7f8c8d"
    )
    ax.bar(
        [x + 0.2 for x in xs], [s.get("p99", 0) for s in stats], 0.4, label="p99", color="#34495e"
    )
    ax.set_xticks(list(xs), names)
    ax.set_ylabel("ms")
    ax.set_title("W0 calibration: the machine's floor (no service code)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def chart_w1(r: dict[str, Any], plt: Any, path: Path) -> None:
    c = r["w1"]["comparison"][-1]
    fig, ax = plt.subplots(figsize=(6, 4))
    names = ["gateway", "uvicorn +\nStarlette echo", "websockets\nfloor"]
    values = [c["gateway_kib"], c["echo_kib"], c["floor_kib"]]
    ax.bar(names, values, color=[COLORS["service"], COLORS["generic"], COLORS["floor"]])
    ax.axhline(
        c["echo_kib"] * c["target_ratio"], ls="--", color="k", lw=1, label="target: 1.1 × echo"
    )
    for i, v in enumerate(values):
        ax.text(i, v, f"{v:.1f}", ha="center", va="bottom")
    ax.set_ylabel("KiB of RSS per idle connection")
    ax.set_title(f"W1 memory per authenticated connection ({c['connections']:,} connections)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def chart_w2(r: dict[str, Any], plt: Any, path: Path) -> None:
    w2 = r["w2"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for target, f in w2["fixed_rate"].items():
        _cdf_line(
            left,
            f["end_to_end_cdf_ms"],
            f"{target} (p99 {f['end_to_end_ms'].get('p99')} ms)",
            COLORS[target],
        )
    left.axvline(w2["targets"]["p99_e2e_ms"], ls="--", color="k", lw=1, label="target p99")
    left.set_xscale("log")
    left.set_xlabel("end-to-end latency, ms (log)")
    left.set_ylabel("percentile")
    left.set_title(f"W2 at {w2['config']['rate']:.0f} msg/s: latency distribution")
    left.legend(fontsize=8)
    steps = sorted(w2["ramp"]["steps"], key=lambda s: s["offered_rate"])
    offered = [s["offered_rate"] for s in steps]
    right.plot(
        offered,
        [s["acked_rate"] for s in steps],
        "o-",
        color=COLORS["service"],
        label="acked msg/s",
    )
    right.plot(offered, offered, ":", color="grey", label="offered")
    right.axhline(w2["targets"]["sustained_per_s"], ls="--", color="k", lw=1, label="target")
    right.set_xlabel("offered msg/s")
    right.set_ylabel("acknowledged (committed) msg/s")
    twin = right.twinx()
    twin.plot(
        offered,
        [s["ok_p99_ms_with_unacked"] or math.nan for s in steps],
        "s--",
        color="#8e44ad",
        label="ok p99 ms",
    )
    twin.axhline(w2["config"]["max_ok_p99_ms"], ls=":", color="#8e44ad", lw=1)
    twin.set_yscale("log")
    twin.set_ylabel("send-to-ok p99, ms (log)")
    right.set_title("W2 ramp: sustained maximum")
    right.legend(loc="upper left", fontsize=8)
    twin.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def chart_w3(r: dict[str, Any], plt: Any, path: Path) -> None:
    w3 = r["w3"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    last_by_target: dict[str, dict[str, Any]] = {}
    for send in w3["sends"]:
        last_by_target[send["target"]] = send
    for target, send in last_by_target.items():
        _cdf_line(
            left,
            send["arrival_cdf_ms"],
            f"{target} (last {send['last_recipient_ms']} ms)",
            COLORS[target],
        )
    whole = w3.get("whole_school")
    if whole:
        _cdf_line(
            left,
            whole["arrival_cdf_ms"],
            f"service, whole school ({whole['recipients']:,} persisted)",
            "#e67e22",
        )
    left.set_xlabel("ms since the request")
    left.set_ylabel("percent of the connected recipients reached")
    left.set_title(f"W3 bulk send to {w3['audience']:,} connected: arrivals")
    left.legend(fontsize=8)
    names = list(w3["by_target"])
    cpu = [w3["by_target"][t]["gateway_cpu_us_per_delivery"].get("p50", 0) for t in names]
    right.bar(names, cpu, color=[COLORS[t] for t in names])
    right.axhline(
        w3["targets"]["gateway_cpu_us_per_delivery"],
        ls="--",
        color="k",
        lw=1,
        label="target (service)",
    )
    for i, v in enumerate(cpu):
        right.text(i, v, f"{v:.1f}", ha="center", va="bottom")
    right.set_ylabel("server process CPU µs per delivery")
    right.set_title("W3 CPU per delivery (median of the sends)")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def chart_w4(r: dict[str, Any], plt: Any, path: Path) -> None:
    w4 = r["w4"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for target, storm in w4["storms"].items():
        label = f"{target}: all back in {storm['all_caught_up_s']} s"
        _cdf_line(ax, storm["caught_up_cdf_s"], label, COLORS[target])
    ax.set_xlabel("seconds since the drop")
    ax.set_ylabel("percent of clients resumed (caught up)")
    ax.set_title(f"W4 reconnection storm: {w4['clients']:,} clients at once")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def chart_w5(r: dict[str, Any], plt: Any, path: Path) -> None:
    w5 = r["w5"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    _cdf_line(
        ax,
        w5["propagation_cdf_ms"],
        f"lock propagation (p99 {w5['propagation_ms'].get('p99')} ms)",
        "#8e44ad",
    )
    service = _g(r, "w2", "fixed_rate", "service")
    if service:
        _cdf_line(
            ax,
            service["end_to_end_cdf_ms"],
            f"W2 message end-to-end (p99 {service['end_to_end_ms'].get('p99')} ms)",
            COLORS["service"],
        )
    if w5.get("w2_p99_ms"):
        ax.axvline(
            w5["w2_p99_ms"] * w5["target_ratio"],
            ls="--",
            color="k",
            lw=1,
            label="target: 1.2 × W2 p99",
        )
    ax.set_xscale("log")
    ax.set_xlabel("ms (log)")
    ax.set_ylabel("percentile")
    ax.set_title(f"W5 locks under {w5['load']['offered_rate']:.0f} msg/s")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


CHARTS: dict[str, Callable[[dict[str, Any], Any, Path], None]] = {
    "w0": chart_w0,
    "w1": chart_w1,
    "w2": chart_w2,
    "w3": chart_w3,
    "w4": chart_w4,
    "w5": chart_w5,
}


def _verdict(ok: bool | None) -> str:
    return "—" if ok is None else ("met" if ok else "**missed**")


def _targets(r: dict[str, Any]) -> list[tuple[str, str, str, str, bool | None]]:
    """(workload, target, measured, ratio, met)."""
    rows: list[tuple[str, str, str, str, bool | None]] = []
    if "w1" in r:
        c = r["w1"]["comparison"][-1]
        rows.append(
            (
                "W1",
                "≤ 1.1 × bare uvicorn + Starlette per connection",
                f"{c['gateway_kib']} vs {c['echo_kib']} KiB",
                f"{c['ratio']}×",
                c["ratio"] is not None and c["ratio"] <= 1.1,
            )
        )
    if "w2" in r:
        w2 = r["w2"]
        p99 = w2["fixed_rate"]["service"]["end_to_end_ms"].get("p99")
        t = w2["targets"]
        rows.append(
            (
                "W2",
                "p99 ≤ 5 ms at 1,000 msg/s",
                f"{p99} ms",
                f"{t['p99_e2e_ratio']}×",
                t["p99_e2e_ratio"] is not None and t["p99_e2e_ratio"] <= 1,
            )
        )
        rows.append(
            (
                "W2",
                "≥ 5,000 committed msg/s",
                f"{w2['ramp']['sustained_max_per_s']:.0f}/s",
                f"{t['sustained_ratio']}×",
                t["sustained_ratio"] >= 1,
            )
        )
    if "w3" in r:
        w3 = r["w3"]
        last = w3["by_target"]["service"]["last_recipient_ms"].get("p50")
        gen = _g(w3, "by_target", "generic", "last_recipient_ms", "p50")
        ratio = w3["ratios"].get("last_vs_generic")
        rows.append(
            (
                "W3",
                "last of 10,000 ≤ 1.0 × Starlette + broadcaster",
                f"{last} vs {gen} ms",
                f"{ratio}×",
                ratio is not None and ratio <= 1.0,
            )
        )
        cpu = w3["by_target"]["service"]["gateway_cpu_us_per_delivery"].get("p50")
        rows.append(
            (
                "W3",
                "≤ 15 µs gateway CPU per delivery",
                f"{cpu} µs",
                f"{w3['ratios'].get('cpu_us_vs_target')}×",
                cpu is not None and cpu <= 15,
            )
        )
    if "w4" in r:
        w4 = r["w4"]
        s = w4["storms"]["service"]
        floor = _g(w4, "storms", "floor", "all_ready_s")
        ratio = w4["ratio_to_bare_accept"]
        rows.append(
            (
                "W4",
                "all resumed gap-free ≤ 2 × bare accept",
                f"{s['all_caught_up_s']} vs {floor} s",
                f"{ratio}×",
                ratio is not None and ratio <= 2 and w4["ok"],
            )
        )
        q = s.get("statements_per_reconnect")
        rows.append(
            (
                "W4",
                "≤ 1 database query per reconnect",
                f"{q}",
                f"{q}×" if q is not None else "—",
                None if q is None else q <= 1,
            )
        )
    if "w5" in r:
        w5 = r["w5"]
        ratio = w5["ratio_to_w2_p99"]
        rows.append(
            (
                "W5",
                "lock p99 ≤ 1.2 × W2 p99",
                f"{w5['propagation_ms'].get('p99')} vs {w5['w2_p99_ms']} ms",
                f"{ratio}×",
                ratio is not None and ratio <= 1.2,
            )
        )
        rows.append(
            (
                "W5",
                "no message accepted after a lock's ok",
                f"{w5['accepted_after_lock_ack']}",
                "—",
                w5["accepted_after_lock_ack"] == 0,
            )
        )
    return rows


def _profiles(r: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    found: list[tuple[str, dict[str, Any]]] = []
    for tag, prof in (_g(r, "w2", "profiles") or {}).items():
        found.append((f"W2 {tag}", prof))
    for send in _g(r, "w3", "sends") or []:
        if "profile" in send:
            found.append((f"W3 {send['tag']}", send["profile"]))
    storm = _g(r, "w4", "storms", "service")
    if storm and "profile" in storm:
        found.append(("W4 storm", storm["profile"]))
    for name, prof in found:
        for process, summary in prof.items():
            if not summary.get("samples"):
                continue
            inclusive = ", ".join(f"`{k}` {v:.0%}" for k, v in summary["inclusive_service"][:6])
            own = ", ".join(f"`{k}` {v:.0%}" for k, v in summary["self"][:5])
            lines.append(
                f"- **{name}, {process}** ({summary['samples']} samples): inclusive "
                f"{inclusive}; self {own}"
            )
    return lines


def summary_markdown(r: dict[str, Any], result_name: str) -> str:
    m = r.get("machine", {})
    v = r.get("versions", {})
    out = [
        f"# Benchmark summary ({r.get('mode')} run of {r.get('started_at')})",
        "",
        f"Result file `{result_name}`; {r.get('seconds')} s; correctness: "
        f"{'OK' if r.get('ok') else 'FAILED'}.",
        f"Machine: {m.get('logical_cores')} cores ({m.get('cpu_model')}), "
        f"{m.get('memory_gib')} GiB, "
        f"Linux {m.get('kernel')}, 8 KiB fdatasync median {_g(m, 'fdatasync_8k', 'median_us')} µs. "
        f"Python {v.get('python')}, PostgreSQL {v.get('postgres')}, Redis {v.get('redis_server')}.",
        f"Other work on the machine: {r.get('background_cores_busy_before')} cores busy before the "
        "run; per phase in the table below.",
        "",
        *(
            [
                "**Smoke run: correctness only.** Its workloads are tiny; the figures below say "
                "that the harness works, nothing about the targets.",
                "",
            ]
            if r.get("mode") == "smoke"
            else []
        ),
        "| workload | target | measured | ratio | |",
        "|---|---|---|---|---|",
    ]
    for w, target, measured, ratio, met in _targets(r):
        out.append(f"| {w} | {target} | {measured} | {ratio} | {_verdict(met)} |")
    notes = _notes(r)
    if notes:
        out += ["", "Details:", "", *notes]
    out += ["", "Cores busy outside the bench's processes, per phase:", ""]
    for label, value in _outside(r):
        out.append(f"- {label}: {value}")
    prof = _profiles(r)
    if prof:
        out += [
            "",
            "Where the gateways' busy time went (py-spy, share of busy samples):",
            "",
            *prof,
        ]
    return "\n".join(out) + "\n"


def _notes(r: dict[str, Any]) -> list[str]:
    """What explains the verdicts: where the time of a bulk send goes, what a reconnect asks
    the database, the load during W5, what was delivered twice."""
    lines: list[str] = []
    w2 = _g(r, "w2", "fixed_rate")
    if w2:
        for target, f in w2.items():
            lines.append(
                f"- W2 {target}: end-to-end p50/p99 {f['end_to_end_ms'].get('p50')}/"
                f"{f['end_to_end_ms'].get('p99')} ms, send-to-ok p99 "
                f"{f['ok_latency_ms'].get('p99')} ms, server CPU "
                f"{f['server_cpu_ms_per_message']} ms per message "
                f"({', '.join(f'{k} {v:.2f}s' for k, v in f['cpu_seconds'].items())})"
            )
    by = _g(r, "w3", "by_target")
    if by:
        for target, t in by.items():
            api = t.get("api_answer_ms", {}).get("p50")
            lines.append(
                f"- W3 {target}: request → first recipient {_g(t, 'first_recipient_ms', 'p50')} ms"
                f", → last {t['last_recipient_ms'].get('p50')} ms (median of the sends)"
                + (f"; the API answered (committed) after {api} ms" if api else "")
                + (
                    f"; fan-out alone (gateway B) {t['fanout_only_cpu_us_per_delivery'].get('p50')}"
                    " µs CPU per delivery"
                    if t.get("fanout_only_cpu_us_per_delivery", {}).get("count")
                    else ""
                )
            )
        losses = _g(r, "w3", "baseline_losses") or {}
        if any(losses.values()):
            lines.append(f"- W3 baselines lost messages (not a service failure): {losses}")
    storm = _g(r, "w4", "storms", "service")
    if storm:
        for row in storm.get("statements_per_reconnect_by_query", []):
            q, n, ms = (*row, None)[:3]
            if not n:
                continue
            lines.append(f"- W4 per reconnect: {n} × `{q[:90]}…` ({ms} ms in PostgreSQL)")
        cpu = storm.get("cpu_ms_per_reconnect_by_process")
        if cpu:
            lines.append(f"- W4 CPU ms per reconnect, by process (messages flowing): {cpu}")
        again = _g(r, "w4", "correctness", "redelivered_after_resume")
        if again:
            lines.append(
                f"- W4: {again} events were delivered twice to a resumed client (at least once: "
                "clients drop them by (conv, seq); see docs/performance.md for the cause)"
            )
    w5 = r.get("w5")
    if w5:
        lines.append(
            f"- W5: messages sent during the locks had an end-to-end p99 of "
            f"{w5['end_to_end_ms'].get('p99')} ms; lock propagation / that p99 = "
            f"{w5.get('ratio_to_same_phase_message_p99')}; lock send-to-ok p99 "
            f"{w5['lock_ok_ms'].get('p99')} ms; {w5['sends_refused_locked']} sends refused "
            "`locked`"
        )
    return lines


def _outside(r: dict[str, Any]) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for target, f in (_g(r, "w2", "fixed_rate") or {}).items():
        rows.append((f"W2 {target}", f.get("other_cores_busy")))
    if "w5" in r:
        rows.append(("W5", r["w5"]["load"].get("other_cores_busy")))
    for send in _g(r, "w3", "sends") or []:
        rows.append((f"W3 {send['tag']}", send.get("other_cores_busy")))
    for target, storm in (_g(r, "w4", "storms") or {}).items():
        rows.append((f"W4 {target}", storm.get("other_cores_busy")))
    return rows


def write_report(result: dict[str, Any], folder: Path, result_name: str) -> list[Path]:
    plt = _plt()
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in CHARTS.items():
        if name in result:
            path = folder / f"{name}.png"
            draw(result, plt, path)
            written.append(path)
    summary = folder / "summary.md"
    summary.write_text(summary_markdown(result, result_name), encoding="utf-8")
    written.append(summary)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.report", description=__doc__)
    parser.add_argument("result")
    parser.add_argument("--out", help="folder (default: beside the result file)")
    args = parser.parse_args(argv)
    path = Path(args.result)
    result = json.loads(path.read_text(encoding="utf-8"))
    folder = Path(args.out) if args.out else path.with_suffix("")
    for written in write_report(result, folder, path.name):
        print(written)
    return 0


if __name__ == "__main__":
    sys.exit(main())
