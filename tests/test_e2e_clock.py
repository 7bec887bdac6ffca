"""End to end, issue #11: a step of the wall clock. Absence is measured on the provider's
clock, so a local clock moved forward never makes a second job. The step is made with
libfaketime (Debian's `faketime`); without it the test is skipped, saying so."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from support import SpecTree
from test_e2e import Cli, start_emulator, stop

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not shutil.which("faketime"), reason="needs libfaketime (apt-get install faketime)"
    ),
]

LIBFAKETIME = next((str(p) for p in Path("/usr/lib").glob("*/faketime/libfaketime.so.1")), "")


def faked(cli: Cli, offset_file: Path) -> dict[str, str]:
    """The CLI's environment with its clocks read from ``offset_file`` ("+300s"), each time
    it asks. (libfaketime 0.9.10 cannot keep the monotonic clock true without breaking
    ``time.sleep``, so a step back under a running daemon is tested in process instead:
    ``tests/test_watch.py``.)"""
    return {
        **cli.env,
        "LD_PRELOAD": LIBFAKETIME,
        "FAKETIME_TIMESTAMP_FILE": str(offset_file),
        "FAKETIME_NO_CACHE": "1",
    }


def test_a_clock_step_forward_never_makes_a_second_job(tree: SpecTree, tmp_path: Path) -> None:
    emu = start_emulator(tmp_path / "step.db", "--speed", "1")
    try:
        cli = Cli(tree, emu)
        tree.spec("stepped")
        emu.admin(
            "/_emulator/faults",
            {
                "list_lag_seconds": 30,
                "drop_next": 1,
                "drop_mode": "after",
                "methods": ["POST"],
                "path_contains": "/fine-tunes",
            },
        )
        assert "create outcome unknown" in cli("apply", "--yes", expect=None).stdout
        offset = tmp_path / "offset"
        offset.write_text("+300s\n")  # the local clock jumps five minutes ahead
        real = cli.env
        cli.env = faked(cli, offset)
        for _ in range(3):
            out = cli("apply", "--yes", expect=None).stdout
            assert "created" not in out, out
        cli.env = real
        emu.advance(40)  # past the lag: the job is listed
        assert "adopted" in cli("apply", "--yes").stdout
        jobs = [j for j in emu.together_jobs() if "rc" in str(j.get("suffix"))]
        assert len(jobs) == 1, jobs
    finally:
        stop(emu)


def test_a_clock_step_back_never_stalls_watch(tree: SpecTree, tmp_path: Path) -> None:
    from test_e2e_watch import start_watch, wait_for

    emu = start_emulator(tmp_path / "back.db", "--speed", "1")
    offset = tmp_path / "offset"
    offset.write_text("+0s\n")
    try:
        cli = Cli(tree, emu)
        tree.spec("watched")
        cli("apply", "--yes")  # created with the true clock: the daemon only looks from here
        real = cli.env
        # the daemon's wall clock comes from the file; its monotonic clock stays true (a
        # pass that only looks needs no sleep, which libfaketime 0.9.10 breaks in this mode)
        cli.env = {**faked(cli, offset), "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
        daemon = start_watch(cli)
        cli.env = real
        try:
            time.sleep(1.5)  # a few passes on the true time
            offset.write_text("-3600s\n")  # the wall clock steps back an hour mid-run
            time.sleep(1.0)
            emu.advance(100_000)  # the job finishes at the provider

            def recorded() -> str | None:  # what the daemon wrote, not a fresh look of ours
                doc = json.loads(cli("status", "--json", "--offline").stdout)
                return next((j["phase"] for j in doc["jobs"] if j["name"] == "watched"), None)

            assert wait_for(lambda: recorded() == "succeeded", timeout=20), (
                "watch stopped looking at the job after the clock stepped back"
            )
            assert daemon.poll() is None, daemon.stderr.read() if daemon.stderr else ""
        finally:
            daemon.terminate()
            daemon.wait(10)
    finally:
        stop(emu)
