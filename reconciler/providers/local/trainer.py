"""The training process of one local attempt: ``python -m reconciler.providers.local.trainer
<attempt folder>``. The only module that imports torch, transformers, trl and peft (the
``local`` extra), and only when it runs.

It takes its attempt's lock first (a second trainer of one attempt, started by a
driver that could not tell whether the first had started, leaves at once), writes its
process record, waits for a free slot (``runs.concurrency``), then writes metrics by
step, events, checkpoints and, as it ends, ``result.json`` (succeeded, failed or
cancelled). SIGTERM asks for a clean
stop: a checkpoint at the end of the current step, then ``cancelled``. A process that
dies without a result is a retryable failure, and the retry resumes from the newest
complete checkpoint.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from .mapping import trl_record
from .runs import (
    SLOTS,
    Run,
    append_line,
    concurrency,
    gpu_count,
    note,
    process_record,
    read_json,
    run_of_attempt,
    try_lock,
    waiting,
    write_json,
)

OFFLINE_HINT = (
    "reconciler trains offline (HF_HUB_OFFLINE=1): put the weights in the Hugging Face "
    "cache (HF_HOME, now {home}) with `huggingface-cli download {model}` on a connected "
    "machine, or give `model:` a local folder"
)
# a test and debugging knob: seconds to sleep after each step (slows tiny runs down)
STEP_DELAY_VAR = "RECONCILER_LOCAL_STEP_DELAY"
QUEUE_POLL_S = 0.5


class MissingWeights(Exception):
    """The model or tokenizer is not available without a network."""


class Stop:
    """SIGTERM's flag, read at the end of every step."""

    requested = False

    @classmethod
    def handle(cls, signum: int, frame: object) -> None:
        cls.requested = True


