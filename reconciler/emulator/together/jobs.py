"""Together fine-tune jobs in the emulator: the lifecycle, the model catalogue and its
limits, and the job's wire views (truncated, full, events, checkpoints)
derived from its life on the clock (providers.md §3.4–3.6)."""

from __future__ import annotations

import math
from typing import Any

from ..core import Emulator, digest, iso, job_snapshot, loss_at, steps_between
from ..lifecycle import JobKind, Snapshot
from ..store import Row
from .dialect import NAME

KIND = JobKind(
    provider=NAME,
    run_status="running",
    failed="error",
    failed_permanent="user_error",  # in the SDK's enum, not the spec's
    permanent_at="running",  # data problems surface after the download, as training starts
    cancelled="cancelled",
    cancelling="cancel_requested",
    cancel_delay=3.0,
)
OWNER = "emulator"
USER_ID = "user_emulator000000000000"
OWNER_ADDRESS = "emulator@example.com"
PHASES = (("pending", 2.0), ("queued", 5.0), ("running", 0.0), ("compressing", 4.0))
PHASES_AFTER = (("uploading", 4.0), ("completed", 0.0))
HOLDABLE = tuple(status for status, _ in (*PHASES, *PHASES_AFTER[:-1]))  # for `stuck` faults

# name → billions of parameters; full fine-tuning only up to 16B here
MODELS: dict[str, float] = {
    "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference": 8,
    "meta-llama/Meta-Llama-3.1-8B-Reference": 8,
    "meta-llama/Meta-Llama-3.1-70B-Instruct-Reference": 70,
    "meta-llama/Meta-Llama-3.2-3B-Instruct": 3,
    "meta-llama/Llama-3.2-3B-Instruct": 3,
    "meta-llama/Llama-3.2-1B-Instruct": 1,
    "meta-llama/Llama-3.3-70B-Instruct-Reference": 70,
    "Qwen/Qwen2.5-7B-Instruct": 7,
    "Qwen/Qwen2.5-14B-Instruct": 14,
    "Qwen/Qwen2.5-72B-Instruct": 72,
    "Qwen/Qwen3-8B": 8,
    "mistralai/Mistral-7B-Instruct-v0.2": 7,
    "google/gemma-3-4b-it": 4,
    "deepseek-ai/DeepSeek-R1-Distill-Llama-8B": 8,
}


def limits(model: str) -> dict[str, Any]:
    """``GET /fine-tunes/models/limits`` for a catalogue model (spec + SDK fields)."""
    size = MODELS[model]
    full = size <= 16
    return {
        "model_name": model,
        "max_num_epochs": 20,
        "max_num_evals": 100,
        "max_num_checkpoints": 20,
        "min_learning_rate": 1e-8,
        "max_learning_rate": 1.0,
        "max_seq_length_sft": 8192,
        "max_seq_length_dpo": 8192,
        "min_max_seq_length": 512,
        "default_gradient_accumulation_steps": 1,
        "lora_training": {
            "min_batch_size": 8,
            "max_batch_size": 64,
            "max_batch_size_dpo": 32,
            "max_rank": 64,
            "default_rank": 16,
            "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"],
        },
        "full_training": (
            {"min_batch_size": 8, "max_batch_size": 32, "max_batch_size_dpo": 16} if full else None
        ),
        "supports_full_training": full,
        "supports_vision": False,
        "supports_tools": True,
        "supports_reasoning": model.startswith(("Qwen/Qwen3", "deepseek-ai/")),
        "merge_output_lora": size <= 16,
    }


def price_per_million(model: str, *, full: bool, dpo: bool) -> float:
    """US dollars per million tokens by size bracket (Together's published shape)."""
    size = MODELS.get(model, 8)
    lora, full_rate = (0.48, 0.54) if size <= 16 else (1.50, 1.65) if size < 70 else (2.90, 3.20)
    return (full_rate if full else lora) * (2.5 if dpo else 1.0)


