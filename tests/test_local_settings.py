"""`provider: local` without training: `reconciler.yaml`'s `local:` settings and their
variables, the plan's device/dtype/time estimate and price, GPU counting, `from:` rules,
model paths, and the weights check. None of it needs the `local` extra."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support import CONVERSATION, SpecTree, spec_yaml

from reconciler.cli import main
from reconciler.commands.workspace import Workspace
from reconciler.cost import estimate
from reconciler.loader import load_tree
from reconciler.model import DesiredJob, model_on_disk
from reconciler.project import load_project
from reconciler.providers.local import estimate as local_estimate
from reconciler.providers.local.client import LocalDriver
from reconciler.providers.local.runs import concurrency, gpu_count
from reconciler.source import use_project
from reconciler.spec import JobSpec
from reconciler.validation import desired_state

PROJECT = "apiVersion: reconciler/v1\nkind: Project\nnamespace: lab\n"
TINY = {  # a Llama config.json: 2 layers, hidden 32, vocab 300
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "vocab_size": 300,
    "tie_word_embeddings": False,
}


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> Any:
    for var in ("RECONCILER_SPECS", "RECONCILER_LEDGER", "CUDA_VISIBLE_DEVICES", "HF_HOME"):
        monkeypatch.delenv(var, raising=False)
    for var in ("RECONCILER_LOCAL_RUNS", "RECONCILER_LOCAL_CONCURRENCY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU, whatever this machine has
    monkeypatch.setenv("NO_COLOR", "1")
    yield
    local_estimate.configure(None)


def local_spec(tree: SpecTree, name: str, **spec: Any) -> Path:
    body = {"provider": "local", "model": "./tiny", "hyperparameters": {"epochs": 2}} | spec
    return tree.spec(name, **body)


def model_folder(root: Path, config: dict[str, Any] = TINY) -> Path:
    (root / "tiny").mkdir(parents=True, exist_ok=True)
    (root / "tiny" / "config.json").write_text(json.dumps(config))
    return root / "tiny"


def errors(tree: SpecTree) -> list[str]:
    use_project(tree.root)
    state = desired_state(load_tree([tree.root]), tree.root)
    return [e.render().replace(str(tree.root) + "/", "") for e in state.errors]


# -- reconciler.yaml `local:` ---------------------------------------------------------


def test_the_local_settings_become_the_drivers_variables(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "reconciler.yaml").write_text(
        PROJECT + "local:\n  runs: ../runs-here\n  concurrency: 3\n  gpu_hour_usd: 1.5\n"
    )
    project, problems = load_project(specs)
    assert problems == []
    assert project.local_env() == {
        "RECONCILER_LOCAL_RUNS": str((tmp_path / "runs-here").absolute()),
        "RECONCILER_LOCAL_CONCURRENCY": "3",
    }
    # the environment wins over the file; the file over the default beside the ledger
    ws = Workspace(specs, tmp_path / "state" / "ledger.db", True, env={})
    assert ws.env["RECONCILER_LOCAL_RUNS"] == str((tmp_path / "runs-here").absolute())
    ws = Workspace(specs, tmp_path / "l.db", True, env={"RECONCILER_LOCAL_CONCURRENCY": "7"})
    assert ws.env["RECONCILER_LOCAL_CONCURRENCY"] == "7"
    (specs / "reconciler.yaml").write_text(PROJECT)
    ws = Workspace(specs, tmp_path / "state" / "ledger.db", True, env={})
    assert ws.env["RECONCILER_LOCAL_RUNS"] == str(tmp_path / "state" / "runs")
    assert "RECONCILER_LOCAL_CONCURRENCY" not in ws.env


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        ("concurrency: 0", "local.concurrency"),
        ("gpu_hour_usd: -1", "local.gpu_hour_usd"),
        ("gpu_hour_usd: .nan", "local.gpu_hour_usd"),
        ("run: x", "local.run"),
    ],
)
def test_bad_local_settings_are_one_line_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], local: str, expected: str
) -> None:
    tree = SpecTree(tmp_path / "specs")
    tree.spec("a")
    (tree.root / "reconciler.yaml").write_text(PROJECT + f"local:\n  {local}\n")
    code = main(["--specs", str(tree.root), "--ledger", str(tmp_path / "l.db"), "validate"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    line = next(x for x in err.splitlines() if "reconciler.yaml" in x)
    assert f"reconciler.yaml:5: {expected}" in line, err


# -- the plan's estimate ---------------------------------------------------------------


def job_spec(**spec: Any) -> JobSpec:
    body = {"provider": "local", "model": "./tiny", "training_file": "d.jsonl"} | spec
    return JobSpec.model_validate(body)


def test_the_estimate_names_device_dtype_and_time_and_prices_the_slot_hour(
    tmp_path: Path,
) -> None:
    model_folder(tmp_path)
    spec_file = str(tmp_path / "a.yaml")
    found = estimate(job_spec(hyperparameters={"epochs": 2}), 1000, None, spec_file)
    assert found is not None and found.usd == 0 and found.tokens == 2000
    # 2 × (attention 4·32·32 + mlp 3·32·64) + embeddings 2·300·32
    params = 2 * (4 * 32 * 32 + 3 * 32 * 64) + 2 * 300 * 32
    assert local_estimate.parameters(TINY) == params == 39_680
    assert found.basis.startswith("local: cpu, float32, ~20 s (~2,000 tokens, 39.7k params")
    assert found.basis.endswith("no local.gpu_hour_usd set")
    local_estimate.configure(3.6)  # one dollar per 1000 s
    big = estimate(job_spec(model="org/Model-7B", lora=False), 1_000_000, None, spec_file)
    assert big is not None and "7B params" in big.basis and "$3.6/slot-hour" in big.basis
    seconds = 20 + 6 * 7e9 * 3_000_000 / 2e10  # 3 epochs (TRL's default), full fine-tune
    assert big.usd == pytest.approx(seconds / 1000, rel=1e-3)
    assert "~1.7 h" in big.basis or "h (" in big.basis


def test_gpus_are_counted_without_torch_and_set_the_default_concurrency(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert gpu_count({"CUDA_VISIBLE_DEVICES": "0,1"}) == 2
    assert gpu_count({"CUDA_VISIBLE_DEVICES": ""}) == 0
    assert gpu_count({"CUDA_VISIBLE_DEVICES": "-1"}) == 0
    assert concurrency({"CUDA_VISIBLE_DEVICES": "0,1,2"}) == 3
    assert concurrency({"CUDA_VISIBLE_DEVICES": ""}) == 1
    assert concurrency({"CUDA_VISIBLE_DEVICES": "0,1", "RECONCILER_LOCAL_CONCURRENCY": "1"}) == 1
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert local_estimate.device({"CUDA_VISIBLE_DEVICES": "0,1"}) == ("cuda (2 GPUs)", "bfloat16")
    found = estimate(job_spec(model="org/Model-1B"), 10_000, None, "a.yaml")
    assert found is not None and found.basis.startswith("local: cuda (2 GPUs), bfloat16")


def test_a_model_of_unknown_size_says_so_instead_of_a_time(tmp_path: Path) -> None:
    found = estimate(job_spec(model="./nowhere"), 100, None, str(tmp_path / "a.yaml"))
    assert found is not None and "time unknown" in found.basis and found.usd == 0


def test_a_hub_model_is_read_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshot = tmp_path / "hub" / "models--org--tiny" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(json.dumps(TINY))
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    found = estimate(job_spec(model="org/tiny"), 100, None, "a.yaml")
    assert found is not None and "39.7k params" in found.basis


# -- model paths, the weights check and from: -----------------------------------------


def test_a_model_path_is_read_from_the_spec_files_folder(tmp_path: Path) -> None:
    spec_file = tmp_path / "specs" / "a.yaml"
    assert model_on_disk("./tiny", spec_file) == tmp_path / "specs" / "tiny"
    assert model_on_disk("../models/q", spec_file) == tmp_path / "models" / "q"
    assert model_on_disk("/abs/model", spec_file) == Path("/abs/model")
    assert model_on_disk("Qwen/Qwen2.5-0.5B", spec_file) is None


def test_preflight_finds_the_weights_or_says_where_to_put_them(tmp_path: Path) -> None:
    model_folder(tmp_path)
    driver = LocalDriver(runs=tmp_path / "runs", env={"HF_HOME": str(tmp_path / "hf")})

    def problems(model: str) -> list[str]:
        spec = job_spec(model=model)
        return driver.preflight(DesiredJob("a", spec, str(tmp_path / "a.yaml"), "0" * 64))

    assert problems("./tiny") == []
    assert problems("./empty") == [
        f"model: {tmp_path / 'empty'} holds no model (a folder with config.json and weights)"
    ]
    (message,) = problems("org/absent")
    assert message.startswith("model: 'org/absent' is not in the Hugging Face cache")
    assert (
        f"HF_HOME={tmp_path / 'hf'}" in message and "huggingface-cli download org/absent" in message
    )


def test_local_jobs_chain_with_from_on_the_same_base(tmp_path: Path) -> None:
    tree = SpecTree(tmp_path / "specs")
    model_folder(tree.root)
    local_spec(tree, "first")
    local_spec(tree, "second", **{"from": {"job": "first", "step": 4}})
    assert errors(tree) == []
    local_spec(tree, "third", model="org/other", **{"from": {"job": "first"}})
    assert errors(tree) == [
        "third.yaml:9: spec.model: 'first' trains a LoRA adapter on './tiny': a job "
        "continuing it trains on the same base (model: ./tiny)"
    ]
    # a full fine-tune's output is a whole model: any base may follow it
    local_spec(tree, "first", lora=False)
    assert errors(tree) == []


def test_what_local_cannot_express_is_refused_naming_the_field(tmp_path: Path) -> None:
    tree = SpecTree(tmp_path / "specs")
    local_spec(
        tree,
        "a",
        hyperparameters={"learning_rate_multiplier": 2.0},
        wandb={"project": "p"},
        options={"flash": True},
    )
    found = errors(tree)
    assert any(
        "spec.hyperparameters.learning_rate_multiplier: local takes an absolute" in e for e in found
    ), found
    assert any("spec.wandb.project" in e and "no equivalent at local" in e for e in found), found
    assert any("spec.options.flash: no equivalent at local" in e for e in found), found
    assert all(e.startswith("a.yaml:") for e in found)


def test_the_project_files_local_section_reaches_the_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = SpecTree(tmp_path / "specs")
    model_folder(tree.root)
    (tree.root / "reconciler.yaml").write_text(PROJECT + "local:\n  gpu_hour_usd: 2\n")
    (tree.root / "a.yaml").write_text(spec_yaml("a", provider="local", model="./tiny"))
    tree.data("data/train.jsonl", [CONVERSATION] * 40)
    code = main(["--specs", str(tree.root), "--ledger", str(tmp_path / "l.db"), "plan"])
    out = capsys.readouterr().out
    assert code == 0
    assert "cost: local: cpu, float32, ~20 s" in out and "$2/slot-hour" in out, out
    assert "(local, new attempt 1, ~$0.011)" in out, out


@pytest.mark.process
def test_cancel_kills_a_trainer_that_ignores_sigterm_once_the_grace_is_over(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    from reconciler.model import Phase
    from reconciler.providers.local.runs import Run, process_record, write_json

    now = [1_000.0]
    driver = LocalDriver(runs=tmp_path / "runs", env={}, clock=lambda: now[0])
    tag = "rc0000-0000000000k"
    folder = Run(driver.runs, tag).attempt(1)
    folder.mkdir(parents=True)
    write_json(folder / "attempt.json", {"created_at": now[0], "attempt": 1})
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(1, flush=True); time.sleep(120)"
    child = subprocess.Popen(
        [sys.executable, "-c", stubborn], stdout=subprocess.PIPE, start_new_session=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline()
        write_json(folder / "process.json", process_record(child.pid))
        write_json(folder / "slot.json", {"slot": 0, "at": now[0]})
        job = f"{tag}.1"
        assert driver.get_job(job).phase is Phase.RUNNING
        assert driver.cancel_job(job).phase is Phase.CANCELLING
        assert child.poll() is None  # SIGTERM ignored: still cancelling
        now[0] += 29
        assert driver.get_job(job).phase is Phase.CANCELLING and child.poll() is None
        now[0] += 2  # past the 30 s grace: the next look sends SIGKILL
        driver.get_job(job)
        assert child.wait(10) == -signal.SIGKILL
        assert driver.get_job(job).phase is Phase.CANCELLED
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
