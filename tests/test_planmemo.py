"""A plan replayed (planmemo.py): an offline plan whose every input is as it was prints
what it printed, without planning again; any input that moved plans again."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import stat
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support import CONVERSATION, SENTINEL_KEY, SpecTree
from test_plan import NOW, attempt, desired, record

import reconciler.commands
from reconciler import planmemo
from reconciler.cli import main
from reconciler.model import Phase
from reconciler.plan import Kind, make_plan

PLAN = ["--specs", "specs", "--ledger", "state/ledger.db", "plan", "--offline"]
OLD = time.time() - 60  # what a file last changed a minute ago looks like


@pytest.fixture()
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SpecTree:
    monkeypatch.chdir(tmp_path)
    for name in ("RECONCILER_CACHE", "RECONCILER_SPECS", "RECONCILER_LEDGER", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TOGETHER_API_KEY", SENTINEL_KEY)
    monkeypatch.setenv("NO_COLOR", "1")
    tree = SpecTree(tmp_path / "specs")
    tree.spec("alpha")
    tree.spec("beta", hyperparameters={"epochs": 2})
    (tmp_path / "state").mkdir()
    settle(tmp_path / "specs" / "data" / "train.jsonl")
    return tree


def settle(path: Path) -> None:
    """Make a file look last changed long ago: its change time cannot be set back, so the
    memo's two-second rule is measured from a later start instead."""
    os.utime(path, (OLD, OLD))


