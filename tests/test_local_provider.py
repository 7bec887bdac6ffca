"""`provider: local`: real TRL + peft training on the CPU with a tiny random model and a
tokenizer built in code (no downloads), run by the driver as detached processes.

The trainer runs start together (one fixture, a concurrency above their number) so the
suite pays the trainer's import time (torch, transformers, trl: ~8 s) about once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

for _module in ("torch", "trl", "peft", "transformers", "datasets"):
    pytest.importorskip(_module, reason="the local extra is not installed: pip install '.[local]'")

from tiny_model import PREFERENCES, ROWS, build_tiny_model, stop_every_trainer, write_jsonl  # noqa: E402

from reconciler.model import CreateRequest, Phase, RemoteJob  # noqa: E402
from reconciler.providers import CATALOG  # noqa: E402
from reconciler.providers.local.client import LocalDriver  # noqa: E402
from reconciler.providers.local.mapping import RunFacts, phase_of  # noqa: E402
from reconciler.providers.local.runs import Run, read_json, read_lines  # noqa: E402
from reconciler.providers.pool import DriverPool  # noqa: E402

pytestmark = [pytest.mark.process, pytest.mark.slow]

TIMEOUT = 120.0


def driver(runs: Path, delay: float = 0.0, concurrency: int = 8) -> LocalDriver:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_LOCAL")}
    env["RECONCILER_LOCAL_CONCURRENCY"] = str(concurrency)
    if delay:
        env["RECONCILER_LOCAL_STEP_DELAY"] = str(delay)
    return LocalDriver(runs=runs, env=env)


def request(
    d: LocalDriver,
    data: Path,
    model: Path,
    tag: str,
    *,
    method: str = "sft",
    lora: Any = None,
    from_output: str | None = None,
    from_step: int | None = None,
    **options: Any,
) -> CreateRequest:
    sha = hashlib.sha256(data.read_bytes()).hexdigest()
    file = d.upload_file(data, sha)
    return CreateRequest(
        name="tiny",
        tag=tag,
        model=str(model),
        method=method,
        training_file_id=file.id,
        lora={"r": 4, "alpha": 8} if lora is None else lora,
        hyperparameters={"epochs": 2, "batch_size": 2, "learning_rate": 5e-3, "seed": 1},
        options=options,
        from_output=from_output,
        from_step=from_step,
    )


def losses(d: LocalDriver, tag: str, attempt: int = 1) -> list[float]:
    lines = read_lines(Run(d.runs, tag).metrics)
    return [m["loss"] for m in lines if "loss" in m and m.get("attempt") == attempt]


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
DPO, FULL, CHAIN = "rc0000-0000000000d", "rc0000-0000000000e", "rc0000-0000000000f"
MISSING, SIMPO = "rc0000-00000000011", "rc0000-00000000012"


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("local")
    model = root / "tiny-llama"
    build_tiny_model(model)
    data = write_jsonl(root / "train.jsonl", ROWS)
    prefs = write_jsonl(root / "prefs.jsonl", PREFERENCES)
    fast, slow = driver(root / "runs"), driver(root / "runs", delay=0.25)
    created = {
        SFT: fast.create_job(request(fast, data, model, SFT, save_steps=4)),
        # long enough to be stopped half-way, no periodic checkpoint: SIGTERM saves one
        CANCEL: slow.create_job(
            request(slow, data, model, CANCEL, max_steps=100_000, save_steps=100_000)
        ),
        KILL: slow.create_job(request(slow, data, model, KILL, max_steps=16, save_steps=3)),
        DPO: fast.create_job(request(fast, prefs, model, DPO, method="dpo", save_steps=1000)),
        FULL: fast.create_job(request(fast, data, model, FULL, lora=False, save_steps=1000)),
        SIMPO: fast.create_job(
            dataclasses.replace(
                request(fast, prefs, model, SIMPO, method="dpo", save_steps=1000),
                dpo={"simpo_gamma": 0.5, "beta": 2.0},
            )
        ),
        # weights that are not on this machine: the trainer never downloads
        MISSING: fast.create_job(request(fast, data, Path("org/not-cached"), MISSING)),
    }
    yield {
        "fast": fast,
        "slow": slow,
        "jobs": created,
        "data": data,
        "model": model,
        "root": root,
    }
    stop_every_trainer(root)


def test_cancel_stops_the_trainer_and_keeps_a_checkpoint(jobs: dict[str, Any]) -> None:
    d: LocalDriver = jobs["slow"]
    job = jobs["jobs"][CANCEL]
    wait(d, job.id, lambda j: (j.progress or "").startswith(("step 2/", "step 3/", "step 4/")))
    assert d.cancel_job(job.id).phase in (Phase.CANCELLING, Phase.CANCELLED)
    done = wait(d, job.id, lambda j: j.phase.terminal)
    assert done.phase is Phase.CANCELLED, done
    steps = [c.step or 0 for c in d.checkpoints(job.id)]
    assert len(steps) == 1 and 2 <= steps[0] < 100_000


def test_a_killed_trainer_fails_retryably_and_the_retry_resumes(jobs: dict[str, Any]) -> None:
    d: LocalDriver = jobs["slow"]
    job = jobs["jobs"][KILL]
    run = Run(d.runs, KILL)
    wait(d, job.id, lambda j: bool(run.complete_checkpoints()))
    record = read_json(run.attempt(1) / "process.json") or {}
    os.kill(record["pid"], signal.SIGKILL)
    died = wait(d, job.id, lambda j: j.phase.terminal)
    assert died.phase is Phase.FAILED and died.error_retryable, died
    last = d.job_events(job.id)[-1]  # no word from the trainer: the driver says how it ended
    assert (last.level, last.message) == ("error", died.error)
    assert (died.error or "").startswith("the trainer exited without a result")
    saved = run.complete_checkpoints()[-1][0]
    assert saved >= 3
    retry = d.create_job(request(d, jobs["data"], jobs["model"], KILL, max_steps=16, save_steps=3))
    assert retry.id == f"{KILL}.2"
    done = wait(d, retry.id, lambda j: j.phase.terminal)
    assert done.phase is Phase.SUCCEEDED, done
    second = [m["step"] for m in read_lines(run.metrics) if m.get("attempt") == 2]
    assert second[0] == saved + 1 and second[-1] == 16
    assert any("resuming from checkpoint-" in e.message for e in d.job_events(retry.id))


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


def test_dpo_with_lora_runs_to_success_and_its_loss_goes_down(jobs: dict[str, Any]) -> None:
    d: LocalDriver = jobs["fast"]
    done = wait(d, jobs["jobs"][DPO].id, lambda j: j.phase.terminal)
    assert done.phase is Phase.SUCCEEDED, done
    assert (Path(done.fine_tuned_model or "") / "adapter_config.json").is_file()
    config = read_json(Run(d.runs, DPO).config) or {}
    assert config["method"] == "dpo" and config["lora"]["r"] == 4
    loss = losses(d, DPO)
    # DPO's loss starts at ln 2 (policy equals reference) and falls as the margin grows
    assert len(loss) == 8 and abs(loss[0] - 0.6931) < 0.01 and loss[-1] < loss[0]
    margins = [
        m["rewards/margins"] for m in read_lines(Run(d.runs, DPO).metrics) if "rewards/margins" in m
    ]
    assert margins[-1] > 0


def test_simpo_trains_on_trls_cpo_trainer_and_learns_the_preference(
    jobs: dict[str, Any],
) -> None:
    d: LocalDriver = jobs["fast"]
    done = wait(d, jobs["jobs"][SIMPO].id, lambda j: j.phase.terminal)
    assert done.phase is Phase.SUCCEEDED, done
    config = read_json(Run(d.runs, SIMPO).config) or {}
    assert config["trainer"] == "CPO"
    assert (
        config["args"] | {"loss_type": "simpo", "simpo_gamma": 0.5, "cpo_alpha": 0.0}
        == config["args"]
    )
    lines = read_lines(Run(d.runs, SIMPO).metrics)
    accuracy = [m["rewards/accuracies"] for m in lines if "rewards/accuracies" in m]
    loss = [m["loss"] for m in lines if "loss" in m]
    assert len(loss) == 8 and loss[-1] < loss[0] and accuracy[-1] >= accuracy[0]


def test_lora_false_is_a_full_fine_tune_saving_the_whole_model(jobs: dict[str, Any]) -> None:
    d: LocalDriver = jobs["fast"]
    done = wait(d, jobs["jobs"][FULL].id, lambda j: j.phase.terminal)
    assert done.phase is Phase.SUCCEEDED, done
    out = Path(done.fine_tuned_model or "")
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    assert not (out / "adapter_config.json").exists()
    assert (read_json(Run(d.runs, FULL).config) or {})["lora"] is None
    loss = losses(d, FULL)
    assert len(loss) == 8 and loss[-1] < loss[0]


def test_from_chains_a_job_onto_the_first_ones_adapter_or_one_of_its_checkpoints(
    jobs: dict[str, Any],
) -> None:
    d: LocalDriver = jobs["fast"]
    first = wait(d, jobs["jobs"][SFT].id, lambda j: j.phase.terminal)
    assert first.phase is Phase.SUCCEEDED, first
    upstream = first.fine_tuned_model or ""
    data, model, at_step = jobs["data"], jobs["model"], "rc0000-00000000010"
    with pytest.raises(
        Exception, match=r"from.step 5: .* no complete checkpoint-5 \(saved steps: 4, 8\)"
    ):
        d.create_job(request(d, data, model, at_step, from_output=upstream, from_step=5))
    # both at once: the end of the first job, and its step 4
    chained = d.create_job(request(d, data, model, CHAIN, from_output=upstream))
    stepped = d.create_job(request(d, data, model, at_step, from_output=upstream, from_step=4))
    for job in (chained, stepped):
        done = wait(d, job.id, lambda j: j.phase.terminal)
        assert done.phase is Phase.SUCCEEDED, done
    assert (read_json(Run(d.runs, CHAIN).config) or {})["from_output"] == upstream
    checkpoint = str(Run(d.runs, SFT).checkpoints / "checkpoint-4")
    assert (read_json(Run(d.runs, at_step).config) or {})["from_output"] == checkpoint
    # each continued the first adapter: its first loss is near where the first job was at
    # that step, not a fresh start
    before = losses(d, SFT)
    for tag, step in ((CHAIN, 8), (at_step, 4)):
        after = losses(d, tag)
        assert after[0] < before[0] and abs(after[0] - before[step - 1]) < abs(after[0] - before[0])


def test_jobs_beyond_the_concurrency_queue_and_start_in_order(jobs: dict[str, Any]) -> None:
    root: Path = jobs["root"]
    d = driver(root / "queue-runs", delay=0.2, concurrency=1)
    tags = ["rc0000-0000000q001", "rc0000-0000000q002", "rc0000-0000000q003"]
    created = [
        d.create_job(request(d, jobs["data"], jobs["model"], tag, max_steps=6, save_steps=1000))
        for tag in tags
    ]
    wait(d, created[0].id, lambda j: j.phase is Phase.RUNNING)
    second, third = d.get_job(created[1].id), d.get_job(created[2].id)
    assert (second.phase, second.status) == (Phase.QUEUED, "queued"), second
    assert second.progress == "next in line for a training slot"
    assert third.progress == "waiting for a training slot (1 queued ahead)"
    # cancelling a queued job ends it at once, without it ever training
    d.cancel_job(created[2].id)
    assert wait(d, created[2].id, lambda j: j.phase.terminal).phase is Phase.CANCELLED
    assert not (Run(d.runs, tags[2]).attempt(1) / "slot.json").exists()
    done = [wait(d, j.id, lambda j: j.phase.terminal) for j in created[:2]]
    assert [j.phase for j in done] == [Phase.SUCCEEDED, Phase.SUCCEEDED]
    ended = (read_json(Run(d.runs, tags[0]).attempt(1) / "result.json") or {})["at"]
    began = (read_json(Run(d.runs, tags[1]).attempt(1) / "slot.json") or {})["at"]
    assert began >= ended  # one at a time: the second took the slot the first let go
    assert any("queued: 1 local job at a time" in e.message for e in d.job_events(created[1].id))


def test_an_attempt_left_without_a_trainer_is_started_once_and_trained_once(
    jobs: dict[str, Any],
) -> None:
    """A reconciler killed between the attempt folder and the process: the next look
    starts the trainer; a second trainer of the same attempt leaves without training."""
    root: Path = jobs["root"]
    now = [time.time()]
    d = driver(root / "orphan-runs")
    d.clock = lambda: now[0]
    tag = "rc0000-0000000o001"
    req = request(d, jobs["data"], jobs["model"], tag, max_steps=2, save_steps=1000)
    run = Run(d.runs, tag)
    run.attempts.mkdir(parents=True)
    (run.config).write_text(json.dumps(d._config(req, run)))
    run.attempt(1).mkdir()
    (run.attempt(1) / "attempt.json").write_text(json.dumps({"created_at": now[0], "attempt": 1}))
    assert d.get_job(f"{tag}.1").phase is Phase.QUEUED  # young: its trainer may be starting
    now[0] += 11
    assert d.get_job(f"{tag}.1").phase in (Phase.QUEUED, Phase.RUNNING)
    d._launch(run, 1)  # a second start of the same attempt
    done = wait(d, f"{tag}.1", lambda j: j.phase.terminal)
    assert done.phase is Phase.SUCCEEDED, done
    assert [m["step"] for m in read_lines(run.metrics) if "loss" in m] == [1, 2]
    assert (run.attempt(1) / "relaunched").exists()


def test_weights_not_on_this_machine_fail_at_once_naming_hf_home(jobs: dict[str, Any]) -> None:
    d: LocalDriver = jobs["fast"]
    done = wait(d, jobs["jobs"][MISSING].id, lambda j: j.phase.terminal)
    assert done.phase is Phase.FAILED and not done.error_retryable, done
    assert "model 'org/not-cached' is not available locally" in (done.error or "")
    assert "HF_HOME" in (done.error or "") and "HF_HUB_OFFLINE=1" in (done.error or "")
    assert not Run(d.runs, MISSING).checkpoints.exists()


def test_the_driver_contract_reads_the_run_folders(jobs: dict[str, Any]) -> None:
    d: LocalDriver = jobs["fast"]
    listed = {j.id for j in d.list_jobs()}
    assert {f"{SFT}.1", f"{CANCEL}.1", f"{KILL}.1", f"{DPO}.1", f"{FULL}.1"} <= listed
    assert [j.id for j in d.find_jobs_by_tag(SFT)] == [f"{SFT}.1"]
    assert d.find_jobs_by_tag("rc0000-00000000fff") == []
    assert d.get_job(f"{SFT}.1").tag == SFT
    with pytest.raises(Exception, match="no local job"):
        d.get_job(f"{SFT}.9")
    config = read_json(Run(d.runs, SFT).config) or {}
    assert config["args"]["num_train_epochs"] == 2.0 and config["lora"]["r"] == 4


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
