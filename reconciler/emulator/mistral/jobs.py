"""Mistral fine-tuning jobs in the emulator (providers.md §4.4–4.6): the lifecycle, the
model prices, and the job's wire views (list form, and the detailed form with inline
events and checkpoints)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from ..core import Emulator, digest, job_snapshot, loss_at, steps_between
from ..lifecycle import JobKind, Snapshot
from ..store import Row
from .dialect import NAME

KIND = JobKind(
    provider=NAME,
    run_status="RUNNING",
    failed="FAILED",
    failed_permanent="FAILED_VALIDATION",
    permanent_at="VALIDATED",
    cancelled="CANCELLED",
    cancelling="CANCELLATION_REQUESTED",
    cancel_delay=3.0,
)
PHASES = (
    ("QUEUED", 3.0),
    ("VALIDATING", 5.0),
    ("VALIDATED", 2.0),
    ("RUNNING", 0.0),
    ("SUCCESS", 0.0),
)
HOLDABLE = tuple(status for status, _ in PHASES[:-1])  # what a `stuck` fault may hold
PARK = 2  # VALIDATED: where a job created with auto_start false waits for /start
ACTIVE = ("QUEUED", "STARTED", "VALIDATING", "VALIDATED", "RUNNING", "CANCELLATION_REQUESTED")
# model → US dollars per million training tokens
MODELS: dict[str, float] = {
    "open-mistral-7b": 1.0,
    "open-mistral-nemo": 1.0,
    "mistral-small-latest": 4.0,
    "codestral-latest": 3.0,
    "mistral-large-latest": 9.0,
    "ministral-8b-latest": 1.0,
    "ministral-3b-latest": 1.0,
    "pixtral-12b-latest": 2.0,
}
# models GET /v1/models lists that cannot be fine-tuned (capabilities.fine_tuning false)
NOT_TUNABLE = ("mistral-embed", "mistral-moderation-latest", "mistral-ocr-latest")
MINIMUM_FEE = 4.0
TOKENS_PER_STEP = 131_072


def job_summary(emu: Emulator, row: Row) -> dict[str, Any]:
    """The job in ``/_emulator/state``."""
    return {
        "status": job_snapshot(emu, KIND, row).status,
        "model": row.data["model"],
        "suffix": row.data["suffix"],
        "training_files": row.data["training_files"],
        "fine_tuned_model": row.data["fine_tuned_model"],
    }


# ---------------------------------------------------------------- views


def _phase(row: Row, status: str) -> int:
    return [p[0] for p in row.data["life"]["phases"]].index(status)


def view(emu: Emulator, row: Row, *, detailed: bool = False) -> dict[str, Any]:
    """The job as list/create (``CompletionJobOut``) or get/cancel/start (detailed) show it."""
    d = row.data
    snap = job_snapshot(emu, KIND, row)
    events = _events(row, snap)
    success = snap.status == "SUCCESS"
    validated = success or (snap.reached(PARK) and snap.stopped != "failed")
    out: dict[str, Any] = {
        "id": row.id,
        "object": "job",
        "job_type": "completion",
        "auto_start": d["auto_start"],
        "model": d["model"],
        "status": snap.status,
        "created_at": int(row.created_at),
        "modified_at": events[-1]["created_at"] if events else int(row.created_at),
        "training_files": d["training_files"],
        "validation_files": d["validation_files"],
        "fine_tuned_model": d["fine_tuned_model"] if success else None,
        "suffix": d["suffix"],
        "integrations": d["integrations"],
        "trained_tokens": d["train_tokens"] if success else None,
        "metadata": _cost(row, snap) if validated else None,
        "hyperparameters": d["hyperparameters"],
        "repositories": [],
    }
    if detailed:
        out["events"] = list(reversed(events))
        out["checkpoints"] = _checkpoints(row, snap)
    return out


def _cost(row: Row, snap: Snapshot) -> dict[str, Any]:
    d = row.data
    run = _phase(row, "RUNNING")
    start = snap.starts[run]
    return {
        "expected_duration_seconds": int(d["life"]["phases"][run][1]),
        "cost": d["cost"],
        "cost_currency": "USD",
        "train_tokens_per_step": TOKENS_PER_STEP,
        "train_tokens": d["train_tokens"],
        "data_tokens": d["data_tokens"],
        "estimated_start_time": int(snap.abs_at(start)) if start != math.inf else None,
    }


def _events(row: Row, snap: Snapshot) -> list[dict[str, Any]]:
    """``status-updated`` events, oldest first."""
    out: list[tuple[float, str]] = []
    for k, (status, _) in enumerate(row.data["life"]["phases"]):
        # a job failing "as a phase would begin" never entered that phase
        failed_here = snap.stopped == "failed" and snap.starts[k] >= snap.t
        if snap.reached(k) and not failed_here:
            out.append((snap.abs_at(snap.starts[k]), status))
    if snap.cancel_requested_at is not None:
        out.append((snap.cancel_requested_at, "CANCELLATION_REQUESTED"))
    if snap.stopped is not None and snap.finished_at is not None:
        out.append((snap.finished_at, snap.status))
    out.sort(key=lambda e: e[0])
    events: list[dict[str, Any]] = []
    for t, status in out:
        data: dict[str, Any] = {"status": status}
        if snap.stopped == "failed" and status == snap.status:
            data["error"] = row.data["life"]["fail"]["message"]
        events.append({"name": "status-updated", "data": data, "created_at": int(t)})
    return events


def _checkpoints(row: Row, snap: Snapshot) -> list[dict[str, Any]]:
    """Checkpoints with metrics, newest first (no download: metrics only)."""
    run = _phase(row, "RUNNING")
    total = int(row.data["total_steps"])
    start, end = snap.starts[run], snap.end(run)
    span = 0.0 if end == math.inf else end - start
    out = []
    for step in steps_between(total, min(total, 10)):
        t = start + span * step / total
        if t <= snap.t and snap.reached(run):
            loss = loss_at(step, total, row.id)
            out.append(
                {
                    "step_number": step,
                    "created_at": int(snap.abs_at(t)),
                    "metrics": {
                        "train_loss": loss,
                        "valid_loss": round(loss * 1.05, 4),
                        "valid_mean_token_accuracy": round(1 - loss / 2.8, 4),
                    },
                }
            )
    return list(reversed(out))


def fine_tuned_model(model: str, suffix: str | None, job_id: str, created_at: float) -> str:
    """``ft:<base>:<suffix or short id>:<yyyymmdd>:<hash>``."""
    day = datetime.fromtimestamp(created_at, UTC).strftime("%Y%m%d")
    return f"ft:{model}:{suffix or job_id[:8]}:{day}:{digest(job_id)}"
