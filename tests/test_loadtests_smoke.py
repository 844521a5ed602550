"""The benchmark harness keeps working: its smoke mode runs and finds nothing lost."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(240)
def test_bench_smoke_runs_and_loses_nothing(tmp_path: Path) -> None:
    """`python -m loadtests --smoke` exits 0: every message arrives once and in order."""
    result = subprocess.run(
        [sys.executable, "-m", "loadtests", "--smoke", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=230,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "lost 0, duplicated 0, reordered 0" in result.stdout
    assert list(tmp_path.glob("smoke-*.json"))
