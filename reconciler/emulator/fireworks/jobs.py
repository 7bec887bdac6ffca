"""Fireworks SFT and DPO jobs in the emulator: the lifecycle (``JOB_STATE_*`` on the
clock), the base models, prices, and the job's wire view derived from its life."""

from __future__ import annotations

import math
from typing import Any

from ..core import Emulator, iso, job_snapshot
from ..lifecycle import JobKind, new_life
from ..store import Row
from .dialect import NAME

KIND = JobKind(
    provider=NAME,
    run_status="JOB_STATE_RUNNING",
    failed="JOB_STATE_FAILED",
    failed_permanent="JOB_STATE_FAILED",  # the rpc code in `status` tells the two apart
    permanent_at="JOB_STATE_VALIDATING",  # the dataset is checked before training
    cancelled="JOB_STATE_CANCELLED",
    cancelling="JOB_STATE_CANCELLING",
    cancel_delay=3.0,
)
PHASES = (
    ("JOB_STATE_PENDING", 2.0),
    ("JOB_STATE_VALIDATING", 4.0),
    ("JOB_STATE_RUNNING", 0.0),  # its length depends on the tokens
    ("JOB_STATE_WRITING_RESULTS", 4.0),
    ("JOB_STATE_COMPLETED", 0.0),
)
HOLDABLE = tuple(state for state, _ in PHASES[:-1])  # for `stuck` faults
DELETED = "JOB_STATE_DELETED"
CREATED_BY = "emulator@example.com"

# base model → billions of parameters (accounts/fireworks/models/<id>)
MODELS: dict[str, float] = {
    "accounts/fireworks/models/qwen3-8b": 8,
    "accounts/fireworks/models/qwen3-4b": 4,
    "accounts/fireworks/models/qwen2p5-7b-instruct": 7,
    "accounts/fireworks/models/llama-v3p1-8b-instruct": 8,
    "accounts/fireworks/models/llama-v3p1-70b-instruct": 70,
    "accounts/fireworks/models/mistral-7b-instruct-v3": 7,
}


def price_per_million(model: str) -> float:
    """The 2024-era list price: $0.50 per 1M training tokens up to 16B, $3.00 above."""
    return 0.50 if MODELS.get(model, 8) <= 16 else 3.00


def train_seconds(tokens: int) -> float:
    """Emulated training time: ~40 s for a small file, longer for big ones."""
    return float(min(3600.0, 40.0 + tokens / 2000.0))


def life_for(tokens: int, *, already: float = 0.0) -> dict[str, Any]:
    """A fresh plan; ``already`` pads the first phase (a resumed job keeps its created_at)."""
    phases = list(PHASES)
    phases[0] = (phases[0][0], phases[0][1] + already)
    phases[2] = (phases[2][0], train_seconds(tokens))
    return new_life(phases)


def money(usd: float) -> dict[str, Any]:
    """A ``typeMoney``: whole dollars as an int64 string, and nanos."""
    units = math.floor(usd)
    return {"currencyCode": "USD", "units": str(units), "nanos": round((usd - units) * 1e9)}


def training(job: dict[str, Any]) -> dict[str, Any]:
    """Where the training settings sit: the SFT job itself, a DPO job's trainingConfig."""
    config = job.get("trainingConfig")
    return config if isinstance(config, dict) else job


def output_of(row: Row) -> str:
    """The full name of the model a job writes."""
    return f"accounts/{row.id.split('/')[1]}/models/{training(row.data['job'])['outputModel']}"


def view(emu: Emulator, row: Row) -> dict[str, Any]:
    """The job as ``GET /v1/accounts/{a}/<collection>/{id}`` answers it."""
    data, now = row.data, emu.now()
    out: dict[str, Any] = {"name": row.id, **data["job"]}
    out["createTime"] = iso(row.created_at)
    out["createdBy"] = CREATED_BY
    if data.get("deleted_at") is not None:
        out.update(state=DELETED, status={"code": "OK", "message": ""})
        out["updateTime"] = iso(float(data["deleted_at"]))
        return out
    snap = job_snapshot(emu, KIND, row, now)
    out["state"] = snap.status
    fail = data["life"].get("fail")
    if snap.stopped == "failed" and fail is not None:
        code = "INTERNAL" if fail.get("retryable") else "INVALID_ARGUMENT"
        out["status"] = {"code": code, "message": fail["message"]}
    elif snap.stopped == "cancelled":
        out["status"] = {"code": "CANCELLED", "message": "cancelled by the user"}
    else:
        out["status"] = {"code": "OK", "message": ""}
    run = [p[0] for p in data["life"]["phases"]].index(KIND.run_status)
    done = snap.fraction(run)
    epochs = int(training(data["job"]).get("epochs") or 1)
    out["jobProgress"] = {
        "percent": 100 if snap.status == PHASES[-1][0] else math.floor(100 * done),
        "epoch": min(epochs - 1, math.floor(epochs * done)),
    }
    out["estimatedCost"] = money(float(data["cost_usd"]))
    start = snap.abs_at(snap.starts[snap.index]) if snap.index else row.created_at
    out["updateTime"] = iso(snap.finished_at if snap.finished_at is not None else start)
    if snap.terminal and snap.finished_at is not None:
        out["completedTime"] = iso(snap.finished_at)
    return out


def job_summary(emu: Emulator, row: Row) -> dict[str, Any]:
    """The job in ``/_emulator/state``."""
    shown = view(emu, row)
    config = training(row.data["job"])
    return {
        "status": shown["state"],
        "model": config.get("baseModel") or config.get("warmStartFrom"),
        "suffix": row.id.rsplit("/", 1)[-1],  # the client-chosen id carries the tag
        "training_file": row.data["job"]["dataset"],
        "fine_tuned_model": output_of(row),
    }
