"""Spec loading and validation: every problem is file:line: field: message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import SpecTree, spec_yaml

from reconciler.errors import SpecError
from reconciler.fingerprint import fingerprint, training_inputs
from reconciler.loader import load_file, load_tree
from reconciler.spec import json_schema
from reconciler.specparse import MAX_SPEC_BYTES
from reconciler.validation import desired_state

GOOD = """\
apiVersion: reconciler/v1
kind: FineTuneJob
metadata:
  name: bot
spec:
  provider: together
  model: meta-llama/Meta-Llama-3.1-8B-Instruct-Reference
  training_file: data/train.jsonl
  hyperparameters:
    epochs: 3
    learning_rate: 1e-5
"""


def errors_of(tree: SpecTree, text: str, name: str = "bot.yaml") -> list[str]:
    tree.raw(name, text)
    state = desired_state(load_tree([tree.root]), tree.root)
    return [e.render().replace(str(tree.root) + "/", "") for e in state.errors]


def test_a_good_spec_loads_with_yaml_12_floats(tree: SpecTree) -> None:
    tree.raw("bot.yaml", GOOD)
    specs = load_tree([tree.root])
    assert not specs.errors
    hp = specs.specs["bot"].job.spec.hyperparameters
    assert hp.learning_rate == 1e-5 and isinstance(hp.learning_rate, float)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("    epochs: 3", "    epochz: 3"),
            "bot.yaml:10: spec.hyperparameters.epochz: unknown key, did you mean 'epochs'?",
        ),
        (
            ("  provider: together", "  provider: togther"),
            "bot.yaml:6: spec.provider: unknown provider 'togther', did you mean 'together'? "
            "(built in: azure-openai, fireworks, local, mistral, nebius, openai, together; a "
            "profile is declared under `providers:` "
            "in reconciler.yaml)",
        ),
        (
            ("    epochs: 3", "    epochs: three"),
            "bot.yaml:10: spec.hyperparameters.epochs: Input should be a valid integer",
        ),
        (
            ("    epochs: 3", "    epochs: 0"),
            "bot.yaml:10: spec.hyperparameters.epochs: Input should be greater than or equal to 1",
        ),
        (
            ("  name: bot", "  name: Bot_1"),
            "bot.yaml:4: metadata.name: String should match pattern",
        ),
        (
            ("  model: meta-llama/Meta-Llama-3.1-8B-Instruct-Reference\n", ""),
            "bot.yaml:5: spec.model: required key is missing",
        ),
        (
            ("kind: FineTuneJob", "kind: FineTune"),
            "bot.yaml:2: kind: Input should be 'FineTuneJob'",
        ),
        (
            ("  training_file: data/train.jsonl", "  training_file: ../../etc/passwd"),
            "bot.yaml:8: spec.training_file: '../../etc/passwd' resolves outside the specs root",
        ),
        (
            ("  training_file: data/train.jsonl", "  training_file: /etc/passwd"),
            "bot.yaml:8: spec.training_file: must be a path relative to this file",
        ),
        (
            ("  training_file: data/train.jsonl", "  training_file: data/none.jsonl"),
            "bot.yaml:8: spec.training_file: data file not found",
        ),
        (
            ("spec:\n", "spec:\n  dpo: {beta: 0.1}\n"),
            "bot.yaml:5: spec: dpo: settings given but method is not 'dpo'",
        ),
        (
            ("    epochs: 3", "    epochs: 3\n    epochs: 4"),
            "bot.yaml:11: duplicate key 'epochs' (first at line 10)",
        ),
        (("  name: bot", "  name: bot\n  labels: [a, b"), "bot.yaml:"),
    ],
)
def test_each_mistake_is_one_line_with_file_line_and_field(
    tree: SpecTree, change: tuple[str, str], expected: str
) -> None:
    old, new = change
    assert old in GOOD
    errs = errors_of(tree, GOOD.replace(old, new))
    assert len(errs) >= 1
    assert errs[0].startswith(expected), errs
    assert all("\n" not in e for e in errs)


def test_a_bad_data_record_names_its_line(tree: SpecTree) -> None:
    tree.raw(
        "data/train.jsonl",
        '{"messages": [{"role": "user", "content": "hi"}]}\n{"messages": [{"role": "robot", "content": "x"}]}\n',
    )
    errs = errors_of(tree, GOOD)
    assert errs[0].startswith("data/train.jsonl:1:") or errs[0].startswith("data/train.jsonl:2:")
    assert "spec.training_file of" in errs[0]


def test_duplicate_job_names_across_files_point_at_both(tree: SpecTree) -> None:
    tree.raw("a.yaml", GOOD)
    errs = errors_of(tree, GOOD, "b.yaml")
    assert errs == ["b.yaml:4: metadata.name: duplicate job name 'bot' (first defined at a.yaml:4)"]


def test_multi_document_files_load_every_document(tree: SpecTree) -> None:
    tree.raw("two.yaml", GOOD + "---\n" + GOOD.replace("name: bot", "name: bot-2"))
    specs = load_tree([tree.root])
    assert sorted(specs.specs) == ["bot", "bot-2"]
    assert specs.specs["bot-2"].line == 13


def test_alias_bomb_is_refused_quickly(tree: SpecTree) -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 9):
        prev = chr(ord("a") + i - 1)
        cur = chr(ord("a") + i)
        bomb += f"{cur}: &{cur} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
    errs = errors_of(tree, bomb)
    assert "alias bomb" in errs[0]


def test_deep_nesting_is_refused_before_the_parser_sees_it(tree: SpecTree) -> None:
    errs = errors_of(tree, "spec: " + "[" * 30_000 + "]" * 30_000 + "\n")
    assert errs == ["bot.yaml:1: nesting deeper than 64 levels"]


def test_oversize_file_is_refused(tree: SpecTree) -> None:
    errs = errors_of(tree, "# " + "x" * MAX_SPEC_BYTES + "\n")
    assert errs[0].startswith("bot.yaml: file is") and "over the" in errs[0]


def test_unsafe_tags_binary_and_bad_encoding(tree: SpecTree) -> None:
    assert "unsupported YAML tag" in errors_of(tree, "a: !!python/object:os.system ls\n")[0]
    (tree.root / "bot.yaml").write_bytes(b"apiVersion: reconciler/v1\nkind: \xff\xfe\n")
    assert errors_of(
        tree, None or (tree.root / "bot.yaml").read_bytes().decode("latin-1")
    )  # still one line
    (tree.root / "bot.yaml").write_bytes(b"apiVersion: reconciler/v1\nkind: \xff\n")
    _specs, errs = load_file(tree.root / "bot.yaml")
    assert [str(e).split(": ", 1)[1] for e in errs] == ["not valid UTF-8"] and errs[0].line == 2
    (tree.root / "bot.yaml").write_bytes(b"a: 1\n\x00\x01\x02")
    _, errs = load_file(tree.root / "bot.yaml")
    assert "binary" in errs[0].message


def test_from_must_name_a_spec_and_must_not_loop(tree: SpecTree) -> None:
    tree.spec("a", **{"from": {"job": "b"}})
    tree.spec("b", **{"from": {"job": "a"}})
    tree.spec("c", **{"from": {"job": "nope"}})
    state = desired_state(load_tree([tree.root]), tree.root)
    text = [e.render() for e in state.errors]
    assert any("from: cycle a → b → a" in t for t in text)
    assert any("no spec named 'nope'" in t for t in text)


def test_the_committed_json_schema_is_current() -> None:
    path = Path(__file__).resolve().parents[1] / "schema" / "finetunejob-v1.json"
    committed = json.loads(path.read_text())
    assert committed == json.loads(json.dumps(json_schema())), (
        "schema/finetunejob-v1.json is stale: run `make schema`"
    )


def test_the_json_schema_accepts_examples_and_rejects_typos() -> None:
    import jsonschema
    import yaml

    from reconciler.project import PROJECT_FILE, ProjectFile

    schema = json_schema()
    project = ProjectFile.model_json_schema()
    root = Path(__file__).resolve().parents[1]
    for path in sorted((root / "examples").rglob("*.yaml")):
        if "ci" in path.relative_to(root / "examples").parts:
            continue  # CI workflows, not specs
        for doc in yaml.safe_load_all(path.read_text()):
            jsonschema.validate(doc, project if path.name == PROJECT_FILE else schema)
    bad = yaml.safe_load(GOOD.replace("epochs", "epochz"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


names = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
numbers = st.floats(min_value=1e-8, max_value=1.0, allow_nan=False)


@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=names,
    lr=numbers,
    epochs=st.integers(1, 50),
    label=st.text(st.characters(categories=("L", "N", "P", "Zs")), max_size=20),
)
def test_fingerprint_is_stable_across_formatting_and_labels(
    tree: SpecTree, name: str, lr: float, epochs: int, label: str
) -> None:
    hp = {"epochs": epochs, "learning_rate": lr}
    tree.raw("x.yaml", spec_yaml(name, hyperparameters=hp))
    first = load_tree([tree.root]).specs[name]
    # the same spec as block YAML, with a label and keys in another order
    block = (
        f"kind: FineTuneJob\napiVersion: reconciler/v1\nmetadata:\n  labels: {{l: {json.dumps(label, ensure_ascii=False)}}}\n  name: {json.dumps(name)}\n"
        f"spec:\n  hyperparameters: {{learning_rate: {lr!r}, epochs: {epochs}}}\n"
        "  training_file: data/train.jsonl\n  model: meta-llama/Meta-Llama-3.1-8B-Instruct-Reference\n  provider: together\n"
    )
    tree.raw("x.yaml", block)
    second = load_tree([tree.root]).specs[name]
    fp = [fingerprint(training_inputs(s.job.spec, "a" * 64, None, None)) for s in (first, second)]
    assert fp[0] == fp[1]


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=st.binary(max_size=400) | st.text(max_size=400))
def test_any_bytes_give_errors_or_specs_never_an_exception(
    tree: SpecTree, junk: bytes | str
) -> None:
    path = tree.root / "fuzz.yaml"
    path.write_bytes(junk if isinstance(junk, bytes) else junk.encode())
    _specs, errors = load_file(path)
    for err in errors:
        assert isinstance(err, SpecError)
        assert "\n" not in err.render()


NEW_KEYS = (
    GOOD
    + """\
  train_on_inputs: false
  train_vision: false
  wandb:
    project: support
    name: bot-v3
    entity: acme
    base_url: https://wandb.example.test
    api_key: {env: WANDB_API_KEY}
  huggingface:
    model: acme/llama-support
    revision: main
    output_repo: acme/bot-v3
    token: {env: HF_TOKEN}
