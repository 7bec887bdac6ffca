"""End to end: the real `reconciler` CLI as a subprocess against the emulator on loopback.

The user's path from issue #2: plan a new spec (exit 2, a create), apply it, see it in
status, let it finish, plan again (exit 0); change a hyperparameter (a replace naming the
field); remove a running job's spec (a cancel). A sentinel API key must never show up
in any output, plan file or the ledger.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support import SENTINEL_KEY, SpecTree

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Emulator:
    url: str
    proc: subprocess.Popen[bytes]

    def admin(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.url + path,
            data=data,
            method="POST" if data is not None else "GET",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as answer:
            return json.loads(answer.read() or b"null")

    def advance(self, seconds: float) -> None:
        self.admin("/_emulator/clock/advance", {"seconds": seconds})

    def together_jobs(self) -> list[dict[str, Any]]:
        state = self.admin("/_emulator/state")
        return [j for j in state["jobs"] if j["provider"] == "together"]


def start_emulator(state: Path, *extra: str) -> Emulator:
    port = _free_port()
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
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(url + "/", timeout=1) as answer:
                if answer.status == 200:
                    return Emulator(url, proc)
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(
                    f"emulator did not start: {proc.stderr.read() if proc.stderr else b''!r}"
                ) from None
            time.sleep(0.1)


def stop(emulator: Emulator) -> None:
    emulator.proc.terminate()
    assert emulator.proc.wait(10) == 0  # SIGTERM is a clean stop


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    emu = start_emulator(tmp_path_factory.mktemp("emulator") / "emulator.db", "--speed", "1")
    yield emu
    stop(emu)


class Cli:
    """Runs `python -m reconciler` in a workspace, keeping every byte it printed."""

    def __init__(self, tree: SpecTree, emulator: Emulator) -> None:
        self.tree = tree
        self.ledger = tree.root.parent / "state" / "ledger.db"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")},
            "TOGETHER_API_KEY": SENTINEL_KEY,
            "TOGETHER_BASE_URL": emulator.url + "/together/v1",
            "RECONCILER_SPECS": str(tree.root),
            "RECONCILER_LEDGER": str(self.ledger),
            "NO_COLOR": "1",
        }
        self.transcript: list[str] = []

    def __call__(self, *args: str, expect: int | None = 0) -> subprocess.CompletedProcess[str]:
        """Run the CLI; ``expect=None`` accepts any exit code but still no traceback."""
        proc = subprocess.run(
            [sys.executable, "-m", "reconciler", "-v", *args],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.tree.root.parent,
            timeout=120,
            check=False,
        )
        self.transcript += [proc.stdout, proc.stderr]
        assert expect is None or proc.returncode == expect, (
            f"{args}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
        assert "Traceback" not in proc.stderr or expect == 1
        return proc

    def status(self) -> dict[str, dict[str, Any]]:
        doc = json.loads(self("status", "--json").stdout)
        return {job["name"]: job for job in doc["jobs"]}

    def assert_no_secret(self) -> None:
        for text in self.transcript:
            assert SENTINEL_KEY not in text
        for path in self.ledger.parent.rglob("*"):  # the ledger, the spec cache, runs
            if path.is_file():
                assert SENTINEL_KEY.encode() not in path.read_bytes(), path


@pytest.fixture
def cli(tree: SpecTree, emulator: Emulator) -> Cli:
    return Cli(tree, emulator)


def test_plan_apply_status_then_no_changes(cli: Cli, emulator: Emulator, tree: SpecTree) -> None:
    tree.spec("e2e-bot", suffix="e2e")
    plan = json.loads(cli("plan", "--offline", "--json", "--detailed-exitcode", expect=2).stdout)
    assert [(a["name"], a["kind"]) for a in plan["actions"]] == [("e2e-bot", "create")]
    saved = tree.root.parent / "state" / "e2e.plan.json"
    saved.parent.mkdir(exist_ok=True)
    cli("plan", "--out", str(saved))
    cli("apply", "--plan", str(saved))  # the reviewed plan, applied as saved
    job = cli.status()["e2e-bot"]
    assert job["remote_id"].startswith("ft-") and job["phase"] in ("queued", "running")
    remote = [j for j in emulator.together_jobs() if j["id"] == job["remote_id"]]
    assert len(remote) == 1
    emulator.advance(3600)
    cli("apply", "--yes", "--wait", "--interval", "0.2", "--timeout", "60")
    done = cli.status()["e2e-bot"]
    assert done["phase"] == "succeeded" and done["fine_tuned_model"]
    cli("plan", "--detailed-exitcode", expect=0)
    cli.assert_no_secret()


def test_changed_hyperparameter_is_a_replace_naming_the_field(cli: Cli, tree: SpecTree) -> None:
    tree.spec("e2e-replace")
    cli("apply", "--yes")
    tree.spec("e2e-replace", hyperparameters={"epochs": 3, "learning_rate": 2e-5})
    out = cli("plan", "--detailed-exitcode", expect=2).stdout
    assert "-/+ replace" in out
    assert "hyperparameters.learning_rate: 1e-05 → 2e-05" in out
    cli.assert_no_secret()


def test_removed_spec_of_a_running_job_is_cancelled(
    cli: Cli, tree: SpecTree, emulator: Emulator
) -> None:
    tree.spec("e2e-cancel")
    tree.spec("e2e-stays")  # removing the last spec of a project is a mass removal
    cli("apply", "--yes")
    remote_id = cli.status()["e2e-cancel"]["remote_id"]
    tree.remove("e2e-cancel")
    out = cli("plan", expect=0).stdout
    assert "- cancel" in out and "e2e-cancel" in out and "spec removed" in out
    cli("apply", "--yes")
    (job,) = [j for j in emulator.together_jobs() if j["id"] == remote_id]
    assert job["status"] in ("cancel_requested", "cancelled")
    cli.assert_no_secret()


def test_a_wrong_key_is_one_line_without_the_key(tree: SpecTree, tmp_path: Path) -> None:
    emu = start_emulator(tmp_path / "auth.db", "--api-key", "the-right-key-123456")
    try:
        cli = Cli(tree, emu)
        tree.spec("e2e-auth")
        proc = cli("apply", "--yes", expect=1)
        assert "authentication failed, check TOGETHER_API_KEY" in proc.stdout + proc.stderr
        cli.assert_no_secret()
    finally:
        stop(emu)


def test_rate_limit_with_retry_after_waits_and_succeeds(tree: SpecTree, tmp_path: Path) -> None:
    # 60x speed: one emulated minute (the rate-limit window) is one real second
    emu = start_emulator(tmp_path / "rl.db", "--speed", "60", "--rpm", "4")
    try:
        cli = Cli(tree, emu)
        for i in range(3):
            tree.spec(f"e2e-rl-{i}")
        cli("apply", "--yes")
        jobs = cli.status()
        assert all(jobs[f"e2e-rl-{i}"]["remote_id"] for i in range(3))
        assert len(emu.together_jobs()) == 3  # each created exactly once
        statuses = [r.get("status") for r in emu.admin("/_emulator/requests")["data"]]
        assert 429 in statuses  # the limit was hit, waited out, and the apply succeeded
    finally:
        stop(emu)


def test_three_providers_apply_show_progress_and_logs(tree: SpecTree, emulator: Emulator) -> None:
    from support import CONVERSATION

    tree.data("data/twelve.jsonl", [CONVERSATION] * 12)
    tree.spec("e2e-tg", training_file="data/twelve.jsonl", hyperparameters={"epochs": 2})
    tree.spec(
        "e2e-oa",
        provider="openai",
        model="gpt-4.1-mini-2025-04-14",
        training_file="data/twelve.jsonl",
        hyperparameters={"epochs": 2, "learning_rate_multiplier": 1.5},
    )
    tree.spec(
        "e2e-mi",
        provider="mistral",
        model="open-mistral-7b",
        training_file="data/twelve.jsonl",
        hyperparameters={"epochs": 1, "learning_rate": 1e-4},
    )
    cli = Cli(tree, emulator)
    base = emulator.url
    cli.env.update(
        OPENAI_API_KEY=SENTINEL_KEY + "-oa",
        OPENAI_BASE_URL=base + "/openai/v1",
        MISTRAL_API_KEY=SENTINEL_KEY + "-mi",
        MISTRAL_BASE_URL=base + "/mistral/v1",
    )
    # hold every job in its running phase while we look at it
    held = [{"status": "running", "provider": p} for p in ("together", "openai")]
    emulator.admin("/_emulator/faults", {"stuck": held})
    try:
        cli("apply", "--yes")
        emulator.advance(120)  # validated: this apply starts the parked Mistral job
        started = cli("apply", "--yes").stdout
        assert "✓ e2e-mi: start: started" in started, started  # and says so
        emulator.advance(25)  # Mistral trains for ~40 s here: mid-run, past a checkpoint
        jobs = cli.status()
    finally:
        emulator.admin("/_emulator/faults", {"stuck": []})
    for name in ("e2e-tg", "e2e-oa", "e2e-mi"):
        assert jobs[name]["phase"] == "running", jobs[name]
        assert jobs[name]["progress"], jobs[name]
        events = cli("logs", name).stdout
        assert len(events.splitlines()) >= 2
    emulator.advance(100_000)
    cli("apply", "--yes", "--wait", "--interval", "0.2", "--timeout", "60")
    assert {j["phase"] for n, j in cli.status().items() if n in ("e2e-tg", "e2e-oa", "e2e-mi")} == {
        "succeeded"
    }
    cli.assert_no_secret()


def test_suspend_pauses_an_openai_job_and_resumes_it(tree: SpecTree, emulator: Emulator) -> None:
    from support import CONVERSATION

    tree.data("data/twelve.jsonl", [CONVERSATION] * 12)
    oa = {
        "provider": "openai",
        "model": "gpt-4.1-mini-2025-04-14",
        "training_file": "data/twelve.jsonl",
        "hyperparameters": {"epochs": 2, "learning_rate_multiplier": 1.5},
    }
    tree.spec("e2e-pause", **oa)
    cli = Cli(tree, emulator)
    cli.env.update(OPENAI_API_KEY=SENTINEL_KEY + "-oa", OPENAI_BASE_URL=emulator.url + "/openai/v1")
    emulator.admin("/_emulator/faults", {"stuck": [{"status": "running", "provider": "openai"}]})
    try:
        cli("apply", "--yes")
        emulator.advance(60)
        tree.spec("e2e-pause", suspend=True, **oa)
        out = cli("plan", "--detailed-exitcode", expect=2).stdout
        assert "pause" in out and "e2e-pause" in out
        cli("apply", "--yes")
        events = cli("logs", "e2e-pause").stdout.lower()
        assert "paus" in events
        cli("plan", "--detailed-exitcode", expect=0)  # suspended and paused: nothing to do
        tree.spec("e2e-pause", **oa)
        out = cli("plan", "--detailed-exitcode", expect=2).stdout
        assert "resume" in out
        cli("apply", "--yes")
        assert "resum" in cli("logs", "e2e-pause").stdout.lower()
    finally:
        emulator.admin("/_emulator/faults", {"stuck": []})


def test_logs_follow_streams_until_the_job_ends(
    cli: Cli, tree: SpecTree, emulator: Emulator
) -> None:
    tree.spec("e2e-follow")
    cli("apply", "--yes")
    follower = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "logs", "e2e-follow", "--follow", "--interval", "0.2"],
        env=cli.env,
        cwd=tree.root.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.0)
    assert follower.poll() is None  # still following a running job
    emulator.advance(100_000)
    out, err = follower.communicate(timeout=30)
    assert follower.returncode == 0, err
    lines = out.strip().splitlines()
    assert len(lines) >= 3 and lines[-1].endswith(": completed")
    assert SENTINEL_KEY not in out + err


def test_online_plan_prices_a_create_with_the_providers_estimate(
    cli: Cli, tree: SpecTree, emulator: Emulator
) -> None:
    tree.spec("e2e-price")
    cli("apply", "--yes")  # uploads the data file
    tree.spec("e2e-price", hyperparameters={"epochs": 2, "learning_rate": 1e-5})
    doc = json.loads(cli("plan", "--json").stdout)
    (replace,) = [a for a in doc["actions"] if a["name"] == "e2e-price"]
    assert replace["kind"] == "replace"
    assert replace["estimate_basis"] == "together estimate-price (online)"
    assert replace["estimated_cost_usd"] > 0
    offline = json.loads(cli("plan", "--json", "--offline").stdout)
    (same,) = [a for a in offline["actions"] if a["name"] == "e2e-price"]
    assert same["estimate_basis"].startswith("offline estimate")


def test_import_adopts_a_job_started_by_hand(cli: Cli, tree: SpecTree, emulator: Emulator) -> None:
    import hashlib

    from reconciler.model import CreateRequest
    from reconciler.providers.pool import DriverPool

    # someone started a job by hand, outside reconciler
    pool = DriverPool(
        {"TOGETHER_API_KEY": "hand", "TOGETHER_BASE_URL": emulator.url + "/together/v1"}
    )
    data = tree.root / "data" / "train.jsonl"
    driver = pool.get("together")
    uploaded = driver.upload_file(data, hashlib.sha256(data.read_bytes()).hexdigest())
    job = driver.create_job(
        CreateRequest(
            name="by-hand",
            tag="rc-000000000abc",
            model="meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
            method="sft",
            training_file_id=uploaded.id,
        )
    )
    pool.close()
    tree.spec("e2e-import")
    out = cli("import", f"together:{job.id}", "--name", "e2e-import").stdout
    assert f"Imported together:{job.id}" in out
    status = cli.status()["e2e-import"]
    assert status["remote_id"] == job.id
    cli("plan", "--detailed-exitcode", expect=0)  # tracked, nothing to create
    again = cli("import", f"together:{job.id}", "--name", "e2e-import", expect=1).stderr
    assert "already tracks" in again.strip().splitlines()[-1]  # (-v adds the traceback above)
    missing = cli("import", "together:ft-nope", "--name", "nobody", expect=1).stderr
    assert "no spec named 'nobody'" in missing
