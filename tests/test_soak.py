"""The crash suite with random kills: `kill -9` an apply again and again while it applies
many specs (and a watch mid-pass), then one final apply; nothing duplicated, nothing
unknown, the ledger intact, every job converged.

`make test` runs a bounded form; `make soak` (RECONCILER_SOAK=1) the long form of the
issue: 50 kills over 20 specs, a watch killed 20 times, and prints the figures.
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest
from test_e2e import start_emulator, stop
from test_e2e_crash import assert_invariants, converge, read_ledger, workspace, write_specs

pytestmark = pytest.mark.slow

SOAK = os.environ.get("RECONCILER_SOAK") == "1"
KILLS, SPECS, WATCH_KILLS = (50, 20, 20) if SOAK else (6, 6, 3)


def _kill_later(proc, rng: random.Random, low: float, high: float) -> bool:  # type: ignore[no-untyped-def]
    """SIGKILL after a random delay; False when the process had already ended."""
    deadline = time.monotonic() + rng.uniform(low, high)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    return True


def test_random_kills_of_apply_and_watch_leave_no_duplicate(tmp_path: Path) -> None:
    rng = random.Random(20261125)
    emu = start_emulator(tmp_path / "soak.db", "--speed", "5", "--latency-ms", "60")
    started = time.monotonic()
    try:
        tree, cli = workspace(tmp_path, emu)
        names = write_specs(tree, "together", SPECS)
        killed = 0
        for i in range(KILLS):
            proc = cli.start(
                "apply", "--yes", "--adopt-grace", "0", log=tmp_path / f"apply-{i}.log"
            )
            killed += _kill_later(proc, rng, 0.05, 1.5)
            view = read_ledger(cli.ledger)
            assert view is None or view.integrity == "ok", f"kill {i}: ledger damaged"
        # a watch killed mid-pass, while specs keep arriving
        for i in range(WATCH_KILLS):
            extra = f"together-soak-watch-{i}"
            tree.spec(extra, model="meta-llama/Meta-Llama-3.1-8B-Instruct-Reference")
            names.append(extra)
            proc = cli.start(
                "watch", "--interval", "0.3", "--adopt-grace", "0", log=tmp_path / f"watch-{i}.log"
            )
            killed += _kill_later(proc, rng, 0.3, 2.0)
        log = converge(cli)
        jobs = assert_invariants(emu, cli, "together", names, log)
        view = read_ledger(cli.ledger)
        assert view is not None and view.integrity == "ok"
        elapsed = time.monotonic() - started
        print(
            f"\nsoak: {KILLS} apply runs and {WATCH_KILLS} watch runs, {killed} killed with SIGKILL;"
            f" {len(names)} specs → {len(jobs)} remote jobs, 0 duplicates, 0 unknown to the ledger,"
            f" integrity ok, converged in {elapsed:.0f} s"
        )
        cli.assert_no_secret()
    finally:
        stop(emu)
