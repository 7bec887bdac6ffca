"""The CLI as a user meets it: exit codes, one-line errors, JSON, untouched ledger."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import SpecTree

from reconciler import tags
from reconciler.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (
        "TOGETHER_API_KEY",
        "OPENAI_API_KEY",
        "MISTRAL_API_KEY",
        "RECONCILER_SPECS",
        "RECONCILER_LEDGER",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")


def run(tree: SpecTree, *args: str) -> int:
    return main(
        [
            "--specs",
            str(tree.root),
            "--ledger",
            str(tree.root.parent / "state" / "ledger.db"),
            *args,
        ]
    )


def test_validate_ok(tree: SpecTree, capsys: pytest.CaptureFixture[str]) -> None:
    tree.spec("bot")
    assert run(tree, "validate") == 0
    assert "1 spec(s) valid" in capsys.readouterr().out


def test_typo_is_file_line_message_exit_1_no_traceback_no_ledger(
    tree: SpecTree, capsys: pytest.CaptureFixture[str]
) -> None:
    tree.raw(
        "bot.yaml",
        """\
        apiVersion: reconciler/v1
        kind: FineTuneJob
        metadata: {name: bot}
        spec:
          provider: together
          model: m
          training_file: data/train.jsonl
          hyperparameters: {epochs: 2, learning_rat: 0.1}
        """,
    )
    assert run(tree, "validate") == 1
    err = capsys.readouterr().err
    first = err.splitlines()[0]
    assert (
        first
        == f"{tree.root}/bot.yaml:8: spec.hyperparameters.learning_rat: unknown key, did you mean 'learning_rate'?"
        or first.endswith(
            "bot.yaml:8: spec.hyperparameters.learning_rat: unknown key, did you mean 'learning_rate'?"
        )
    )
    assert "Traceback" not in err
    assert not (tree.root.parent / "state").exists()
    # plan and apply refuse the same way, before touching anything
    assert run(tree, "plan", "--offline") == 1
    assert run(tree, "apply", "--yes") == 1
    assert not (tree.root.parent / "state").exists()


def test_bad_data_record_is_reported_at_its_line(
    tree: SpecTree, capsys: pytest.CaptureFixture[str]
) -> None:
    tree.spec("bot")
    with (tree.root / "data" / "train.jsonl").open("a") as f:
        f.write(
            '{"messages": [{"role": "user", "content": "hi"}, {"role": "user", "content": "again"}]}\n'
        )
    assert run(tree, "validate") == 1
    err = capsys.readouterr().err
    assert "data/train.jsonl:4: messages[1].role:" in err
    assert "Traceback" not in err


def test_plan_offline_json_detailed_exitcode_lists_a_create(
    tree: SpecTree, capsys: pytest.CaptureFixture[str]
) -> None:
    tree.spec("bot")
    assert run(tree, "plan", "--offline", "--json", "--detailed-exitcode") == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["format_version"] == "1.0"
    (action,) = doc["actions"]
    assert (action["name"], action["kind"], action["actions"]) == ("bot", "create", ["create"])
    assert tags.is_tag(action["tag"]) and len(action["tag"]) == 18
    assert tags.code_of(action["tag"]) == tags.namespace_code("default")
    assert doc["summary"]["changes"] == 1
    assert not (tree.root.parent / "state").exists()  # plan never writes


def test_plan_human_output_has_symbols_reasons_and_summary(
    tree: SpecTree, capsys: pytest.CaptureFixture[str]
) -> None:
    tree.spec("bot")
    assert run(tree, "plan", "--offline") == 0
    out = capsys.readouterr().out
    assert "+ create" in out and "bot" in out and "new spec" in out
    assert "Plan: 1 to create, 0 to replace, 0 to cancel" in out
    assert "\x1b[" not in out  # no colour off a TTY


def test_plan_out_file_round_trips(
    tree: SpecTree, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree.spec("bot")
    out = tmp_path / "plan.json"
    assert run(tree, "plan", "--offline", "--out", str(out)) == 0
    saved = json.loads(out.read_text())
    assert saved["actions"][0]["kind"] == "create"
    assert "apply --plan" in capsys.readouterr().out


def test_no_specs_folder_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--specs", str(tmp_path / "nope"), "plan", "--offline"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "specs folder" in err and "RECONCILER_SPECS" in err


def test_global_options_work_after_the_command(
    tree: SpecTree, capsys: pytest.CaptureFixture[str]
) -> None:
    tree.spec("bot")
    assert main(["validate", "--specs", str(tree.root)]) == 0


@pytest.mark.process
def test_env_vars_choose_specs_and_ledger(tree: SpecTree, monkeypatch: pytest.MonkeyPatch) -> None:
    tree.spec("bot")
    monkeypatch.setenv("RECONCILER_SPECS", str(tree.root))
    proc = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate"],
        capture_output=True,
        text=True,
        env={**os.environ, "RECONCILER_SPECS": str(tree.root)},
        cwd=tree.root.parent,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_apply_without_yes_and_without_a_terminal_refuses(
    tree: SpecTree, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    tree.spec("bot")
    monkeypatch.setattr(sys, "stdin", open(os.devnull))  # noqa: SIM115
    assert run(tree, "apply") == 1
    assert "pass --yes" in capsys.readouterr().err


def test_missing_key_names_the_variable_only_when_needed(
    tree: SpecTree, capsys: pytest.CaptureFixture[str]
) -> None:
    tree.spec("bot")
    assert run(tree, "plan") == 0  # nothing active: no provider needed, no key needed
    assert run(tree, "apply", "--yes") == 1
    out = capsys.readouterr()
    assert "TOGETHER_API_KEY is not set" in out.out + out.err
    assert "Traceback" not in out.err


def test_status_and_logs_on_an_empty_workspace(
    tree: SpecTree, capsys: pytest.CaptureFixture[str]
) -> None:
    tree.spec("bot")
    assert run(tree, "status", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["format_version"] == "1.0"
    assert doc["jobs"][0]["name"] == "bot" and doc["jobs"][0]["phase"] == "absent"
    assert run(tree, "logs", "bot") == 1
    assert "no job for 'bot'" in capsys.readouterr().err


@pytest.mark.process
def test_help_is_fast_and_lazy() -> None:
    """`reconciler --help` imports none of the heavy libraries."""
    code = (
        "import sys, runpy; sys.argv=['reconciler','--help']\n"
        "try:\n    runpy.run_module('reconciler', run_name='__main__')\n"
        "except SystemExit: pass\n"
        "heavy = [m for m in ('httpx','pydantic','yaml','sqlite_utils','structlog','rich','watchfiles') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in proc.stdout
    assert "plan" in proc.stdout and "exit codes" in proc.stdout


def test_every_example_validates_and_plans(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folders = sorted({p.parent for p in (ROOT / "examples").rglob("*.yaml")} | {ROOT / "specs"})
    folders = [f for f in folders if "ci" not in f.relative_to(ROOT).parts]
    assert len(folders) >= 3
    for folder in folders:
        args = ["--specs", str(folder), "--ledger", str(tmp_path / "none.db")]
        assert main([*args, "validate"]) == 0, capsys.readouterr().err
        assert main([*args, "plan", "--offline", "--detailed-exitcode"]) == 2
    assert not (tmp_path / "none.db").exists()


def test_saved_plan_is_refused_when_a_spec_changed(
    tree: SpecTree, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree.spec("bot")
    saved = tmp_path / "plan.json"
    assert run(tree, "plan", "--offline", "--out", str(saved)) == 0
    tree.spec("bot", hyperparameters={"epochs": 5})
    assert run(tree, "apply", "--plan", str(saved)) == 1
    err = capsys.readouterr().err
    assert "is stale: the inputs of 'bot' changed since it was made" in err
    assert err.count("\n") == 1


def test_saved_plan_is_refused_when_the_ledger_moved(
    tree: SpecTree, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from reconciler.ledger import open_ledger

    tree.spec("bot")
    ledger_path = tree.root.parent / "state" / "ledger.db"
    open_ledger(ledger_path).close()
    saved = tmp_path / "plan.json"
    assert run(tree, "plan", "--offline", "--out", str(saved)) == 0
    ledger = open_ledger(ledger_path)
    ledger.record_event("note", "someone else wrote")
    ledger.close()
    assert run(tree, "apply", "--plan", str(saved)) == 1
    assert "the ledger changed since it was made (serial 0 → 1)" in capsys.readouterr().err


def test_plan_shows_the_estimate_and_marks_what_the_budget_refuses(
    tree: SpecTree, capsys: pytest.CaptureFixture[str]
) -> None:
    tree.spec("cheap")
    tree.spec("dear", policy={"budget_usd": 0})
    assert run(tree, "plan", "--offline") == 0
    out = capsys.readouterr().out
    assert "refused by budget: estimate $" in out and "exceeds policy.budget_usd $0.00" in out
    assert "Estimated new spend:" in out and "1 refused by budget" in out
    assert run(tree, "plan", "--offline", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    refused = {a["name"]: a["refused"] for a in doc["actions"]}
    assert refused["cheap"] is None and refused["dear"].startswith("estimate $")
    assert all(a["estimate_basis"].startswith("offline estimate") for a in doc["actions"])
    assert doc["estimated_new_spend_usd"] > 0


def test_provider_rules_refuse_before_anything_is_uploaded(
    tree: SpecTree, capsys: pytest.CaptureFixture[str]
) -> None:
    from support import CONVERSATION

    tree.data("data/twelve.jsonl", [CONVERSATION] * 12)
    tree.data(
        "data/prefs.jsonl",
        [
            {
                "input": {"messages": [{"role": "user", "content": "hi"}]},
                "preferred_output": [{"role": "assistant", "content": "hello"}],
                "non_preferred_output": [{"role": "assistant", "content": "go away"}],
            }
        ],
    )
    tree.spec(
        "mi-dpo",
        provider="mistral",
        model="open-mistral-7b",
        training_file="data/prefs.jsonl",
        method="dpo",
        hyperparameters={"epochs": 1},
    )
    tree.spec(
        "oa-epochs",
        provider="openai",
        model="gpt-4.1-mini-2025-04-14",
        training_file="data/twelve.jsonl",
        hyperparameters={"epochs": 60, "learning_rate_multiplier": 1.5},
    )
    tree.spec(
        "oa-lr",
        provider="openai",
        model="gpt-4.1-mini-2025-04-14",
        training_file="data/twelve.jsonl",
        hyperparameters={"epochs": 2, "learning_rate": 1e-5},
    )
    assert run(tree, "validate") == 1
    err = capsys.readouterr().err
    assert "mi-dpo.yaml:" in err
    assert "spec.method: mistral supports supervised fine-tuning only (no DPO)" in err
    assert "prefs.jsonl:1: mistral does not accept preference data" in err
    assert "oa-epochs.yaml" in err and "spec.hyperparameters.epochs" in err and "openai" in err
    assert "oa-lr.yaml" in err and "learning_rate_multiplier" in err
    assert "Traceback" not in err
    assert run(tree, "apply", "--yes") == 1  # refused before any key or call is needed
    assert not (tree.root.parent / "state").exists()