"""
)


def test_the_wandb_huggingface_and_sft_keys_load(tree: SpecTree) -> None:
    tree.raw("bot.yaml", NEW_KEYS)
    state = desired_state(load_tree([tree.root]), tree.root)
    assert not state.errors, [e.render() for e in state.errors]
    spec = state.jobs[0].spec
    assert spec.wandb is not None and spec.wandb.api_key is not None
    assert spec.wandb.api_key.env == "WANDB_API_KEY"
    assert spec.huggingface is not None and spec.huggingface.output_repo == "acme/bot-v3"
    assert spec.train_on_inputs is False


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("    api_key: {env: WANDB_API_KEY}", "    api_key: wandb-literal"), "spec.wandb.api_key"),
        (("    token: {env: HF_TOKEN}", "    token: {env: 1BAD}"), "spec.huggingface.token.env"),
        (("    project: support", "    projekt: support"), "spec.wandb.projekt"),
        (("  train_on_inputs: false", "  train_on_inputs: sometimes"), "spec.train_on_inputs"),
        (("  train_on_inputs: false", "  method: dpo\n  train_on_inputs: false"), "spec: "),
        (("    base_url: https://wandb.example.test", "    base_url: wandb.test"), "base_url"),
    ],
)
def test_the_new_keys_refuse_mistakes(
    tree: SpecTree, change: tuple[str, str], expected: str
) -> None:
    old, new = change
    assert old in NEW_KEYS
    errs = errors_of(tree, NEW_KEYS.replace(old, new))
    assert errs and expected in errs[0], errs
    assert "wandb-literal" not in "\n".join(errs)  # a literal secret is never echoed


def test_from_takes_a_step_and_excludes_a_hugging_face_start(tree: SpecTree) -> None:
    tree.raw("base.yaml", GOOD.replace("name: bot", "name: base"))
    tree.raw("bot.yaml", GOOD + "  from: {job: base, step: 40}\n")
    state = desired_state(load_tree([tree.root]), tree.root)
    assert not state.errors and state.jobs[1].spec.from_ is not None
    assert [j.spec.from_.step for j in state.jobs if j.spec.from_] == [40]
    both = GOOD + "  from: {job: base}\n  huggingface: {model: acme/m}\n"
    assert "not both" in errors_of(tree, both)[0]
    assert "spec.from.step" in errors_of(tree, GOOD + "  from: {job: base, step: 0}\n")[0]


def test_wandb_and_the_hugging_face_output_never_change_the_fingerprint(tree: SpecTree) -> None:
    def fp(text: str) -> str:
        tree.raw("bot.yaml", text)
        job = load_tree([tree.root]).specs["bot"].job.spec
        return fingerprint(training_inputs(job, "a" * 64, None, None))

    plain = fp(GOOD)
    assert fp(GOOD + "  wandb: {project: p, name: n}\n") == plain
    assert fp(GOOD + "  huggingface: {output_repo: a/b, token: {env: T}}\n") == plain
    assert fp(GOOD + "  train_on_inputs: true\n") != plain  # these define the training
    assert fp(GOOD + "  huggingface: {model: a/b}\n") != plain
    assert fp(GOOD + "  train_vision: true\n") != plain