# what a truncated job (create, list, cancel) carries; the full form has every field
TRUNCATED = (
    "id",
    "status",
    "created_at",
    "updated_at",
    "started_at",
    "user_id",
    "owner_address",
    "total_price",
    "token_count",
    "events",
    "training_file",
    "validation_file",
    "packing",
    "max_seq_length",
    "model",
    "model_output_name",
    "suffix",
    "n_epochs",
    "n_evals",
    "n_checkpoints",
    "batch_size",
    "training_type",
    "training_method",
    "learning_rate",
    "lr_scheduler",
    "warmup_ratio",
    "max_grad_norm",
    "weight_decay",
    "random_seed",
    "wandb_project_name",
    "wandb_name",
    "from_checkpoint",
    "from_hf_model",
    "hf_model_revision",
    "progress",
)


def job_summary(emu: Emulator, row: Row) -> dict[str, Any]:
    """The job in ``/_emulator/state``."""
    job = row.data["job"]
    return {
        "status": job_snapshot(emu, KIND, row).status,
        "model": job["model"],
        "suffix": job.get("suffix"),
        "training_file": job["training_file"],
        "fine_tuned_model": job["model_output_name"],
    }


def train_seconds(trained_tokens: int) -> float:
    """Emulated training time: ~40 s for a small file, longer for big ones."""
    return float(min(3600.0, 40.0 + trained_tokens / 2000.0))


# ---------------------------------------------------------------- views


def view(emu: Emulator, row: Row, *, truncated: bool = False) -> dict[str, Any]:
    """The job as ``GET /fine-tunes/{id}`` (or, truncated, list/create/cancel) answers it."""
    job = row.data["job"]
    now = emu.now()
    snap = job_snapshot(emu, KIND, row, now)
    run = [p[0] for p in row.data["life"]["phases"]].index("running")
    done = snap.fraction(run)
    events = _events(row, snap)
    out: dict[str, Any] = {"id": row.id, "status": snap.status, **job}
    out["created_at"] = iso(row.created_at)
    out["updated_at"] = events[-1]["created_at"] if events else iso(row.created_at)
    out["started_at"] = iso(snap.abs_at(snap.starts[snap.index]))
    out["events"] = events
    total = int(row.data["total_steps"])
    out["total_steps"] = total
    out["steps_completed"] = math.floor(total * done)
    out["epochs_completed"] = math.floor(job["n_epochs"] * done)
    out["evals_completed"] = math.floor(job["n_evals"] * done)
    out["queue_depth"] = 0
    if snap.terminal:
        out["progress"] = {"estimate_available": False, "seconds_remaining": 0}
    else:
        finish = snap.abs_at(snap.starts[-1]) if snap.stopped is None else now
        remaining = max(0, int(finish - now)) if finish != math.inf else 0
        out["progress"] = {"estimate_available": snap.index >= run, "seconds_remaining": remaining}
    if truncated:
        return {k: out[k] for k in TRUNCATED if k in out}
    return out


def _event(t: float, kind: str, message: str, level: str = "info", **extra: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "object": "fine-tune-event",
        "created_at": iso(t),
        "level": level,
        "message": message,
        "type": kind,
        "param_count": 0,
        "token_count": 0,
        "total_steps": 0,
        "wandb_url": "",
        "step": 0,
        "checkpoint_path": "",
        "model_path": "",
        "training_offset": 0,
        "hash": "",
    }
    event.update(extra)
    return event


