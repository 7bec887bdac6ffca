"""`provider: local`: real TRL + peft training on the CPU with a tiny random model and a
tokenizer built in code (no downloads), run by the driver as detached processes.

The three trainer runs start together (one fixture) so the suite pays the trainer's
import time (torch, transformers, trl: ~8 s) about once.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

for _module in ("torch", "trl", "peft", "transformers", "datasets"):
    pytest.importorskip(_module, reason="the local extra is not installed: pip install '.[local]'")

from reconciler.model import CreateRequest, Phase, RemoteJob  # noqa: E402
from reconciler.providers import CATALOG  # noqa: E402
from reconciler.providers.local.client import LocalDriver  # noqa: E402
from reconciler.providers.local.mapping import RunFacts, phase_of  # noqa: E402
from reconciler.providers.local.runs import Run, read_json, read_lines  # noqa: E402
from reconciler.providers.pool import DriverPool  # noqa: E402

pytestmark = [pytest.mark.process, pytest.mark.slow]

TIMEOUT = 90.0
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
ROWS = [
    {
        "messages": [
            {"role": "user", "content": f"what colour is thing {i}"},
            {"role": "assistant", "content": "the sky is blue"},
        ]
    }
    for i in range(8)
]


def build_tiny_model(folder: Path) -> None:
    """A ~40k-parameter random Llama and a 300-token BPE tokenizer trained on the data."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoModelForCausalLM, LlamaConfig, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<unk>", "<pad>", "<s>", "<|end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    corpus = [m["content"] for row in ROWS for m in row["messages"]] + ["<|user|><|assistant|>"]
    tok.train_from_iterator(corpus * 5, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="<|end|>",
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(folder)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=128,
        pad_token_id=fast.pad_token_id,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
    )
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)


def driver(runs: Path, delay: float = 0.0) -> LocalDriver:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_LOCAL")}
    if delay:
        env["RECONCILER_LOCAL_STEP_DELAY"] = str(delay)
    return LocalDriver(runs=runs, env=env)


def request(d: LocalDriver, data: Path, model: Path, tag: str, **options: Any) -> CreateRequest:
    sha = hashlib.sha256(data.read_bytes()).hexdigest()
    file = d.upload_file(data, sha)
    return CreateRequest(
        name="tiny",
        tag=tag,
        model=str(model),
        method="sft",
        training_file_id=file.id,
        lora={"r": 4, "alpha": 8},
        hyperparameters={"epochs": 2, "batch_size": 2, "learning_rate": 5e-3, "seed": 1},
        options=options,
    )


def wait(d: LocalDriver, job: str, done: Callable[[RemoteJob], bool]) -> RemoteJob:
    deadline = time.monotonic() + TIMEOUT
    while True:
        found = d.get_job(job)
        if done(found):
            return found
        if time.monotonic() > deadline:
            log = Run(d.runs, found.tag or "").attempt(int(job.rsplit(".")[1])) / "trainer.log"
            raise AssertionError(f"{job} stuck at {found}: {log.read_text()[-2000:]}")
        time.sleep(0.2)


SFT, CANCEL, KILL = "rc0000-0000000000a", "rc0000-0000000000b", "rc0000-0000000000c"


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("local")
    model = root / "tiny-llama"
    build_tiny_model(model)
    data = root / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    fast, slow = driver(root / "runs"), driver(root / "runs", delay=0.25)
    created = {
        SFT: fast.create_job(request(fast, data, model, SFT, save_steps=4)),
        # long enough to be stopped half-way, no periodic checkpoint: SIGTERM saves one
        CANCEL: slow.create_job(request(slow, data, model, CANCEL, max_steps=400, save_steps=1000)),
        KILL: slow.create_job(request(slow, data, model, KILL, max_steps=16, save_steps=3)),
    }
    return {"fast": fast, "slow": slow, "jobs": created, "data": data, "model": model}


