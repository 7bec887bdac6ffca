"""End to end, issue #11: removals must persist. An editor's truncate-and-write or a file
moved away and back never cancels a job under `watch`; an empty or mistyped specs folder
never cancels or forgets every job (Argo CD's prune protection)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from support import SpecTree
from test_e2e import Cli, Emulator, emulator  # noqa: F401  (the module's emulator fixture)
from test_e2e_watch import start_watch, wait_for

pytestmark = pytest.mark.slow


def _actions(daemon_stderr: str) -> list[dict[str, object]]:
    events = [json.loads(line) for line in daemon_stderr.splitlines() if line.startswith("{")]
    return [e for e in events if e.get("event") == "action" and "ok" in e]  # outcomes


def test_watch_never_cancels_for_a_truncating_save_or_a_quick_move(
    tree: SpecTree,
    emulator: Emulator,  # noqa: F811
    tmp_path: Path,
) -> None:
    cli = Cli(tree, emulator)
    path = tree.spec("edited")
    tree.spec("moved")
    daemon = start_watch(cli, "--removal-settle", "5")
    try:
        assert wait_for(
            lambda: len(cli.status()) == 2 and all(j["remote_id"] for j in cli.status().values())
        ), "not created"
        jobs = {n: j["remote_id"] for n, j in cli.status().items()}
        text = path.read_text()
        path.write_text("")  # the editor truncates ...
        time.sleep(0.1)
        path.write_text(text)  # ... and writes
        moved = tree.root / "moved.yaml"
        away = tmp_path / "moved.yaml"
        moved.rename(away)  # moved away ...
        time.sleep(0.8)
        away.rename(moved)  # ... and back within a second
        time.sleep(6)  # past the settle period
    finally:
        daemon.terminate()
        daemon.wait(10)
    err = daemon.stderr.read() if daemon.stderr else ""
    kinds = [(a["name"], a["kind"]) for a in _actions(err)]
    assert ("edited", "cancel") not in kinds and ("moved", "cancel") not in kinds, kinds
    assert [k for k in kinds if k[1] == "create"] == [("edited", "create"), ("moved", "create")]
    assert {n: j["remote_id"] for n, j in cli.status().items()} == jobs  # the same jobs
    states = {j["id"]: j["status"] for j in emulator.together_jobs()}
    assert all(states[i] in ("pending", "queued", "running") for i in jobs.values()), states


def test_a_spec_removed_for_good_is_cancelled_once_it_has_settled(
    tree: SpecTree,
    emulator: Emulator,  # noqa: F811
) -> None:
    cli = Cli(tree, emulator)
    tree.spec("going")
    tree.spec("staying")
    daemon = start_watch(cli, "--removal-settle", "2")
    try:
        # both created: an intent is in the ledger a moment before its job id
        assert wait_for(
            lambda: (
                cli.ledger.exists()
                and len(jobs := cli.status()) == 2
                and all(j["remote_id"] for j in jobs.values())
            )
        )
        remote = cli.status()["going"]["remote_id"]
        tree.remove("going")
        assert wait_for(
            lambda: any(
                j["id"] == remote and j["status"] != "pending" and "cancel" in j["status"]
                for j in emulator.together_jobs()
            ),
            timeout=20,
        ), "a settled removal was not acted on"
    finally:
        daemon.terminate()
        daemon.wait(10)


def test_an_empty_specs_folder_never_cancels_every_job(
    tree: SpecTree,
    emulator: Emulator,  # noqa: F811
    tmp_path: Path,
) -> None:
    cli = Cli(tree, emulator)
    for name in ("one", "two", "three"):
        tree.spec(name)
    cli("apply", "--yes")
    ids = {n: j["remote_id"] for n, j in cli.status().items()}
    empty = tmp_path / "empty-specs"
    empty.mkdir()
    out = cli("plan", "--specs", str(empty)).stdout
    assert "apply` refuses it without --allow-mass-removal" in out, out
    err = cli("apply", "--yes", "--specs", str(empty), expect=1).stderr
    assert "no spec is left: the plan would cancel or forget all 3 tracked job(s)" in err, err
    assert "--allow-mass-removal" in err
    states = {j["id"]: j["status"] for j in emulator.together_jobs()}
    assert all(states[i] in ("pending", "queued", "running") for i in ids.values()), states
    assert {n: j["remote_id"] for n, j in cli.status().items()} == ids  # nothing forgotten
    cli("apply", "--yes", "--specs", str(empty), "--allow-mass-removal")
    states = {j["id"]: j["status"] for j in emulator.together_jobs()}
    assert all("cancel" in states[i] for i in ids.values()), states
