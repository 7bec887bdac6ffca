"""`reconciler watch` as a real process against the emulator: picks up new specs,
survives the provider going away, stops cleanly on SIGTERM, refuses a second writer."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import SpecTree
from test_e2e import Cli, Emulator, start_emulator, stop

pytestmark = pytest.mark.slow


def wait_for(predicate, timeout: float = 20.0, step: float = 0.1) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def start_watch(cli: Cli, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler", "watch", "--interval", "0.5", *extra],
        env=cli.env,
        cwd=cli.tree.root.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def remote_ids(cli: Cli) -> dict[str, str | None]:
    from reconciler.ledger import Ledger

    from reconciler.errors import EmptyLedgerError

    if not cli.ledger.exists():
        return {}
    try:
        ledger = Ledger.open(cli.ledger, readonly=True)
    except EmptyLedgerError:
        return {}
    try:
        return {
            n: (r.current.remote_id if r.current else None) for n, r in ledger.records().items()
        }
    finally:
        ledger.close()


def test_watch_creates_new_specs_survives_an_outage_and_stops_on_sigterm(
    tree: SpecTree, tmp_path: Path
) -> None:
    state = tmp_path / "emulator.db"
    emu = start_emulator(state, "--speed", "20")
    cli = Cli(tree, emu)
    daemon = start_watch(cli)
    try:
        tree.spec("w-one")
        assert wait_for(lambda: remote_ids(cli).get("w-one")), "new spec not picked up"
        # the provider goes away, a spec arrives meanwhile, the provider comes back
        emu.proc.kill()
        emu.proc.wait()
        tree.spec("w-two")
        time.sleep(1.5)
        port = int(emu.url.rsplit(":", 1)[1])
        back = start_emulator_on(state, port)
        try:
            assert wait_for(lambda: remote_ids(cli).get("w-two"), timeout=40), "no convergence"
            back.advance(10_000)
            assert wait_for(
                lambda: {j["phase"] for j in cli.status().values()} == {"succeeded"}, timeout=30
            )
        finally:
            t0 = time.monotonic()
            daemon.send_signal(signal.SIGTERM)
            code = daemon.wait(10)
            elapsed = time.monotonic() - t0
            stop(back)
        assert code == 0 and elapsed < 2.0, (code, elapsed)
        conn_ok = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import sqlite3;print(sqlite3.connect({str(cli.ledger)!r}).execute('PRAGMA integrity_check').fetchone()[0])",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert conn_ok == "ok"
        logs = [
            json.loads(line) for line in daemon.stderr.read().splitlines() if line.startswith("{")
        ]  # type: ignore[union-attr]
        events = {e["event"] for e in logs}
        assert {"watching", "specs changed", "stopped"} <= events
        # the outage was seen and reported (a failed refresh or a failed action), not fatal
        assert (
            "provider failing" in events
            or "retrying" in events
            or any(e["event"] == "action" and e.get("ok") is False for e in logs)
        )
    finally:
        if daemon.poll() is None:
            daemon.kill()


def start_emulator_on(state: Path, port: int) -> Emulator:
    """Restart the emulator on the same port and state file (the base URL stays valid)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return _start_on(state, port)
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _start_on(state: Path, port: int) -> Emulator:
    import urllib.request

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reconciler",
            "emulator",
            "--port",
            str(port),
            "--state",
            str(state),
            "--speed",
            "20",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            with urllib.request.urlopen(url + "/", timeout=1):
                return Emulator(url, proc)
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("port busy") from None
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("emulator did not start")


def test_a_second_writer_is_refused_with_the_holder_named(tree: SpecTree, tmp_path: Path) -> None:
    emu = start_emulator(tmp_path / "e.db")
    cli = Cli(tree, emu)
    tree.spec("w-lock")
    daemon = start_watch(cli)
    try:
        assert wait_for(lambda: remote_ids(cli).get("w-lock"))
        proc = cli("apply", "--yes", expect=1)
        line = proc.stderr.strip().splitlines()[-1]
        assert "is locked by watch (pid" in line and f"pid {daemon.pid}" in line and "since" in line
        assert len(emu.together_jobs()) == 1
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(10) == 0
        stop(emu)
