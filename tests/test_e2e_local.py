"""`provider: local` end to end: the real CLI, real trainer processes (TRL + peft on the
CPU, a tiny random Llama built in code, no downloads), a project whose `reconciler.yaml`
sets one job at a time and a price per slot-hour.

- plan shows where and how long, apply starts the jobs (one trains, the other queues),
  `apply --wait` chains a third job onto the first one's adapter, and `output` names an
  adapter folder that loads with peft;
- a reconciler killed with SIGKILL in the middle of a create (the trainer started, its id
  not yet saved) leaves one trainer, which the next apply adopts.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

for _module in ("torch", "trl", "peft", "transformers", "datasets"):
    pytest.importorskip(_module, reason="the local extra is not installed: pip install '.[local]'")

from tiny_model import PREFERENCES, ROWS, build_tiny_model, stop_every_trainer, write_jsonl  # noqa: E402

from reconciler.providers.local.runs import Run, is_alive, read_json, read_lines  # noqa: E402

pytestmark = [pytest.mark.process, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _no_trainer_left(tmp_path: Path) -> Iterator[None]:
    """Whatever a test leaves training (it failed half-way, say) is stopped after it."""
    yield
    stop_every_trainer(tmp_path)


PROJECT = """apiVersion: reconciler/v1
kind: Project
namespace: e2e-local
local:
  concurrency: 1
  gpu_hour_usd: 2.5
"""


def spec(name: str, method: str, data: str, extra: str = "") -> str:
    return f"""apiVersion: reconciler/v1
kind: FineTuneJob
metadata:
  name: {name}
