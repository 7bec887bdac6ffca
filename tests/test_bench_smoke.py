"""`bench/run.py --quick` runs end to end and reports every figure of DESIGN §9.

Timings are not asserted: the quick sizes are too small to mean anything, and a
shared machine makes them noisy. This only keeps the benchmarks runnable.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
FIGURES = (
    "plan_10k",
    "plan_100k",
    "memory",
    "refresh_calls",
    "converge",
    "watch_pickup",
    "replicas",
    "help_time",
)


def test_quick_bench_runs_and_prints_every_figure() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--quick"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = proc.stdout.split("\n\n", 1)[-1]
    for name in FIGURES:
        assert f"{name}:" in table, f"{name} missing from the table:\n{proc.stdout}"
    for verdict_line in (line for line in table.splitlines() if line.startswith(FIGURES)):
        assert verdict_line.split()[-1] in ("PASS", "MISS", "info"), verdict_line