def read_data(path: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8-sig") as f:
        return [trl_record(json.loads(line)) for line in f if line.strip()]


def load(model_id: str, from_output: str | None) -> tuple[Any, Any, bool]:
    """(model, tokenizer, adapter already attached) from the local cache or a folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    home = os.environ.get("HF_HOME", "~/.cache/huggingface")
    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    base = from_output if from_output and Path(from_output, "config.json").is_file() else model_id
    try:
        tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(base, local_files_only=True, dtype=dtype)
    except OSError as exc:
        raise MissingWeights(
            f"model {base!r} is not available locally: "
            + OFFLINE_HINT.format(home=home, model=base)
        ) from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if from_output and Path(from_output, "adapter_config.json").is_file():
        from peft import PeftModel

        adapter = read_json(Path(from_output, "adapter_config.json")) or {}
        trained_on = adapter.get("base_model_name_or_path")
        if trained_on and trained_on != model_id:
            raise ValueError(
                f"from: the adapter in {from_output} was trained on {trained_on!r}, not on "
                f"this job's model {model_id!r}: set model: {trained_on}"
            )

        # `from: {job: X}`: continue training X's adapter on the same base
        return PeftModel.from_pretrained(model, from_output, is_trainable=True), tokenizer, True
    return model, tokenizer, False


def _callback(folder: Path, run: Run, attempt: int) -> Any:
    from transformers import TrainerCallback

    delay = float(os.environ.get(STEP_DELAY_VAR) or 0)

    class Progress(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            numbers = {
                k: float(v)
                for k, v in (logs or {}).items()
                if isinstance(v, int | float) and not isinstance(v, bool)
            }
            line = {"step": state.global_step, "max_steps": state.max_steps, "attempt": attempt}
            append_line(run.metrics, line | {"time": time.time(), "epoch": state.epoch, **numbers})

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if delay:
                time.sleep(delay)
            if Stop.requested:
                control.should_save = True
                control.should_training_stop = True

        def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            note(folder, f"saved checkpoint-{state.global_step}")

    return Progress()


def train(folder: Path, config: dict[str, Any]) -> str:
    """Run (or resume) the training; 'succeeded' or 'cancelled'."""
    import torch
    from datasets import Dataset

    run = run_of_attempt(folder)
    attempt = int((read_json(folder / "attempt.json") or {}).get("attempt") or 0)
    model, tokenizer, attached = load(config["model"], config.get("from_output"))
    gpu = torch.cuda.is_available()
    args: dict[str, Any] = {"use_cpu": not gpu, "bf16": gpu, "gradient_checkpointing": False}
    args |= config["args"]
    train_set = Dataset.from_list(read_data(config["training_file"]))
    val = config.get("validation_file")
    eval_set = Dataset.from_list(read_data(val)) if val else None
    lora = config.get("lora")
    peft_config = None
    if lora is not None and not attached:
        from peft import LoraConfig

        peft_config = LoraConfig(**lora)
    common: dict[str, Any] = {
        "model": model,
        "train_dataset": train_set,
        "eval_dataset": eval_set,
        "processing_class": tokenizer,
        "peft_config": peft_config,
        "callbacks": [_callback(folder, run, attempt)],
    }
    # trl exports its classes lazily (mypy sees no attributes): reached through Any
    kind = config.get("trainer") or ("DPO" if config["method"] == "dpo" else "SFT")
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # SimPO's CPO is experimental
    trl: Any = importlib.import_module("trl.experimental.cpo" if kind == "CPO" else "trl")
    settings = getattr(trl, f"{kind}Config")(**args)
    trainer = getattr(trl, f"{kind}Trainer")(args=settings, **common)
    done = run.complete_checkpoints()
    resume = str(done[-1][1]) if done else None
    device = "cuda" if gpu else "cpu"
    resuming = f", resuming from {Path(resume).name}" if resume else ""
    note(folder, f"training on {device}{resuming}")
    trainer.train(resume_from_checkpoint=resume)
    if Stop.requested:
        note(folder, f"stopped at step {trainer.state.global_step} (checkpoint kept)")
        return "cancelled"
    trainer.save_model(config["output"])
    tokenizer.save_pretrained(config["output"])
    note(folder, f"saved the result to {config['output']}")
    return "succeeded"


def claim(folder: Path) -> int | None:
    """This attempt's lock, held for the process's life; None when the attempt is not
    ours to train: another trainer holds it, or one already started it (and ended)."""
    fd = try_lock(folder / "lock")
    if fd is None:
        return None
    record = read_json(folder / "process.json")
    mine = process_record(os.getpid())
    if record is not None and record != mine and (folder / "started").exists():
        os.close(fd)
        return None
    write_json(folder / "process.json", mine)
    (folder / "started").touch()
    return fd


def wait_for_slot(folder: Path) -> int | None:
    """The slot this trainer trains in (held until it exits), after every attempt queued
    before it; None when it was cancelled while queued."""
    root = run_of_attempt(folder).dir.parent
    slots = concurrency(os.environ)
    queued_noted = False
    while not Stop.requested:
        line = waiting(root)
        if not line or line[0] == folder:
            for i in range(slots):
                if try_lock(root / SLOTS / f"{i}.lock") is not None:  # kept open: held
                    return i
        if not queued_noted:
            note(folder, f"queued: {slots} local job{'s' if slots > 1 else ''} at a time")
            queued_noted = True
        time.sleep(QUEUE_POLL_S)
    return None


def main(argv: list[str]) -> int:
    folder = Path(argv[1]).absolute()
    signal.signal(signal.SIGTERM, Stop.handle)
    if claim(folder) is None:
        return 0  # another trainer has (or had) this attempt: nothing of ours to write
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ.setdefault(var, "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    result: dict[str, Any]
    slot = wait_for_slot(folder)
    if slot is None:
        result = {"status": "cancelled", "at": time.time()}
        write_json(folder / "result.json", result)
        note(folder, "cancelled while queued")
        return 0
    gpus = gpu_count(os.environ)
    if gpus:  # one GPU per slot, before torch is imported
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        ids = visible.split(",") if visible else [str(i) for i in range(gpus)]
        os.environ["CUDA_VISIBLE_DEVICES"] = ids[slot % len(ids)].strip()
    write_json(folder / "slot.json", {"slot": slot, "at": time.time()})
    config = read_json(run_of_attempt(folder).config)
    try:
        if config is None:
            raise ValueError(f"no readable config.json in {run_of_attempt(folder).dir}")
        status = train(folder, config)
        result = {"status": status}
    except MissingWeights as exc:
        result = {"status": "failed", "error": str(exc), "retryable": False}
    except MemoryError as exc:
        result = {"status": "failed", "error": f"out of memory: {exc}", "retryable": True}
    except Exception as exc:
        traceback.print_exc()
        message = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        result = {"status": "failed", "error": message, "retryable": False}
    result["at"] = time.time()
    write_json(folder / "result.json", result)
    note(folder, f"finished: {result['status']}", "error" if result.get("error") else "info")
    return 0 if result["status"] != "failed" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
