"""Issue #12 in process: health apart from sync for every cell of the table, the exit
code and summary that never claim reality matches when it does not, a status table that
fits 80 columns, plain output without colour, renames, targeting, ``--replace``, money
shown with the precision a refusal needs, and the rough edges of the CLI."""

from __future__ import annotations

import io
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from support import SpecTree
from test_cli import run
from test_plan import CELLS, NEW, NOW, OLD, attempt, desired, record

from reconciler.errors import ConfigError, StalePlanError
from reconciler.health import (
    EXIT_ATTENTION,
    EXIT_CHANGES,
    EXIT_NO_CHANGES,
    Health,
    Sync,
    detailed_exit,
    health,
    sync,
    verdict,
)
from reconciler.model import Phase
from reconciler.plan import Kind, Plan, make_plan, usd
from reconciler.planfile import SavedPlan
from reconciler.render import Styler, console, plan_lines
from reconciler.statusview import table_lines
from reconciler.targets import Selection, chooser

ANSI = re.compile(r"\x1b\[")

# (row, column) of DESIGN §3 → (health, sync) a person reads in `status`
EXPECTED = {
    ("none", "same"): (Health.MISSING, Sync.OUT_OF_SYNC),
    ("none", "new"): (Health.MISSING, Sync.OUT_OF_SYNC),
    ("intent", "same"): (Health.PROGRESSING, Sync.OUT_OF_SYNC),
    ("intent", "new"): (Health.PROGRESSING, Sync.OUT_OF_SYNC),
    ("intent", "removed"): (Health.PROGRESSING, Sync.OUT_OF_SYNC),
    ("active", "same"): (Health.PROGRESSING, Sync.SYNCED),
    ("active", "new"): (Health.PROGRESSING, Sync.OUT_OF_SYNC),
    ("active", "removed"): (Health.PROGRESSING, Sync.OUT_OF_SYNC),
    ("succeeded", "same"): (Health.HEALTHY, Sync.SYNCED),
    ("succeeded", "new"): (Health.HEALTHY, Sync.OUT_OF_SYNC),
    ("succeeded", "removed"): (Health.HEALTHY, Sync.OUT_OF_SYNC),
    ("failed-retryable", "same"): (Health.DEGRADED, Sync.OUT_OF_SYNC),
    ("failed-retryable", "new"): (Health.DEGRADED, Sync.OUT_OF_SYNC),
    ("failed-retryable", "removed"): (Health.DEGRADED, Sync.OUT_OF_SYNC),
    ("failed-permanent", "same"): (Health.DEGRADED, Sync.SYNCED),
    ("failed-permanent", "new"): (Health.DEGRADED, Sync.OUT_OF_SYNC),
    ("failed-permanent", "removed"): (Health.DEGRADED, Sync.OUT_OF_SYNC),
    ("cancelled-elsewhere", "same"): (Health.MISSING, Sync.OUT_OF_SYNC),
    ("cancelled-elsewhere", "new"): (Health.MISSING, Sync.OUT_OF_SYNC),
    ("cancelled-elsewhere", "removed"): (Health.MISSING, Sync.OUT_OF_SYNC),
}


@pytest.mark.parametrize(
    ("row", "column", "current", "want"),
    [c[:4] for c in CELLS],
    ids=[f"{c[0]}/{c[1]}" for c in CELLS],
)
def test_health_and_sync_of_every_cell(row: str, column: str, current: Any, want: Any) -> None:
    records = {current.name: record(current)} if current else {}
    (action,) = make_plan([want] if want else [], records, NOW).actions
    assert (health(action), sync(action)) == EXPECTED[(row, column)]


def test_paused_suspended_and_unknown_jobs() -> None:
    paused = attempt(OLD, Phase.RUNNING, paused=True)
    (a,) = make_plan(
        [replace(OLD, spec=OLD.spec.model_copy(update={"suspend": True}))],
        {"bot": record(paused)},
        NOW,
    ).actions
    assert (health(a), sync(a)) == (Health.SUSPENDED, Sync.SYNCED)
    missed = attempt(OLD, Phase.RUNNING, misses=1)
    (a,) = make_plan([OLD], {"bot": record(missed)}, NOW).actions
    assert health(a) is Health.UNKNOWN


