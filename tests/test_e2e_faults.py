"""The fault suite, bounded: the emulator answers 20 % of requests with a 5xx, drops 2 %
of connections (after the request took effect: the ambiguous case), rate-limits with 429
and adds latency; every job still converges, exactly once, in bounded time."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from support import SpecTree
from test_e2e import Cli, start_emulator, stop

pytestmark = pytest.mark.slow

SOAK = os.environ.get("RECONCILER_SOAK") == "1"
SPECS = 40 if SOAK else 8  # `make soak` runs the long form


def test_every_job_converges_once_despite_faults(tree: SpecTree, tmp_path: Path) -> None:
    emu = start_emulator(
        tmp_path / "faults.db",
        "--speed",
        "40",
        "--error-rate",
        "0.2",
        "--drop-rate",
        "0.02",
        "--rpm",
        "6",  # per emulated minute: 4 a real second at speed 40
        "--latency-ms",
        "15",
        "--spike-rate",
        "0.05",
        "--spike-ms",
        "400",
        "--seed",
        "11",
    )
    try:
        cli = Cli(tree, emu)
        names = [f"f-{i}" for i in range(SPECS)]
        for name in names:
            tree.spec(name, hyperparameters={"epochs": 1})
        started = time.monotonic()
        for _ in range(6):  # a pass that met an outage is simply run again, as CI would
            proc = cli(
                "apply",
                "--yes",
                "--wait",
                "--interval",
                "0.3",
                "--timeout",
                "90",
                "--adopt-grace",
                "2",
                expect=None,
            )
            status = cli.status()
            if all(status[n]["phase"] == "succeeded" for n in names):
                break
        elapsed = time.monotonic() - started
        assert all(status[n]["phase"] == "succeeded" for n in names), proc.stdout[-2000:]
        assert elapsed < (900 if SOAK else 240), elapsed
        emu.admin("/_emulator/faults", {"error_rate": 0, "drop_rate": 0})
        jobs = emu.together_jobs()
        by_tag: dict[str, list[str]] = {}
        for job in jobs:
            by_tag.setdefault(str(job.get("suffix")), []).append(job["id"])
        assert all(len(ids) == 1 for ids in by_tag.values()), by_tag  # no duplicates
        assert len(jobs) == SPECS
        known = {status[n]["remote_id"] for n in names}
        assert {j["id"] for j in jobs} == known  # every remote job known to the ledger
        faults = [r["status"] for r in emu.admin("/_emulator/requests")["data"]]
        assert any(s in (500, 502, 503) for s in faults)  # the faults really happened
        assert any(s == 429 for s in faults)
        cli.assert_no_secret()
        print(
            f"\nfaults: {SPECS} jobs converged in {elapsed:.0f} s through "
            f"{sum(s in (500, 502, 503) for s in faults)} 5xx answers and "
            f"{sum(s == 429 for s in faults)} 429s; 0 duplicates, 0 unknown to the ledger"
        )
    finally:
        stop(emu)
