"""Running the emulator: state that survives restarts, the admin endpoints, the CLI
glue, and ``python -m reconciler.emulator`` stopping cleanly on SIGTERM."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import emulator_fixtures as fx
import httpx
import pytest
from emulator_fixtures import TG, http_client, tg_create, tg_ready_file, tg_status

from reconciler.emulator import EmulatorThread, add_arguments
from reconciler.emulator.server import faults_from_args

# the shared fixtures, bound here (tests/conftest.py belongs to the rest of the suite)
emulator_server, emulator, client = fx.emulator_server, fx.emulator, fx.client


def test_state_survives_a_restart_and_jobs_keep_progressing(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with EmulatorThread(path) as first, http_client(first.url) as http:
        file_id = tg_ready_file(first, http)
        job_id = tg_create(http, file_id)["id"]
        first.advance(10)
        assert tg_status(http, job_id) == "running"
        before = http.get("/_emulator/clock").json()["now"]

    with EmulatorThread(path) as second, http_client(second.url) as http:
        assert http.get("/_emulator/clock").json()["now"] >= before  # the timeline goes on
        state = second.state()
        assert [f["id"] for f in state["files"]] == [file_id]
        assert [(j["id"], j["status"]) for j in state["jobs"]] == [(job_id, "running")]
        assert http.get(f"{TG}/files/{file_id}/content").status_code == 200
        second.advance(3600)
        assert tg_status(http, job_id) == "completed"

    with EmulatorThread(path) as third:
        assert third.state()["jobs"][0]["status"] == "completed"


def test_reset_forgets_every_object(emulator: EmulatorThread, client: httpx.Client) -> None:
    tg_create(client, tg_ready_file(emulator, client))
    assert emulator.state()["jobs"]
    assert client.post("/_emulator/reset").json()["status"] == "ok"
    state = emulator.state()
    assert state["files"] == [] and state["jobs"] == []


def test_clock_endpoints(emulator: EmulatorThread, client: httpx.Client) -> None:
    start = client.get("/_emulator/clock").json()
    assert start["speed"] == 1.0 and start["now_iso"].endswith("Z")
    moved = client.post("/_emulator/clock/advance", json={"seconds": 3600}).json()
    assert moved["now"] - start["now"] >= 3600
    assert client.post("/_emulator/clock/advance", json={"seconds": -1}).status_code == 400
    assert client.post("/_emulator/clock/advance", json={}).status_code == 400
    assert client.post("/_emulator/clock", json={"speed": 50}).json()["speed"] == 50
    assert client.post("/_emulator/clock", json={"speed": 0}).status_code == 400


def test_speed_makes_jobs_finish_in_real_time_over_speed(tmp_path: Path) -> None:
    # ~60 emulated seconds of job at 600x: a tenth of a second
    with (
        EmulatorThread(speed=600, file_processing_seconds=0.5) as emu,
        http_client(emu.url) as http,
    ):
        file_id = fx.tg_upload(http, fx.jsonl(fx.CHAT_LINES))
        time.sleep(0.01)
        job_id = tg_create(http, file_id)["id"]
        deadline = time.monotonic() + 5
        while tg_status(http, job_id) != "completed" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert tg_status(http, job_id) == "completed"


def test_faults_from_cli_options() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        [
            "--port",
            "9999",
            "--speed",
            "10",
            "--rpm",
            "30",
            "--error-rate",
            "0.1",
            "--list-lag",
            "5",
            "--fail-jobs",
            "flaky",
            "--fail-jobs",
            "bad:permanent",
            "--stuck",
            "queued:slow",
            "--seed",
            "4",
            "--faults",
            '{"latency_ms": 20}',
        ]
    )
    assert args.port == 9999 and args.speed == 10
    assert faults_from_args(args) == {
        "latency_ms": 20,
        "rpm": 30,
        "error_rate": 0.1,
        "list_lag_seconds": 5,
        "seed": 4,
        "fail_jobs": [{"match": "flaky", "retryable": True}, {"match": "bad", "retryable": False}],
        "stuck": [{"status": "queued", "match": "slow"}],
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_module_entry_point_serves_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    state = tmp_path / "cli.db"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reconciler.emulator",
            "--port",
            str(port),
            "--state",
            str(state),
            "--speed",
            "5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/").json() == {"status": "ok"}:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the emulator did not come up"
            time.sleep(0.05)
        with http_client(f"http://127.0.0.1:{port}") as http:
            assert http.get(f"{TG}/fine-tunes").json() == {"data": []}
            assert http.get("/_emulator/clock").json()["speed"] == 5
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert state.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("port", ["99999", "-1", "65536"])
def test_a_port_out_of_range_is_one_line_and_exit_1(
    port: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from reconciler.cli import main

    state = tmp_path / "never.db"
    assert main(["emulator", "--port", port, "--state", str(state)]) == 1
    err = capsys.readouterr().err
    assert err == f"error: --port must be 0..65535 (got {port})\n"
    assert not state.exists()


def test_a_port_in_use_is_one_line_naming_it_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from reconciler.cli import main

    state = tmp_path / "never.db"
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert main(["emulator", "--port", str(port), "--state", str(state)]) == 1
    err = capsys.readouterr().err
    assert err == f"error: port {port} on 127.0.0.1 is already in use\n"
    assert not state.exists()  # refused before anything was built


@pytest.mark.slow
def test_port_0_announces_the_port_it_really_bound() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "emulator", "--port", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stderr is not None
        lines = [proc.stderr.readline() for _ in range(4)]
        head = lines[0]
        assert head.startswith("provider emulator on http://127.0.0.1:"), lines
        port = int(head.split("http://127.0.0.1:", 1)[1].split(" ", 1)[0])
        assert port != 0
        assert lines[1].strip() == f"TOGETHER_BASE_URL=http://127.0.0.1:{port}/together/v1"
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/").json() == {"status": "ok"}:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "did not come up"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