spec:
  provider: local
  model: ../tiny-llama
  method: {method}
  training_file: data/{data}
  lora: {{r: 4, alpha: 8}}
  hyperparameters: {{epochs: 2, batch_size: 2, learning_rate: 0.005, seed: 1}}
{extra}"""


def make_project(root: Path, specs: dict[str, str]) -> Path:
    build_tiny_model(root / "tiny-llama")
    (root / "specs" / "data").mkdir(parents=True)
    (root / "specs" / "reconciler.yaml").write_text(PROJECT)
    write_jsonl(root / "specs" / "data" / "train.jsonl", ROWS)
    write_jsonl(root / "specs" / "data" / "prefs.jsonl", PREFERENCES)
    for name, text in specs.items():
        (root / "specs" / f"{name}.yaml").write_text(text)
    return root


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    return env | {"RECONCILER_LOCAL_ENABLE": "1", "NO_COLOR": "1", "COLUMNS": "200"} | extra


def cli(root: Path, *args: str, expect: int = 0, **env: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        cwd=root,
        env=environment(**env),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == expect, (
        f"{args}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    )
    assert "Traceback" not in proc.stderr
    return proc


def status(root: Path) -> dict[str, dict[str, Any]]:
    doc = json.loads(cli(root, "status", "--json").stdout)
    return {job["name"]: job for job in doc["jobs"]}


def run_of(root: Path, job_id: str) -> tuple[Run, int]:
    tag, _, n = job_id.rpartition(".")
    return Run(root / "state" / "runs", tag), int(n)


def test_plan_apply_and_wait_train_a_chain_and_a_dpo_job_one_at_a_time(tmp_path: Path) -> None:
    root = make_project(
        tmp_path,
        {
            "sft-a": spec("sft-a", "sft", "train.jsonl"),
            "sft-b": spec("sft-b", "sft", "train.jsonl", "  from: {job: sft-a}\n"),
            "prefs": spec("prefs", "dpo", "prefs.jsonl"),
        },
    )
    plan = cli(root, "plan").stdout
    assert "local: cpu, float32, ~" in plan and "$2.5/slot-hour" in plan, plan
    assert "2 to create" in plan and "1 blocked" in plan, plan

    applied = cli(root, "apply", "--yes").stdout
    assert applied.count("create: created") == 2, applied
    # one job at a time: while one trains, the other is queued
    seen: set[tuple[str, ...]] = set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        now = status(root)
        phases = tuple(sorted(now[n]["phase"] for n in ("sft-a", "prefs")))
        assert phases.count("running") <= 1, now
        seen.add(phases)
        if "succeeded" in phases:
            break
        time.sleep(0.5)
    assert ("queued", "running") in seen, seen

    waited = cli(root, "apply", "--yes", "--wait", "--timeout", "280").stdout
    assert "All 3 job(s) succeeded" in waited, waited
    assert cli(root, "plan", "--detailed-exitcode").returncode == 0
    jobs = status(root)
    # the slots' times never overlap: at most one trainer at once
    spans = []
    for name in ("sft-a", "sft-b", "prefs"):
        run, n = run_of(root, jobs[name]["remote_id"])
        began = (read_json(run.attempt(n) / "slot.json") or {})["at"]
        ended = (read_json(run.attempt(n) / "result.json") or {})["at"]
        spans.append((began, ended))
    spans.sort()
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), spans

    # the chain: sft-b trained on from sft-a's adapter
    a_run, _ = run_of(root, jobs["sft-a"]["remote_id"])
    b_run, _ = run_of(root, jobs["sft-b"]["remote_id"])
    assert (read_json(b_run.config) or {})["from_output"] == str(a_run.model)
    # DPO learned: its loss fell from ln 2
    p_run, _ = run_of(root, jobs["prefs"]["remote_id"])
    loss = [m["loss"] for m in read_lines(p_run.metrics) if "loss" in m]
    assert abs(loss[0] - 0.6931) < 0.01 and loss[-1] < loss[0], loss

    out = json.loads(cli(root, "output", "sft-b", "--json").stdout)
    assert out["model"] == str(b_run.model) and out["provider"] == "local"
    assert out["trained_tokens"] and out["checkpoints"][-1]["metrics"]["loss"] > 0
    assert 0 < out["cost_usd"] < 0.1  # its slot time at $2.5 an hour
    assert cli(root, "output", "sft-b", "--raw").stdout.strip() == str(b_run.model)

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(root / "tiny-llama")
    model = PeftModel.from_pretrained(base, out["model"])
    assert model.peft_config["default"].r == 4


def test_a_reconciler_killed_during_create_leaves_one_trainer_which_apply_adopts(
    tmp_path: Path,
) -> None:
    root = make_project(tmp_path, {"crashy": spec("crashy", "sft", "train.jsonl")})
    runs = root / "state" / "runs"
    env = environment(RECONCILER_LOCAL_CREATE_PAUSE="60", RECONCILER_LOCAL_STEP_DELAY="0.3")
    apply = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "apply", "--yes"],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    records = list(runs.glob("*/attempts/1/process.json"))
    while not records and time.monotonic() < deadline:
        time.sleep(0.1)
        records = list(runs.glob("*/attempts/1/process.json"))
    assert records, "the trainer never started"
    trainer = read_json(records[0]) or {}
    apply.send_signal(signal.SIGKILL)  # the trainer is running, its id not yet in the ledger
    apply.wait(timeout=10)
    assert is_alive(trainer)  # its own session: the kill did not reach it
    before = status(root)["crashy"]
    assert before["remote_id"] is None, before

    waited = cli(root, "apply", "--yes", "--wait", "--timeout", "200").stdout
    assert "All 1 job(s) succeeded" in waited, waited
    after = status(root)["crashy"]
    tag = records[0].parent.parent.parent.name
    assert after["remote_id"] == f"{tag}.1", after
    # one attempt folder, one trainer, one training
    run = Run(runs, tag)
    assert run.attempt_numbers() == [1]
    events = [e["message"] for e in read_lines(run.attempt(1) / "events.jsonl")]
    assert sum(m.startswith("training on") for m in events) == 1, events
    assert (read_json(run.attempt(1) / "process.json") or {})["pid"] == trainer["pid"]