def test_sft_with_lora_runs_to_success_with_metrics_and_an_adapter(jobs: dict[str, Any]) -> None:
    d: LocalDriver = jobs["fast"]
    job = jobs["jobs"][SFT]
    assert job.phase in (Phase.QUEUED, Phase.RUNNING) and job.tag == SFT
    done = wait(d, job.id, lambda j: j.phase.terminal)
    assert done.phase is Phase.SUCCEEDED, done
    assert done.progress is not None and done.progress.startswith("step 8/8")
    adapter = Path(done.fine_tuned_model or "")
    assert (adapter / "adapter_config.json").is_file()
    assert (adapter / "adapter_model.safetensors").is_file()
    losses = [m["loss"] for m in read_lines(Run(d.runs, SFT).metrics) if "loss" in m]
    assert len(losses) == 8 and losses[-1] < losses[0]
    assert [c.step for c in d.checkpoints(job.id)] == [4, 8]
    assert any("training on cpu" in e.message for e in d.job_events(job.id))


def test_the_driver_contract_reads_the_run_folders(jobs: dict[str, Any]) -> None:
    d: LocalDriver = jobs["fast"]
    listed = {j.id for j in d.list_jobs()}
    assert {f"{SFT}.1", f"{CANCEL}.1", f"{KILL}.1"} <= listed
    assert [j.id for j in d.find_jobs_by_tag(SFT)] == [f"{SFT}.1"]
    assert d.find_jobs_by_tag("rc0000-00000000fff") == []
    assert d.get_job(f"{SFT}.1").tag == SFT
    with pytest.raises(Exception, match="no local job"):
        d.get_job(f"{SFT}.9")
    config = read_json(Run(d.runs, SFT).config) or {}
    assert config["args"]["num_train_epochs"] == 2.0 and config["lora"]["r"] == 4


def test_cancel_stops_the_trainer_and_keeps_a_checkpoint(jobs: dict[str, Any]) -> None:
    d: LocalDriver = jobs["slow"]
    job = jobs["jobs"][CANCEL]
    wait(d, job.id, lambda j: (j.progress or "").startswith(("step 2/", "step 3/", "step 4/")))
    assert d.cancel_job(job.id).phase in (Phase.CANCELLING, Phase.CANCELLED)
    done = wait(d, job.id, lambda j: j.phase.terminal)
    assert done.phase is Phase.CANCELLED, done
    steps = [c.step or 0 for c in d.checkpoints(job.id)]
    assert len(steps) == 1 and 2 <= steps[0] < 400


def test_a_killed_trainer_fails_retryably_and_the_retry_resumes(jobs: dict[str, Any]) -> None:
    d: LocalDriver = jobs["slow"]
    job = jobs["jobs"][KILL]
    run = Run(d.runs, KILL)
    wait(d, job.id, lambda j: bool(run.complete_checkpoints()))
    record = read_json(run.attempt(1) / "process.json") or {}
    os.kill(record["pid"], signal.SIGKILL)
    died = wait(d, job.id, lambda j: j.phase.terminal)
    assert died.phase is Phase.FAILED and died.error_retryable, died
    saved = run.complete_checkpoints()[-1][0]
    assert saved >= 3
    retry = d.create_job(request(d, jobs["data"], jobs["model"], KILL, max_steps=16, save_steps=3))
    assert retry.id == f"{KILL}.2"
    done = wait(d, retry.id, lambda j: j.phase.terminal)
    assert done.phase is Phase.SUCCEEDED, done
    second = [m["step"] for m in read_lines(run.metrics) if m.get("attempt") == 2]
    assert second[0] == saved + 1 and second[-1] == 16
    assert any("resuming from checkpoint-" in e.message for e in d.job_events(retry.id))


def test_a_folder_without_a_process_is_queued_then_a_retryable_failure() -> None:
    young = RunFacts(None, started=False, alive=False, cancel_requested=False, age_s=1)
    assert phase_of(young)[0] is Phase.QUEUED
    old = RunFacts(None, started=False, alive=False, cancel_requested=False, age_s=1e4)
    assert phase_of(old)[0] is Phase.FAILED and phase_of(old)[3]


def test_the_pool_builds_the_local_driver_behind_its_switch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the pool hands the local driver the run's environment, not the process's
    monkeypatch.setenv("RECONCILER_LOCAL_RUNS", str(tmp_path / "not-this"))
    env = {"RECONCILER_LOCAL_ENABLE": "1", "RECONCILER_LOCAL_RUNS": str(tmp_path)}
    d = DriverPool(env).get("local")
    assert isinstance(d, LocalDriver) and d.runs == tmp_path
    assert CATALOG["local"].request_problems(
        CreateRequest("x", "t", "m", "sft", "f", hyperparameters={"batch_size": "max"})
    ) == ["hyperparameters.batch_size: local needs a number (no 'max')"]