class Runs:
    """Counts the plans actually made (``commands.run``), and what each command printed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
        self.made = 0
        self.capsys = capsys
        real = reconciler.commands.run

        def counting(args: Any) -> int:
            self.made += 1
            return real(args)

        monkeypatch.setattr(reconciler.commands, "run", counting)

    def __call__(self, *extra: str, argv: list[str] | None = None) -> tuple[int, str, str]:
        code = main([*(argv or PLAN), *extra])
        out, err = self.capsys.readouterr()
        return code, out, err


@pytest.fixture()
def runs(
    tree: SpecTree, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Runs:
    # the racy window measured from a start two seconds later: the fixture's files count
    # as settled without a sleep (their change times are now)
    real = planmemo.settled
    monkeypatch.setattr(planmemo, "settled", lambda ident, began: real(ident, began + 3 * 10**9))
    return Runs(monkeypatch, capsys)


def memo_rows(tmp_path: Path) -> list[tuple[str, bytes]]:
    path = tmp_path / "state" / "cache" / planmemo.MEMO_FILE
    if not path.exists():
        return []
    with sqlite3.connect(path) as conn:
        return list(conn.execute("SELECT key, kept FROM plans"))


def test_an_unchanged_plan_is_printed_again_without_planning(runs: Runs, tmp_path: Path) -> None:
    first = runs()
    assert first[0] == 0 and "alpha" in first[1] and "beta" in first[1]
    assert runs.made == 1
    again = runs()
    assert again == first and runs.made == 1  # printed again, not planned again
    # the exit code is kept with the output: --detailed-exitcode says "changes" (2)
    detailed = runs("--detailed-exitcode")
    assert detailed[0] == 2 and runs.made == 2
    assert runs("--detailed-exitcode") == detailed and runs.made == 2
    memo = tmp_path / "state" / "cache" / planmemo.MEMO_FILE
    assert stat.S_IMODE(memo.stat().st_mode) == 0o600
    # a digest of the environment is kept, never a value of it
    assert SENTINEL_KEY.encode() not in memo.read_bytes()
    for _, blob in memo_rows(tmp_path):
        assert SENTINEL_KEY not in zlib.decompress(blob).decode()


def _edit_in_place(tree: SpecTree) -> None:
    """Other bytes of the same size and modification time: an edit within the tick."""
    path = tree.root / "beta.yaml"
    before = path.stat()
    path.write_text(path.read_text().replace('"epochs": 2', '"epochs": 7'))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size


def _data_edit(tree: SpecTree) -> None:
    path = tree.data("data/train.jsonl", [CONVERSATION] * 5)
    settle(path)


def _repointed_link(tree: SpecTree) -> None:
    # the spec names a link; the link now points at another file with the same bytes
    other = tree.data("data/other.jsonl", [CONVERSATION] * 3)
    link = tree.root / "data" / "link.jsonl"
    link.unlink()
    link.symlink_to(other.name)


def _project_file(tree: SpecTree) -> None:
    from reconciler.project import project_yaml

    (tree.root / "reconciler.yaml").write_text(project_yaml("team-a"))


def _ledger(tree: SpecTree) -> None:
    from reconciler.ledger import open_ledger

    open_ledger(tree.root.parent / "state" / "ledger.db").close()


def _new_spec(tree: SpecTree) -> None:
    tree.spec("gamma")


def _new_spec_in_new_folder(tree: SpecTree) -> None:
    (tree.root / "team").mkdir()
    path = tree.root / "team" / "delta.yaml"
    path.write_text(tree.spec("delta", training_file="../data/train.jsonl").read_text())
    (tree.root / "delta.yaml").unlink()


def _removed_spec(tree: SpecTree) -> None:
    (tree.root / "alpha.yaml").unlink()


MOVES: dict[str, tuple[Callable[[SpecTree], None], str]] = {
    "a spec's bytes, same size and time": (_edit_in_place, "epochs"),
    "a data file": (_data_edit, "alpha"),
    "a data link pointed elsewhere": (_repointed_link, "alpha"),
    "the project file written": (_project_file, "alpha"),
    "the ledger created": (_ledger, "alpha"),
    "a new spec": (_new_spec, "gamma"),
    "a spec in a new folder": (_new_spec_in_new_folder, "delta"),
    "a removed spec": (_removed_spec, "beta"),
}


@pytest.mark.parametrize("move", list(MOVES), ids=list(MOVES))
def test_any_input_that_moved_plans_again(
    move: str, runs: Runs, tree: SpecTree, tmp_path: Path
) -> None:
    change, shown = MOVES[move]
    if change is _repointed_link:  # the specs name the data through a link from the start
        (tree.root / "data" / "link.jsonl").symlink_to("train.jsonl")
        tree.spec("alpha", training_file="data/link.jsonl")
    first = runs()
    assert runs() == first and runs.made == 1
    change(tree)
    moved = runs()
    assert runs.made == 2, f"{move}: the old plan was printed again"
    assert moved[0] == 0 and shown in moved[1]
    fresh = main(["--specs", "specs", "--ledger", "state/ledger.db", "plan", "--offline"])
    assert fresh == 0


def test_the_command_and_its_environment_are_the_key(
    runs: Runs, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    runs()
    runs("--max-cost", "1000")  # other arguments: another plan
    assert runs.made == 2
    monkeypatch.setenv("RECONCILER_SOMETHING", "1")  # another environment
    runs()
    assert runs.made == 3
    monkeypatch.setenv("RECONCILER_SOMETHING", "2")
    runs()
    assert runs.made == 4
    monkeypatch.delenv("RECONCILER_SOMETHING")
    runs()
    assert runs.made == 4  # the first environment again: its plan is still kept


def test_a_hidden_folder_is_no_input(runs: Runs, tree: SpecTree) -> None:
    runs()
    (tree.root / ".git").mkdir()
    (tree.root / ".git" / "x.yaml").write_text("not: a spec\n")
    runs()
    assert runs.made == 1


def test_a_file_changed_within_the_clock_tick_is_not_trusted(
    tree: SpecTree, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = Runs(monkeypatch, capsys)  # the real two-second rule
    tree.data("data/train.jsonl", [CONVERSATION] * 3)  # written just now
    runs()
    runs()
    assert runs.made == 2
    settle(tree.root / "data" / "train.jsonl")  # an old modification time is not enough:
    ident = planmemo.identity(tree.root / "data" / "train.jsonl")  # the change time is now
    assert not planmemo.settled(ident, time.time_ns())
    assert planmemo.settled(ident, time.time_ns() + 3 * 10**9)
    assert planmemo.settled(None, 0)  # an absent file: nothing to be racy about


@pytest.mark.parametrize(
    "extra",
    [["--json"], ["--format", "markdown"], ["-v"], ["--out", "plan.json"]],
    ids=["json", "markdown", "verbose", "out"],
)
def test_only_a_text_plan_is_replayed(extra: list[str], runs: Runs, tmp_path: Path) -> None:
    argv = ["--specs", "specs", "--ledger", "state/ledger.db", "plan", "--offline", *extra]
    if extra == ["-v"]:
        argv = ["-v", *argv]
    runs(argv=argv)
    runs(argv=argv)
    assert runs.made == 2 and not memo_rows(tmp_path)


def test_the_cache_off_keeps_nothing(
    runs: Runs, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RECONCILER_CACHE", "off")
    runs()
    runs()
    assert runs.made == 2 and not (tmp_path / "state" / "cache").exists()


def test_a_plan_with_problems_is_not_kept(runs: Runs, tree: SpecTree, tmp_path: Path) -> None:
    tree.spec("alpha", hyperparameters={"epochs": 0})
    first = runs()
    assert first[0] == 1 and "epochs" in first[2]
    assert runs() == first and runs.made == 2 and not memo_rows(tmp_path)


def test_a_plan_decided_by_the_clock_is_not_kept(
    runs: Runs, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("reconciler.plan.Plan.timeless", property(lambda self: False))
    runs()
    runs()
    assert runs.made == 2 and not memo_rows(tmp_path)


def test_the_planner_says_when_the_clock_decided() -> None:
    want = desired("bot")
    failed = attempt(
        want, Phase.FAILED, error="node lost", error_retryable=True, finished_at=NOW - 1
    )
    waiting = make_plan([want], {"bot": record(failed)}, NOW)
    assert waiting.actions[0].kind is Kind.WAIT and not waiting.timeless
    retrying = make_plan([want], {"bot": record(failed)}, NOW + 10**6)
    assert retrying.actions[0].kind is Kind.RETRY and not retrying.timeless
    done = make_plan([want], {"bot": record(attempt(want, Phase.SUCCEEDED))}, NOW)
    assert done.actions[0].kind is Kind.NOOP and done.timeless
    assert make_plan([want], {}, NOW).timeless  # a create reads no clock


def test_local_training_is_not_replayed(runs: Runs, tree: SpecTree, tmp_path: Path) -> None:
    for path in tree.root.glob("*.yaml"):
        path.unlink()
    tree.spec("mine", provider="local", model="Qwen/Qwen2.5-0.5B", hyperparameters={})
    runs()
    runs()
    assert runs.made == 2 and not memo_rows(tmp_path)


def test_a_broken_memo_only_costs_time(runs: Runs, tmp_path: Path) -> None:
    first = runs()
    memo = tmp_path / "state" / "cache" / planmemo.MEMO_FILE
    with sqlite3.connect(memo) as conn:
        conn.execute("UPDATE plans SET kept = ?", (b"not zlib",))
    assert runs() == first and runs.made == 2
    memo.write_bytes(b"not a database" * 100)
    assert runs() == first and runs.made == 3


def test_both_streams_are_printed_again_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "specs").mkdir()
    seen = io.StringIO()
    monkeypatch.setattr(sys, "stdout", seen)
    monkeypatch.setattr(sys, "stderr", seen)
    memo = planmemo.Memo(tmp_path / "cache", "k", tmp_path / "specs", tmp_path / "l.db")
    with memo.recording():
        print("one")
        print("two", file=sys.stderr)
        print("three")
    memo.inputs = planmemo.Inputs([], [], {})
    memo.save(2)
    printed = seen.getvalue()
    assert printed == "one\ntwo\nthree\n"
    seen.truncate(0)
    seen.seek(0)
    again = planmemo.Memo(tmp_path / "cache", "k", tmp_path / "specs", tmp_path / "l.db")
    assert again.replay() == 2 and seen.getvalue() == printed
    other = planmemo.Memo(tmp_path / "cache", "other", tmp_path / "specs", tmp_path / "l.db")
    assert other.replay() is None


def test_the_code_is_part_of_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    module = package / "planmemo.py"
    module.write_text("x = 1\n")
    monkeypatch.setattr(planmemo, "__file__", str(module))
    before = planmemo.code_digest()
    assert planmemo.code_digest() == before
    os.utime(module, ns=(0, 10**9))
    assert planmemo.code_digest() != before


def test_inputs_round_trip_and_refuse_other_shapes() -> None:
    inputs = planmemo.Inputs(["a.yaml"], ["0" * 64], {"d": [1, 2, 3, 4, 5]})
    assert planmemo.Inputs.from_json(inputs.to_json()) == inputs
    assert planmemo.Inputs.from_json(json.dumps({"files": ["a"], "digests": []})) is None
    assert planmemo.Inputs.from_json("[1, 2]") is None
