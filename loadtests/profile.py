"""Where the gateways spend their time: py-spy attached to them during a phase.

`Profiler.start(tag, servers)` attaches `py-spy record --nonblocking` (the process is never
paused) to each server at a modest rate; `stop()` ends the recording and `summary()` turns the
collapsed stacks into the functions that hold the most samples, inclusive (the function or
anything it calls) and self (the function's own code), as shares of the process's busy samples
(py-spy records no idle thread, but the event loop's wait for I/O is uvloop's native code: it
shows as `asyncio/runners.py:Runner.run` in the self column). py-spy costs a few percent of a
core while it runs: it shows up in the phase's "cores busy outside the bench".
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtests.common import ServerProcess, log

RATE_HZ = 67  # not a divisor of the 1 kHz and 100 Hz periods of the bench's own loops
TOP = 12
# frames every sample goes through: they say nothing about where the time goes
ENTRY_POINTS = ("messaging/__main__.py", "messaging/cli.py", "messaging/gateway/server.py:run")
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def py_spy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


# the checkout this runs from, so that the service's own frames read as messaging/...
_REPO = str(Path(__file__).resolve().parent.parent) + "/"


def _short(path: str) -> str:
    for marker in ("site-packages/", _REPO, "lib/python3"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def _key(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if m is None:
        return frame.strip()
    return f"{_short(m['file'])}:{m['func']}"


@dataclass
class Recording:
    name: str
    path: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGINT)
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for file in sorted(self.path.parent.glob(f"{self.path.name}--*.txt")):
            out[file.stem.split("--", 1)[1]] = summarize_collapsed(file)
        return out


def summarize_collapsed(path: Path) -> dict[str, Any]:
    """Top functions of a `py-spy --format raw` file (one `a;b;c COUNT` line per stack)."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    with contextlib.suppress(OSError):
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = [
                _key(f) for f in stack.split(";") if f and not f.startswith(("process ", "thread "))
            ]
            if not frames:
                continue
            total += count
            own[frames[-1]] += count
            for key in set(frames):
                inclusive[key] += count

    def top(counter: Counter[str], only_service: bool) -> list[tuple[str, float]]:
        rows = [
            (k, round(v / total, 3))
            for k, v in counter.most_common()
            if not only_service
            or (k.startswith(("messaging/", "broadcaster/")) and not k.startswith(ENTRY_POINTS))
        ]
        return rows[:TOP]

    return {
        "samples": total,
        "inclusive_service": top(inclusive, True),
        "self": top(own, False),
    }


class Profiler:
    def __init__(self, folder: Path, rate_hz: int = RATE_HZ) -> None:
        self.folder = folder
        self.rate_hz = rate_hz
        self.program = py_spy()
        if self.program is None:
            log("py-spy not found: no profiles")

    def start(self, tag: str, servers: list[ServerProcess]) -> Recording | None:
        if self.program is None:
            return None
        self.folder.mkdir(parents=True, exist_ok=True)
        rec = Recording(tag, self.folder / tag)
        for server in servers:
            out = self.folder / f"{tag}--{server.name}.txt"
            command = [self.program, "record", "--pid", str(server.pid), "--nonblocking"]
            command += ["--rate", str(self.rate_hz), "--format", "raw", "--output", str(out)]
            rec.procs.append(
                subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        return rec