def _events(row: Row, snap: Snapshot) -> list[dict[str, Any]]:
    """Every event the job has produced by now, oldest first."""
    job, data = row.data["job"], row.data
    phases = [p[0] for p in data["life"]["phases"]]
    out: list[tuple[float, dict[str, Any]]] = []

    def at(t: float, kind: str, message: str, level: str = "info", **extra: Any) -> None:
        if t <= snap.t:
            when = snap.abs_at(t)
            out.append((when, _event(when, kind, message, level, **extra)))

    total = int(data["total_steps"])
    at(0.0, "job_pending", "Fine-tune request created")
    at(snap.starts[phases.index("queued")], "job_pending", "Job is queued")
    run = phases.index("running")
    start, end = snap.starts[run], snap.end(run)
    span = end - start if end != math.inf else 0.0
    at(start, "job_start", "Job started")
    setup = [
        ("model_downloading", f"Downloading model {job['model']}"),
        ("model_download_complete", "Model downloaded"),
        ("training_data_downloading", "Downloading training data"),
        ("training_data_download_complete", "Training data downloaded"),
        ("training_start", "Training started"),
    ]
    for i, (kind, message) in enumerate(setup):
        at(start + min(0.5 * i, span * 0.05 * i), kind, message, total_steps=total)
    params = int(data["param_count"])
    for step in steps_between(total, job["n_epochs"]):
        epoch = round(step * job["n_epochs"] / total) if total else 0
        at(
            start + span * step / total,
            "epoch_complete",
            f"Epoch {epoch} completed, at step {step}",
            step=step,
            total_steps=total,
            param_count=params,
        )
    for step in data["checkpoint_steps"][:-1]:
        at(
            start + span * step / total,
            "checkpoint_save",
            f"New checkpoint saved at step {step}",
            step=step,
            checkpoint_path=f"{data['output_path']}/checkpoint-{step}",
        )
    at(
        end,
        "training_complete",
        "Training completed",
        total_steps=total,
        token_count=int(job["token_count"]),
    )
    compressing, uploading = phases.index("compressing"), phases.index("uploading")
    at(snap.starts[compressing], "model_compressing", "Compressing output model")
    at(snap.starts[uploading], "model_compression_complete", "Model compressed")
    at(snap.starts[uploading], "model_uploading", "Uploading output model")
    last = snap.starts[-1]
    at(last, "model_upload_complete", "Model uploaded", model_path=data["output_path"])
    at(
        last,
        "job_complete",
        f"Fine-tune job completed: {job['model_output_name']}",
        model_path=data["output_path"],
    )
    if snap.cancel_requested_at is not None:
        when = snap.cancel_requested_at
        out.append((when, _event(when, "cancel_requested", "Job cancellation requested")))
        if snap.stopped == "cancelled" and snap.finished_at is not None:
            out.append((snap.finished_at, _event(snap.finished_at, "job_stopped", "Job cancelled")))
    if snap.stopped == "failed" and snap.finished_at is not None:
        fail = data["life"]["fail"]
        out.append(
            (snap.finished_at, _event(snap.finished_at, "job_error", fail["message"], "error"))
        )
    out.sort(key=lambda pair: pair[0])
    return [event for _, event in out]


def checkpoints(emu: Emulator, row: Row) -> list[dict[str, Any]]:
    """``GET /fine-tunes/{id}/checkpoints``: newest first; the final ones once completed."""
    snap = job_snapshot(emu, KIND, row)
    data = row.data
    run = [p[0] for p in data["life"]["phases"]].index("running")
    total = int(data["total_steps"])
    reached = snap.fraction(run) * total
    out = [
        {
            "step": step,
            "created_at": iso(
                snap.abs_at(snap.starts[run] + (snap.end(run) - snap.starts[run]) * step / total)
            ),
            "path": f"{data['output_path']}/checkpoint-{step}",
            "checkpoint_type": "Intermediate",
        }
        for step in data["checkpoint_steps"][:-1]
        if step <= reached
    ]
    if snap.status == "completed" and snap.finished_at is not None:
        kinds = ["Final Merged", "Final Adapter"] if data["lora"] else ["Final"]
        out += [
            {
                "step": total,
                "created_at": iso(snap.finished_at),
                "path": data["output_path"],
                "checkpoint_type": kind,
            }
            for kind in kinds
        ]
    return list(reversed(out))


def metrics(emu: Emulator, row: Row) -> list[dict[str, float]]:
    """``GET /fine-tunes/{id}/metrics``: one entry per step trained so far."""
    snap = job_snapshot(emu, KIND, row)
    run = [p[0] for p in row.data["life"]["phases"]].index("running")
    total = int(row.data["total_steps"])
    upto = math.floor(snap.fraction(run) * total)
    return [
        {"global_step": float(s), "train/loss": loss_at(s, total, row.id), "train/lr": 1e-5}
        for s in range(1, upto + 1)
    ]


def output_name(model: str, suffix: str | None, job_id: str) -> str:
    """``<owner>/<model>-<suffix>-<hash>``, as Together names fine-tuned models."""
    base = model.rsplit("/", 1)[-1]
    middle = f"-{suffix}" if suffix else ""
    return f"{OWNER}/{base}{middle}-{digest(job_id)}"
