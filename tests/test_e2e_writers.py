"""End to end, issue #11: one writer per ledger file, whatever path reaches it; a daemon
whose ledger is deleted stops; two writers at one instant never end in an internal error."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import SpecTree
from test_e2e import Cli, Emulator, emulator  # noqa: F401  (the module's emulator fixture)
from test_e2e_watch import start_watch, wait_for

pytestmark = pytest.mark.slow


def _holding_watch(cli: Cli) -> subprocess.Popen[str]:
    daemon = start_watch(cli)
    assert wait_for(lambda: cli.ledger.exists() and cli.ledger.stat().st_size > 0), "no ledger"
    return daemon


def test_a_second_writer_through_a_symlink_or_without_the_lock_file_is_refused(
    tree: SpecTree,
    emulator: Emulator,  # noqa: F811
    tmp_path: Path,
) -> None:
    cli = Cli(tree, emulator)
    tree.spec("only-once")
    daemon = _holding_watch(cli)
    try:
        link = tmp_path / "elsewhere" / "same.db"
        link.parent.mkdir()
        link.symlink_to(cli.ledger)
        err = cli("apply", "--yes", "--ledger", str(link), expect=1).stderr
        assert "is locked by watch (pid" in err, err
        lock = cli.ledger.with_name(cli.ledger.name + ".lock")
        if lock.exists():
            lock.unlink()  # someone tidies the state folder
        err = cli("apply", "--yes", expect=1).stderr
        assert "is locked by" in err and "internal error" not in err, err
    finally:
        daemon.terminate()
        daemon.wait(10)


def test_two_applies_at_one_instant_never_end_in_an_internal_error(
    tree: SpecTree,
    emulator: Emulator,  # noqa: F811
    tmp_path: Path,
) -> None:
    cli = Cli(tree, emulator)
    for name in ("race-a", "race-b", "race-c"):
        tree.spec(name)
    cli.ledger.parent.mkdir(parents=True, exist_ok=True)
    paths = [cli.ledger]
    for i in (1, 2):  # the same file, reached by other names
        link = tmp_path / f"link-{i}" / "ledger.db"
        link.parent.mkdir()
        link.symlink_to(cli.ledger)
        paths.append(link)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "reconciler", "apply", "--yes", "--ledger", str(path)],
            env=cli.env,
            cwd=tree.root.parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for path in paths
    ]
    results = [(p.wait(60), *p.communicate()) for p in procs]
    for code, _out, err in results:
        assert code in (0, 1), err
        assert "internal error" not in err and "Traceback" not in err, err
        assert code == 0 or "is locked by" in err, err
    ids = [j["id"] for j in emulator.together_jobs() if str(j.get("suffix", "")).startswith("rc")]
    names = cli.status()
    assert sorted(n for n in names if n.startswith("race-")) == ["race-a", "race-b", "race-c"]
    assert len({names[n]["remote_id"] for n in ("race-a", "race-b", "race-c")}) == 3
    assert len(ids) == len(set(ids))


def test_watch_stops_when_its_ledger_is_deleted(
    tree: SpecTree,
    emulator: Emulator,  # noqa: F811
) -> None:
    cli = Cli(tree, emulator)
    tree.spec("kept")
    daemon = _holding_watch(cli)
    try:
        time.sleep(1.0)
        for path in cli.ledger.parent.glob("ledger.db*"):
            path.unlink()
        code = daemon.wait(20)
        err = daemon.stderr.read() if daemon.stderr else ""
        assert code == 1, err
        assert "was deleted or replaced while watch ran" in err, err
        assert "Traceback" not in err, err
        assert not cli.ledger.exists()  # nothing written into a new file behind our back
    finally:
        if daemon.poll() is None:
            daemon.kill()
