"""Validation rules across specs and files: what ``from`` may point at, a validation file's
format, and what ``validate`` says about the specs tree itself (file types, empty
folders, a file given as the folder)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import CONVERSATION, SpecTree, spec_yaml

from reconciler.cli import main
from reconciler.loader import load_tree
from reconciler.providers import CATALOG
from reconciler.validation import desired_state

MISTRAL = {"provider": "mistral", "model": "open-mistral-7b", "hyperparameters": {"epochs": 1}}
OPENAI = {"provider": "openai", "model": "gpt-4.1-mini-2025-04-14", "hyperparameters": {}}


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("RECONCILER_SPECS", "RECONCILER_LEDGER", "TOGETHER_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")


def errors(tree: SpecTree) -> list[str]:
    state = desired_state(load_tree([tree.root]), tree.root)
    return [e.render().replace(str(tree.root) + "/", "") for e in state.errors]


def validate(tree: SpecTree, *args: str, specs: Path | None = None) -> int:
    ledger = tree.root.parent / "state" / "ledger.db"
    return main(["--specs", str(specs or tree.root), "--ledger", str(ledger), "validate", *args])


# -- from: {job: X} ----------------------------------------------------------------------


def test_mistral_from_is_a_validate_error_naming_provider_and_field(tree: SpecTree) -> None:
    tree.spec("base", **MISTRAL)
    tree.spec("next", **MISTRAL, **{"from": {"job": "base"}})
    errs = errors(tree)
    assert len(errs) == 1, errs
    assert errs[0].startswith("next.yaml:")
    assert ": spec.from: mistral cannot start from another job's model (" in errs[0]
    assert "together" in errs[0] and "openai" in errs[0]  # who can, from the catalog


def test_mistral_from_stops_plan_and_apply_before_anything_is_sent(
    tree: SpecTree, capsys: pytest.CaptureFixture[str]
) -> None:
    tree.spec("base", **MISTRAL)
    tree.spec("next", **MISTRAL, **{"from": {"job": "base"}})
    ledger = str(tree.root.parent / "state" / "ledger.db")
    for command in (["plan", "--offline"], ["apply", "--yes"]):
        assert main(["--specs", str(tree.root), "--ledger", ledger, *command]) == 1
        err = capsys.readouterr().err
        assert "spec.from: mistral cannot start from another job's model" in err
        assert "internal error" not in err and "ValueError" not in err
    assert not Path(ledger).exists()


def test_from_rule_is_catalog_data_not_a_provider_name() -> None:
    able = {name: p.capabilities.continues_from_job for name, p in CATALOG.items()}
    assert able == {
        "together": True,
        "openai": True,
        "mistral": False,
        "fireworks": True,
        "azure-openai": True,
        "nebius": False,
        "local": True,  # `from:` trains on from the upstream run's adapter
    }


def test_from_a_job_at_another_provider_is_refused(tree: SpecTree) -> None:
    tree.data("data/train.jsonl", [CONVERSATION] * 10)  # openai needs 10 examples
    tree.spec("base", **OPENAI)
    tree.spec("next", **{"from": {"job": "base"}})  # together
    errs = errors(tree)
    assert len(errs) == 1, errs
    line = (tree.root / "next.yaml").read_text().splitlines().index('    "from": {') + 2
    assert errs[0].startswith(f"next.yaml:{line}: spec.from.job: 'base' trains at openai, ")
    assert "this job at together" in errs[0]


def test_from_at_the_same_provider_is_fine(tree: SpecTree) -> None:
    tree.spec("base")
    tree.spec("next", **{"from": {"job": "base"}})
    assert errors(tree) == []


# -- a validation file holds the training file's format ------------------------------------


def test_a_validation_file_in_another_format_is_refused(tree: SpecTree) -> None:
    tree.data("data/val.jsonl", [{"prompt": "2+2=", "completion": "4"}])
    tree.spec("bot", validation_file="data/val.jsonl")
    errs = errors(tree)
    assert len(errs) == 1, errs
    assert (
        ": spec.validation_file: the validation file is instruction (prompt/completion)"
        in (errs[0])
    )
    assert "the training file is conversational (messages) data" in errs[0]


def test_a_validation_file_in_the_same_format_is_fine(tree: SpecTree) -> None:
    tree.spec("bot", validation_file="data/train.jsonl")
    assert errors(tree) == []


# -- which files are specs -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["bot.yml", "bot.YAML", "bot.Yml", "bot.yaml"])
def test_yml_and_any_case_extensions_are_specs(
    tree: SpecTree, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    tree.raw(name, spec_yaml("bot"))
    assert validate(tree) == 0
    assert "1 spec(s) valid" in capsys.readouterr().out


def test_the_project_file_is_not_a_spec_however_the_file_system_spells_it(
    tree: SpecTree,
) -> None:
    tree.spec("bot")
    tree.raw("Reconciler.YAML", "apiVersion: reconciler/v1\nkind: Project\nnamespace: x\n")
    names = [p.name for p in load_tree([tree.root]).files]
    if (tree.root / "reconciler.yaml").exists():  # a case-insensitive file system
        assert names == ["bot.yaml"]
    else:  # another file, neither ignored nor taken for the project file
        assert names == ["Reconciler.YAML", "bot.yaml"]
    (tree.root / "Reconciler.YAML").rename(tree.root / "reconciler.yaml")
    assert [p.name for p in load_tree([tree.root]).files] == ["bot.yaml"]


def test_a_named_folder_without_specs_is_an_error(
    tree: SpecTree, capsys: pytest.CaptureFixture[str]
) -> None:
    tree.spec("bot")
    empty = tree.root / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not a spec\n")
    assert validate(tree, str(empty)) == 1
    out = capsys.readouterr()
    assert "valid" not in out.out
    assert out.err.splitlines()[0] == (
        f"{empty}: no spec files in this folder (a spec file ends in .yaml or .yml)"
    )


def test_an_empty_specs_root_is_a_warning_not_a_failure(tree: SpecTree) -> None:
    from reconciler.source import SpecSource

    specs, state = SpecSource(tree.root).load_set()
    assert not specs.files and not state.errors
    assert state.warnings == [f"no spec files in {tree.root}/"]
    tree.spec("bot")
    assert SpecSource(tree.root).load_set()[1].warnings == []


def test_specs_given_a_file_says_so(tree: SpecTree, capsys: pytest.CaptureFixture[str]) -> None:
    path = tree.spec("bot")
    assert validate(tree, specs=path) == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        f"error: --specs {path} is a file; --specs takes the specs folder "
        f"(to check one file: reconciler validate {path})"
    ), err
