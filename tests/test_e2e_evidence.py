"""End to end, issue #11: evidence, not one answer. A single 404 (here: one apply pointed
at the wrong endpoint) never writes a running job off; answers that cannot be right (a
job GET about another job, a list whose total never ends) are refused, never written."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from support import SENTINEL_KEY, SpecTree
from test_e2e import Cli, Emulator, emulator, start_emulator, stop  # noqa: F401

pytestmark = pytest.mark.slow

# libfaketime moves the CLI's clock with the emulator's where a test needs both to move
LIBFAKETIME = next((str(p) for p in Path("/usr/lib").glob("*/faketime/libfaketime.so.1")), "")


@contextmanager
def own_emulator(state: Path) -> Iterator[Emulator]:
    """An emulator of the test's own (faults and state apart from the module's)."""
    emu = start_emulator(state, "--speed", "1")
    try:
        yield emu
    finally:
        stop(emu)


def test_one_apply_at_the_wrong_endpoint_writes_nothing_off(
    tree: SpecTree,
    emulator: Emulator,  # noqa: F811
    tmp_path: Path,
) -> None:
    cli = Cli(tree, emulator)
    tree.spec("healing", policy={"self_heal": True})
    tree.spec("staying")
    cli("apply", "--yes")
    job = cli.status()["healing"]["remote_id"]
    other = start_emulator(tmp_path / "other.db")  # an empty account: every job is a 404
    try:
        right = cli.env["TOGETHER_BASE_URL"]
        cli.env["TOGETHER_BASE_URL"] = other.url + "/together/v1"
        cli("apply", "--yes", expect=None)
        cli.env["TOGETHER_BASE_URL"] = right
    finally:
        stop(other)
    out = cli("apply", "--yes").stdout
    assert "+ create" not in out and "0 to create" in out, out  # no second job
    status = cli.status()["healing"]
    assert status["remote_id"] == job and status["phase"] in ("queued", "running"), status
    ours = [j for j in emulator.together_jobs() if j["id"] == job]
    assert len(ours) == 1
    tree.remove("healing")  # and removing the spec still cancels the running job
    cli("apply", "--yes")
    (remote,) = [j for j in emulator.together_jobs() if j["id"] == job]
    assert remote["status"] in ("cancel_requested", "cancelled"), remote


def _mistral_cli(tree: SpecTree, emu: Emulator) -> Cli:
    cli = Cli(tree, emu)
    cli.env.update({"MISTRAL_API_KEY": SENTINEL_KEY, "MISTRAL_BASE_URL": emu.url + "/mistral/v1"})
    return cli


def test_a_list_whose_total_never_ends_is_not_paged_for_ever(
    tree: SpecTree, tmp_path: Path
) -> None:
    with own_emulator(tmp_path / "mistral.db") as emu:
        cli = _mistral_cli(tree, emu)
        emu.admin("/_emulator/faults", {"list_lag_seconds": 30})
        tree.spec("tiny", provider="mistral", model="open-mistral-7b", hyperparameters={})
        cli("apply", "--yes")
        emu.advance(60)  # the first job is listed now
        tree.spec("tiny-two", provider="mistral", model="open-mistral-7b", hyperparameters={})
        cli("apply", "--yes")  # the second is not listed yet: a refresh looks further
        emu.admin("/_emulator/faults", {"list_total": 10**9})
        started = time.monotonic()
        proc = cli("status", expect=None)
        assert time.monotonic() - started < 60
        assert "internal error" not in proc.stderr, proc.stderr
        calls = [r for r in emu.admin("/_emulator/requests")["data"] if r["method"] == "GET"]
        assert len(calls) < 1000, len(calls)  # bounded: not thousands of pages
        assert "stopped paging" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_an_answer_about_another_job_is_never_written(
    tree: SpecTree,
    emulator: Emulator,  # noqa: F811
) -> None:
    cli = Cli(tree, emulator)
    tree.spec("trusting")
    tree.spec("other-spec")
    cli("apply", "--yes")
    job = cli.status()["trusting"]["remote_id"]
    try:
        emulator.admin("/_emulator/faults", {"wrong_job_id": True, "list_lag_seconds": 10**6})
        cli("apply", "--yes", expect=None)  # refreshes by GET: every answer names another job
    finally:
        emulator.admin("/_emulator/faults", {"wrong_job_id": False, "list_lag_seconds": 0})
    recorded = json.loads(cli("status", "--json", "--offline").stdout)["jobs"]
    assert {j["name"]: j["remote_id"] for j in recorded}["trusting"] == job
    assert cli.status()["trusting"]["remote_id"] == job  # the ledger kept the right id


WANDB_SENTINEL = "wandb-SENTINEL-7f3e9a1c5b2d4e6f8a0b"


def test_a_secret_in_options_is_only_ever_a_reference(
    tree: SpecTree,
    emulator: Emulator,  # noqa: F811
) -> None:
    cli = Cli(tree, emulator)
    tree.spec("tracked", options={"wandb_api_key": WANDB_SENTINEL})
    err = cli("validate", expect=1).stderr
    assert "spec.options.wandb_api_key: a secret must not be written in the spec" in err, err
    assert "use {env: WANDB_API_KEY}" in err and WANDB_SENTINEL not in err, err
    tree.spec("tracked", options={"wandb_api_key": {"env": "WANDB_API_KEY"}})
    err = cli("apply", "--yes", expect=1).stdout
    assert "WANDB_API_KEY is not set: spec.options.wandb_api_key reads it" in err, err
    cli.env["WANDB_API_KEY"] = WANDB_SENTINEL
    saved = tree.root.parent / "state" / "secret.plan.json"
    cli("plan", "--out", str(saved))
    cli("apply", "--yes")
    assert cli.status()["tracked"]["remote_id"]  # created (the value reached the provider:
    # tests/test_reconcile.py checks the request itself)
    for text in cli.transcript:  # nothing of ours holds the value
        assert WANDB_SENTINEL not in text
    for path in [saved, *cli.ledger.parent.rglob("*")]:  # the spec cache too
        if path.is_file():
            assert WANDB_SENTINEL.encode() not in path.read_bytes(), path


def test_a_parked_mistral_job_starts_only_for_a_present_unsuspended_spec(
    tree: SpecTree, tmp_path: Path
) -> None:
    with own_emulator(tmp_path / "parked.db") as emu:
        cli = _mistral_cli(tree, emu)
        for name in ("held", "dropped", "kept"):
            tree.spec(name, provider="mistral", model="open-mistral-7b", hyperparameters={})
        cli("apply", "--yes")
        ids = {n: j["remote_id"] for n, j in cli.status().items()}
        tree.spec(
            "held", provider="mistral", model="open-mistral-7b", hyperparameters={}, suspend=True
        )
        tree.remove("dropped")
        emu.advance(600)  # validation done: every job waits at VALIDATED
        cli("apply", "--yes")
        starts = [
            r["path"]
            for r in emu.admin("/_emulator/requests")["data"]
            if r["method"] == "POST" and r["path"].endswith("/start")
        ]
        assert any(ids["kept"] in p for p in starts), starts  # the present spec's job starts
        assert not any(ids["held"] in p or ids["dropped"] in p for p in starts), starts
        jobs = {j["id"]: j["status"] for j in emu.admin("/_emulator/state")["jobs"]}
        assert jobs[ids["held"]] == "VALIDATED"
        assert jobs[ids["dropped"]] in ("CANCELLATION_REQUESTED", "CANCELLED"), jobs


def test_an_upload_whose_answer_is_lost_is_stored_once(tree: SpecTree, tmp_path: Path) -> None:
    from support import CONVERSATION

    with own_emulator(tmp_path / "uploads.db") as emu:
        cli = Cli(tree, emu)
        cli.env.update({"OPENAI_API_KEY": SENTINEL_KEY, "OPENAI_BASE_URL": emu.url + "/openai/v1"})
        tree.data("data/ten.jsonl", [CONVERSATION] * 10)
        tree.spec(
            "uploaded",
            provider="openai",
            model="gpt-4.1-mini-2025-04-14",
            training_file="data/ten.jsonl",
            hyperparameters={"epochs": 1},
        )
        emu.admin(
            "/_emulator/faults",
            {"drop_next": 1, "drop_mode": "after", "methods": ["POST"], "path_contains": "/files"},
        )
        first = cli("apply", "--yes", expect=None)
        assert "outcome unknown" in first.stdout, first.stdout
        cli("apply", "--yes")
        files = [f for f in emu.admin("/_emulator/state")["files"] if f["provider"] == "openai"]
        assert len(files) == 1, files  # the same content is stored once
        assert cli.status()["uploaded"]["remote_id"]


def test_a_provider_that_lost_a_file_gets_it_again(tree: SpecTree, tmp_path: Path) -> None:
    with own_emulator(tmp_path / "lost.db") as emu:
        cli = Cli(tree, emu)
        tree.spec("first")
        cli("apply", "--yes")
        emu.admin("/_emulator/reset", {})  # the provider's state is gone, files included
        tree.spec("second", hyperparameters={"epochs": 2})  # the same data file
        out = cli("apply", "--yes", expect=None).stdout
        assert "no longer has its data file" in out, out
        cli("apply", "--yes")
        assert cli.status()["second"]["remote_id"]
        files = [f for f in emu.admin("/_emulator/state")["files"] if f["provider"] == "together"]
        assert len(files) == 1, files


def test_a_list_lagging_past_the_grace_never_makes_a_second_job(
    tree: SpecTree, tmp_path: Path
) -> None:
    with own_emulator(tmp_path / "lag.db") as emu:
        cli = Cli(tree, emu)
        tree.spec("lagging")
        emu.admin(
            "/_emulator/faults",
            {
                "list_lag_seconds": 135,  # longer than the default 120 s grace
                "drop_next": 1,
                "drop_mode": "after",
                "methods": ["POST"],
                "path_contains": "/fine-tunes",
            },
        )
        first = cli("apply", "--yes", expect=None).stdout
        assert "create outcome unknown" in first, first
        # the user comes back two minutes later: the provider's clock and (with libfaketime)
        # ours have both moved on
        emu.advance(123)
        offset = tmp_path / "offset"
        offset.write_text("+123s\n")
        if LIBFAKETIME:
            cli.env = {
                **cli.env,
                "LD_PRELOAD": LIBFAKETIME,
                "FAKETIME_TIMESTAMP_FILE": str(offset),
                "FAKETIME_NO_CACHE": "1",
            }
        for _ in range(3):  # a user re-running apply, as fast as they like
            out = cli("apply", "--yes", expect=None).stdout
            assert "created" not in out, out
        emu.advance(20)  # the lag is over: the job is listed
        offset.write_text("+143s\n")
        out = cli("apply", "--yes").stdout
        assert "adopted" in out, out
        jobs = [j for j in emu.together_jobs() if "rc" in str(j.get("suffix"))]
        assert len(jobs) == 1, jobs  # one job for one attempt
        assert cli.status()["lagging"]["remote_id"] == jobs[0]["id"]
        cli("plan", "--detailed-exitcode", expect=0)
