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
    from reconciler.errors import EmptyLedgerError
    from reconciler.ledger import open_ledger

    if not cli.ledger.exists():
        return {}
    try:
        ledger = open_ledger(cli.ledger, readonly=True)
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


def test_watch_serves_metrics_and_notifies_a_webhook_once_per_finished_job(
    tree: SpecTree, tmp_path: Path
) -> None:
    import http.server
    import threading

    received: list[dict[str, object]] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    emu = start_emulator(tmp_path / "e.db", "--speed", "50")
    cli = Cli(tree, emu)
    cli.env["RECONCILER_WEBHOOK_URL"] = f"http://127.0.0.1:{hook.server_port}/services/T000/SECRET"
    tree.spec("w-notify")
    daemon = start_watch(cli, "--metrics-port", "0")
    try:
        assert wait_for(lambda: len(received) >= 1, timeout=40), "no webhook message"
        time.sleep(1.5)  # a few more passes: still one message
        assert len(received) == 1
        message = received[0]
        assert "w-notify" in str(message["text"]) and "blocks" in message
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(10)
        hook.shutdown()
        stop(emu)
    logs = [json.loads(line) for line in daemon.stderr.read().splitlines() if line.startswith("{")]  # type: ignore[union-attr]
    assert "SECRET" not in json.dumps(logs)
    (url,) = [e["url"] for e in logs if e["event"] == "metrics"]
    assert url.endswith("/metrics")


def test_metrics_endpoint_answers_while_watching(tree: SpecTree, tmp_path: Path) -> None:
    import httpx

    emu = start_emulator(tmp_path / "e.db")
    cli = Cli(tree, emu)
    tree.spec("w-metrics")
    daemon = start_watch(cli, "--metrics-port", "0")
    try:
        url = None

        def metrics_url() -> bool:
            nonlocal url
            line = daemon.stderr.readline()  # type: ignore[union-attr]
            if line.startswith("{") and json.loads(line).get("event") == "metrics":
                url = json.loads(line)["url"]
            return url is not None

        assert wait_for(metrics_url, timeout=20)
        assert wait_for(lambda: remote_ids(cli).get("w-metrics"))
        time.sleep(1.2)
        with httpx.Client(trust_env=False) as client:
            body = client.get(url).text  # type: ignore[arg-type]
            health = client.get(url.replace("/metrics", "/healthz"))  # type: ignore[union-attr]
        assert 'reconciler_passes_total{result="ok"}' in body
        assert (
            'reconciler_jobs{phase="queued",provider="together"}' in body
            or "reconciler_jobs{" in body
        )
        assert "reconciler_provider_calls_total" in body
        assert health.status_code == 200
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(10)
        stop(emu)