def test_drift_and_degraded_never_read_as_in_sync() -> None:
    drift = make_plan([OLD], {"bot": record(attempt(OLD, Phase.CANCELLED))}, NOW)
    lines = "\n".join(plan_lines(drift, Styler(False)))
    assert "Reality matches" not in lines
    assert "No changes to apply. Reality does not match the specs: 1 drifted (bot)." in lines
    assert detailed_exit(verdict(drift.actions)) == EXIT_ATTENTION
    bad = make_plan([OLD], {"bot": record(attempt(OLD, Phase.FAILED, error="bad data"))}, NOW)
    assert verdict(bad.actions).degraded == ("bot",)
    assert detailed_exit(verdict(bad.actions)) == EXIT_ATTENTION
    done = make_plan([OLD], {"bot": record(attempt(OLD, Phase.SUCCEEDED))}, NOW)
    assert detailed_exit(verdict(done.actions)) == EXIT_NO_CHANGES
    assert "Reality matches the specs." in "\n".join(plan_lines(done, Styler(False)))
    changed = make_plan([NEW], {"bot": record(attempt(OLD, Phase.FAILED, error="x"))}, NOW)
    assert detailed_exit(verdict(changed.actions)) == EXIT_CHANGES


def test_plan_exit_code_3_through_the_cli(tree: SpecTree) -> None:
    from reconciler.ledger import open_ledger
    from reconciler.model import RemoteJob

    tree.spec("bot")
    assert run(tree, "plan", "--offline", "--detailed-exitcode") == EXIT_CHANGES
    ledger = open_ledger(tree.root.parent / "state" / "ledger.db")
    plan = json.loads(_plan_json(tree))
    action = plan["actions"][0]
    attempt_id = ledger.insert_intent(
        name="bot",
        attempt=1,
        fingerprint=action["fingerprint"],
        tag=action["tag"],
        provider="together",
        inputs={},
        on_delete="cancel",
        spec_path=None,
        git_commit=None,
        namespace="default",
    )
    ledger.record_job(attempt_id, RemoteJob("ft-1", Phase.CANCELLED, "cancelled"))
    ledger.close()
    assert run(tree, "plan", "--offline", "--detailed-exitcode") == EXIT_ATTENTION


def _plan_json(tree: SpecTree) -> str:
    import contextlib

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert run(tree, "plan", "--offline", "--json") == 0
    return buf.getvalue()


