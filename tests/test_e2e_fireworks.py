"""Fireworks end to end against the emulator process: the job id is derived from the tag,
so a kill -9 of `apply` during the create and an answer lost after the create took effect
both end with exactly one job per spec, found by reading that id (no list scan)."""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import SENTINEL_KEY
from test_e2e import Emulator, start_emulator, stop
from test_e2e_crash import (
    CrashCli,
    clear_faults,
    converge,
    fresh_emulator,
    quiesce,
    read_ledger,
    requests_seen,
    workspace,
)

from reconciler.providers.fireworks.mapping import tag_of_id

pytestmark = pytest.mark.slow

ACCOUNT = "emulator-acct"
MODEL = "accounts/fireworks/models/qwen3-8b"
CREATE_PATH = f"/fireworks/v1/accounts/{ACCOUNT}/supervisedFineTuningJobs"


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    emulator = start_emulator(tmp_path_factory.mktemp("fw-emu") / "emu.db", "--speed", "10")
    yield emulator
    stop(emulator)


def fireworks_cli(root: Path, emu: Emulator, count: int) -> tuple[CrashCli, list[str]]:
    tree, cli = workspace(root, emu)
    cli.env["FIREWORKS_API_KEY"] = SENTINEL_KEY
    cli.env["FIREWORKS_BASE_URL"] = f"{emu.url}/fireworks/v1"
    cli.env["FIREWORKS_ACCOUNT_ID"] = ACCOUNT
    names = [f"fw-crash-{i}" for i in range(count)]
    for name in names:
        tree.spec(name, provider="fireworks", model=MODEL, hyperparameters={"epochs": 1})
    return cli, names


def creates(emu: Emulator) -> list[dict[str, Any]]:
    return [r for r in requests_seen(emu) if r["method"] == "POST" and r["path"] == CREATE_PATH]


def assert_one_job_per_spec(emu: Emulator, cli: CrashCli, names: list[str], context: str) -> None:
    jobs = [j for j in emu.admin("/_emulator/state")["jobs"] if j["provider"] == "fireworks"]
    ids = [j["id"] for j in jobs]
    tagged = [tag_of_id(i) for i in ids]
    assert None not in tagged, f"{context}: a job without our tag in its id: {ids}"
    ledger = read_ledger(cli.ledger)
    assert ledger is not None and ledger.integrity == "ok", context
    by_remote = {a["remote_id"]: a for a in ledger.attempts}
    assert set(ids) <= set(by_remote), f"{context}: jobs unknown to the ledger: {ids}"
    per_spec = Counter(by_remote[i]["spec_name"] for i in ids)
    assert per_spec == dict.fromkeys(names, 1), f"{context}: jobs per spec {per_spec}"
    assert all(a["remote_id"] in ids for a in ledger.attempts), context
    shas = [
        f["sha256"] for f in emu.admin("/_emulator/state")["files"] if f["provider"] == "fireworks"
    ]
    assert len(shas) == len(set(shas)), f"{context}: one content uploaded twice"


@pytest.mark.parametrize("nth", [1, 2])
def test_kill_9_of_apply_during_the_fireworks_create_leaves_one_job(
    nth: int, emu: Emulator, tmp_path: Path
) -> None:
    # every POST waits at the emulator: the kill lands while the nth create is in flight
    fresh_emulator(emu, {"latency_ms": 300, "methods": ["POST"]})
    cli, names = fireworks_cli(tmp_path, emu, 3)
    log = tmp_path / "killed.log"
    proc = cli.start("apply", "--yes", log=log)
    started = time.monotonic()
    while proc.poll() is None and time.monotonic() - started < 30:
        if len(creates(emu)) >= nth:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait(10)
    output = log.read_text()
    assert proc.returncode == -signal.SIGKILL, f"apply was not killed mid-create:\n{output}"
    quiesce(emu)
    view = read_ledger(cli.ledger)
    assert view is not None and view.integrity == "ok"
    clear_faults(emu)
    converged = converge(cli)
    assert_one_job_per_spec(emu, cli, names, f"kill at create {nth}\n{output}\n{converged}")
    cli.assert_no_secret()


def test_a_lost_create_answer_is_resolved_by_the_id(emu: Emulator, tmp_path: Path) -> None:
    fresh_emulator(emu)
    cli, (name,) = fireworks_cli(tmp_path, emu, 1)
    # the create takes effect; its answer never reaches the client
    lost = {"drop_next": 1, "drop_mode": "after", "methods": ["POST"]}
    emu.admin("/_emulator/faults", {**lost, "path_contains": "/supervisedFineTuningJobs"})
    first = cli.run("apply", "--yes")
    assert first.returncode == 0, first.stdout + first.stderr
    dropped = [r for r in requests_seen(emu) if r["status"] == "dropped"]
    assert [r["path"] for r in dropped] == [CREATE_PATH]
    ledger = read_ledger(cli.ledger)
    assert ledger is not None
    (attempt,) = ledger.attempts
    # read back by the id it was given: recorded in the same pass, never posted again
    assert attempt["remote_id"] == f"accounts/{ACCOUNT}/supervisedFineTuningJobs/{attempt['tag']}"
    assert len(creates(emu)) == 1
    assert_one_job_per_spec(emu, cli, [name], first.stdout)
    assert cli.run("plan", "--detailed-exitcode").returncode == 0
    cli.assert_no_secret()


def test_a_job_runs_to_its_model(emu: Emulator, tmp_path: Path) -> None:
    fresh_emulator(emu)
    cli, (name,) = fireworks_cli(tmp_path, emu, 1)
    done = cli.run("apply", "--yes", "--wait", "--interval", "0.3", "--timeout", "50", timeout=90)
    assert done.returncode == 0, done.stdout + done.stderr
    job = cli.status()[name]
    ledger = read_ledger(cli.ledger)
    assert ledger is not None
    (attempt,) = ledger.attempts
    assert job["phase"] == "succeeded", job
    assert job["fine_tuned_model"] == f"accounts/{ACCOUNT}/models/{attempt['tag']}"
    assert len(creates(emu)) == 1