def _rows(n: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        rows.append(
            {
                "name": f"support-bot-{i}-with-a-long-name",
                "provider": "together",
                "sync": "Synced" if i % 2 else "OutOfSync",
                "health": "Healthy" if i % 2 else "Degraded",
                "phase": "succeeded" if i % 2 else "failed",
                "provider_status": None,
                "remote_id": f"ft-0123456789abcdef-{i:04d}-9876-543210fedcba",
                "attempt": 1,
                "progress": None,
                "fine_tuned_model": "acme/Meta-Llama-3.1-8B-Instruct-Reference-support-v3-"
                "rcseu1-7cd4511c0e3-d0b824c1"
                if i % 2
                else None,
                "error": None if i % 2 else "the training file has 3 examples; 10 are needed",
                "git_commit": "e972eef48bec7a35dad9dc91dcd0baeece461a4b" + ("-dirty" if i else ""),
                "spec_path": "specs/x.yaml",
                "next_action": "no-op" if i % 2 else "degraded",
                "reason": "ok",
            }
        )
    return rows


def test_status_table_fits_80_columns_one_line_per_spec() -> None:
    lines = table_lines(_rows(5), Styler(False), 80)
    assert len(lines) == 6  # a header and a line per spec: nothing wraps
    assert all(len(line) <= 80 for line in lines), "\n".join(lines)
    header = lines[0].split()
    assert header[:3] == ["NAME", "SYNC", "HEALTH"] and header[-1] == "DETAIL"
    assert "OutOfSync" in lines[1] and "Degraded" in lines[1]


def test_status_table_at_200_columns_and_off_a_terminal_shows_every_column() -> None:
    for width in (200, None):
        lines = table_lines(_rows(3), Styler(False), width)
        header = lines[0]
        assert header.split() == [
            "NAME",
            "SYNC",
            "HEALTH",
            "PHASE",
            "PROVIDER",
            "JOB",
            "COMMIT",
            "DETAIL",
        ]
        start = header.index("COMMIT")
        # each value sits under its own header: the commit under COMMIT, not the sync
        assert lines[1][start:].startswith("e972eef ")
        assert lines[2][start:].startswith("e972eef-dirty")
        assert lines[1][header.index("SYNC") :].startswith("OutOfSync")
    off = table_lines(_rows(2), Styler(False), None)
    assert "…" not in "\n".join(off)  # nothing cut for grep
    assert "rcseu1-7cd4511c0e3-d0b824c1" in off[2]


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("how", ["flag", "env"])
def test_no_color_means_no_escape_codes_at_all(how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if how == "env":
        monkeypatch.setenv("NO_COLOR", "1")
    stream = Tty()
    out = console(stream, no_color=how == "flag")
    assert out.color_system is None
    out.print("[bold]bold[/] [dim]dim[/] [green]green[/]")
    plan = make_plan([OLD], {}, NOW)
    from reconciler.render import print_plan

    print_plan(plan, out)
    assert not ANSI.search(stream.getvalue()), repr(stream.getvalue())
    monkeypatch.delenv("NO_COLOR", raising=False)
    coloured = Tty()
    console(coloured).print("[bold]x[/]")
    assert ANSI.search(coloured.getvalue())  # the control: a terminal does get colour


def test_money_keeps_the_precision_a_refusal_needs() -> None:
    assert usd(0) == "$0.00" and usd(12.5) == "$12.50" and usd(1234.567) == "$1,234.57"
    assert usd(0.0042) == "$0.0042" and usd(0.0001) == "$0.0001" and usd(0.5) == "$0.50"
    cheap = replace(desired("a"), estimated_cost_usd=0.0004)
    dear = replace(desired("b"), estimated_cost_usd=0.0003)
    plan = make_plan([cheap, dear], {}, NOW, max_cost=0.0005)
    refused = plan.action("b")
    assert refused is not None and refused.refused == (
        "estimate $0.0003 would take new spend to $0.0007, over --max-cost $0.0005"
    )


@pytest.mark.parametrize("value", ["nan", "-1", "inf", "ten"])
def test_max_cost_must_be_a_finite_amount(
    value: str, tree: SpecTree, capsys: pytest.CaptureFixture[str]
) -> None:
    tree.spec("bot")
    with pytest.raises(SystemExit) as exit_:
        run(tree, "plan", "--offline", f"--max-cost={value}")
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--max-cost" in err and value in err


def test_usage_errors_are_one_line_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    from reconciler.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["plna"])
    assert exit_.value.code == 1
    assert capsys.readouterr().err == (
        "error: reconciler: unknown command 'plna' (did you mean `plan`?)\n"
    )


def test_plan_out_markdown_is_refused_with_the_way_to_do_it(
    tree: SpecTree, capsys: pytest.CaptureFixture[str]
) -> None:
    tree.spec("bot")
    out = tree.root.parent / "plan.md"
    assert run(tree, "plan", "--offline", "--format", "markdown", "--out", str(out)) == 1
    err = capsys.readouterr().err
    assert "--format markdown >" in err and err.count("\n") == 1 and not out.exists()


def test_a_plan_saved_before_the_ledger_existed_says_so() -> None:
    saved = SavedPlan(Plan((), {}, "", 0), "plan.json")
    with pytest.raises(StalePlanError) as err:
        saved.check(Plan((), {}, "9f2c", 3))
    assert "lineage )" not in str(err.value) and "before the ledger existed" in str(err.value)


def test_unchanged_specs_are_one_line_unless_asked(tree: SpecTree) -> None:
    plan = make_plan(
        [desired("a"), desired("b"), NEW],
        {
            "a": record(attempt(desired("a"), Phase.SUCCEEDED)),
            "b": record(attempt(desired("b"), Phase.RUNNING)),
            "bot": record(attempt(OLD, Phase.SUCCEEDED)),
        },
        NOW,
    )
    quiet = plan_lines(plan, Styler(False))
    assert "2 unchanged (1 no-op, 1 wait); --show-unchanged lists them." in quiet
    assert not any(line.strip().startswith("no-op") for line in quiet)
    loud = plan_lines(plan, Styler(False), show_unchanged=True)
    assert any(re.match(r"\s+no-op\s+a\s", line) for line in loud)


# -- renames ---------------------------------------------------------------------


def renamed(old: str = "bot", new: str = "bot-v2", **over: Any) -> Any:
    d = desired(new, **over)
    return replace(d, previous_names=(old,))


def test_a_renamed_spec_takes_the_old_job_over_without_a_cancel() -> None:
    running = attempt(OLD, Phase.RUNNING)
    plan = make_plan([renamed()], {"bot": record(running)}, NOW)
    (action,) = plan.actions  # no cancel of "bot", no create of "bot-v2"
    assert (action.name, action.moved_from, action.kind) == ("bot-v2", "bot", Kind.WAIT)
    assert action.is_change and action.current is not None
    assert action.current.remote_id == running.remote_id
    lines = plan_lines(plan, Styler(False))
    assert any("~ moved     bot → bot-v2" in line for line in lines), lines
    changed = make_plan(
        [renamed(hyperparameters={"epochs": 3, "learning_rate": 2e-5})],
        {"bot": record(running)},
        NOW,
    )
    (action,) = changed.actions
    assert (action.kind, action.moved_from) == (Kind.REPLACE, "bot")


def test_a_previous_name_that_is_still_a_spec_is_not_moved() -> None:
    plan = make_plan([OLD, renamed()], {"bot": record(attempt(OLD, Phase.SUCCEEDED))}, NOW)
    kinds = {a.name: (a.kind, a.moved_from) for a in plan.actions}
    assert kinds == {"bot": (Kind.NOOP, None), "bot-v2": (Kind.CREATE, None)}


def test_the_ledger_renames_attempts_past_the_new_names_numbers(tmp_path: Path) -> None:
    from reconciler.ledger import open_ledger

    ledger = open_ledger(tmp_path / "ledger.db")

    def intent(name: str, n: int, tag: str) -> int:
        return ledger.insert_intent(
            name=name,
            attempt=n,
            fingerprint="f" * 64,
            tag=tag,
            provider="together",
            inputs={},
            on_delete="cancel",
            spec_path=None,
            git_commit=None,
            namespace="default",
        )

    intent("new", 1, "rcaaaa-00000000001")
    ledger.forget("new", "spec removed")
    intent("old", 1, "rcaaaa-00000000002")
    intent("old", 2, "rcaaaa-00000000003")
    ledger.rename("old", "new", "metadata.previous_names")
    records = ledger.records()
    assert "old" not in records
    assert [a.attempt for a in records["new"].attempts] == [2, 3]
    assert [a.tag for a in records["new"].attempts] == ["rcaaaa-00000000002", "rcaaaa-00000000003"]
    assert any("old → new" in e["message"] for e in ledger.events("new"))
    ledger.close()


# -- targeting and --replace --------------------------------------------------------


def test_targets_are_globs_and_bring_their_upstream_along() -> None:
    up = desired("base")
    down = desired("chat-tuned", **{"from": {"job": "base"}})
    other = desired("chat-other")
    jobs = [up, down, other]
    pick = chooser(Selection(targets=("chat-t*",)), jobs, ["old-job"])
    assert [n for n in ("base", "chat-tuned", "chat-other", "old-job") if pick(n)] == [
        "base",
        "chat-tuned",
    ]
    pick = chooser(Selection(excludes=("chat-*",)), jobs, ["old-job"])
    assert [n for n in ("base", "chat-tuned", "chat-other", "old-job") if pick(n)] == [
        "base",
        "old-job",
    ]
    with pytest.raises(ConfigError, match="--exclude 'nope' matches no spec"):
        chooser(Selection(excludes=("nope",)), jobs, [])
    with pytest.raises(ConfigError, match="--replace 'old-job': no spec of that name"):
        chooser(Selection(replace=("old-job",)), jobs, ["old-job"])


def test_replace_forces_a_new_attempt_of_a_finished_or_running_job() -> None:
    for phase in (Phase.SUCCEEDED, Phase.FAILED, Phase.RUNNING, Phase.CANCELLED):
        cur = attempt(OLD, phase, error="bad data" if phase is Phase.FAILED else None)
        plan = make_plan([OLD], {"bot": record(cur)}, NOW, force=frozenset({"bot"}))
        (action,) = plan.actions
        assert action.kind is Kind.REPLACE and action.attempt == 2, phase
        assert "--replace asked" in action.reason
    plan = make_plan([OLD], {"bot": record(attempt(OLD, Phase.SUCCEEDED))}, NOW)
    assert plan.actions[0].kind is Kind.NOOP  # and without it, nothing happens


def test_previous_names_must_be_unambiguous(
    tree: SpecTree, capsys: pytest.CaptureFixture[str]
) -> None:
    def spec(name: str, previous: list[str]) -> None:
        path = tree.spec(name)
        doc = json.loads(path.read_text())
        doc["metadata"]["previous_names"] = previous
        path.write_text(json.dumps(doc, indent=2))

    spec("alpha", ["old"])
    spec("beta", ["old", "gamma"])
    spec("gamma", [])
    assert run(tree, "validate") == 1
    err = capsys.readouterr().err
    assert "beta.yaml" in err and "metadata.previous_names: 'old' is also a previous name" in err
    assert "'gamma' is still a spec" in err
