"""Mistral fine-tuning jobs in the emulator (providers.md §4.4–4.6): the ``JobIn`` schema,
errors in Mistral's shapes (422 ``detail`` lists, ``object: error`` bodies), and the
job's wire views (list form, and the detailed form with inline events and checkpoints)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from starlette.responses import JSONResponse, Response

from .core import Emulator, digest, job_snapshot, loss_at, steps_between
from .lifecycle import JobKind, Snapshot
from .schema import BOOL, STR, Node, Problem, nullable
from .store import Row

KIND = JobKind(
    provider="mistral",
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
MINIMUM_FEE = 4.0
TOKENS_PER_STEP = 131_072

_UNIT: Node = {"type": "number", "minimum": 0, "maximum": 1}
HYPERPARAMETERS: Node = {
    "type": "object",
    "properties": {
        "training_steps": nullable({"type": "integer", "minimum": 1}),
        "learning_rate": {"type": "number", "minimum": 1e-8, "maximum": 1},
        "weight_decay": nullable(_UNIT),
        "warmup_fraction": nullable(_UNIT),
        "epochs": nullable({"type": "number", "exclusiveMinimum": 0}),
        "seq_len": nullable({"type": "integer", "minimum": 100}),
        "fim_ratio": nullable(_UNIT),
    },
}
CREATE: Node = {
    "type": "object",
    "required": ["model", "hyperparameters"],
    "properties": {
        "model": STR,
        "training_files": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["file_id"],
                "properties": {"file_id": STR, "weight": {"type": "number", "exclusiveMinimum": 0}},
            },
        },
        "validation_files": nullable({"type": "array", "items": STR}),
        "suffix": nullable({"type": "string", "maxLength": 18}),
        "integrations": nullable(
            {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["project", "api_key"],
                    "properties": {
                        "type": {"enum": ["wandb"]},
                        "project": STR,
                        "name": nullable(STR),
                        "api_key": {"type": "string", "minLength": 40, "maxLength": 40},
                        "run_name": nullable(STR),
                    },
                },
            }
        ),
        "auto_start": BOOL,
        "invalid_sample_skip_percentage": {"type": "number", "minimum": 0, "maximum": 0.5},
        "job_type": nullable({"enum": ["completion", "classifier"]}),
        "hyperparameters": HYPERPARAMETERS,
        "repositories": nullable({"type": "array", "items": {"type": "object"}}),
        "classifier_targets": nullable({"type": "array", "items": {"type": "object"}}),
    },
}

_TYPE_ERRORS = {
    "string": ("string_type", "Input should be a valid string"),
    "integer": ("int_type", "Input should be a valid integer"),
    "number": ("float_type", "Input should be a valid number"),
    "boolean": ("bool_type", "Input should be a valid boolean"),
    "array": ("list_type", "Input should be a valid list"),
    "object": ("model_type", "Input should be a valid dictionary or object to extract fields from"),
}


def error(
    status: int,
    message: str,
    *,
    type: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> Response:
    """Mistral's error body outside validation (as observed: ``object: error``)."""
    body = {"object": "error", "message": message, "type": type, "param": param, "code": code}
    return JSONResponse(body, status_code=status)


def invalid(loc: list[str | int], kind: str, msg: str, value: Any = None, **ctx: Any) -> Response:
    """A 422 ``HTTPValidationError`` with one item, in pydantic's words."""
    item: dict[str, Any] = {"type": kind, "loc": loc, "msg": msg, "input": value}
    if ctx:
        item["ctx"] = ctx
    return JSONResponse({"detail": [item]}, status_code=422)


def problem_error(p: Problem, where: str = "body") -> Response:
    loc: list[str | int] = [where, *p.loc]
    if p.kind == "missing":
        return invalid(loc, "missing", "Field required")
    if p.kind == "extra":
        return invalid(loc, "extra_forbidden", "Extra inputs are not permitted", p.value)
    if p.kind == "type":
        first = p.expected.split(" or ")[-1]
        kind, msg = _TYPE_ERRORS.get(first, ("value_error", f"Input should be {p.expected}"))
        return invalid(loc, kind, msg, p.value)
    if p.kind == "enum":
        options = [repr(v) for v in p.limit]
        said = " or ".join([", ".join(options[:-1]), options[-1]] if len(options) > 1 else options)
        return invalid(loc, "enum", f"Input should be {said}", p.value, expected=said)
    if p.kind == "too_long":
        return invalid(
            loc,
            "string_too_long",
            f"String should have at most {p.limit} characters",
            p.value,
            max_length=p.limit,
        )
    if p.kind == "too_short":
        return invalid(
            loc,
            "string_too_short",
            f"String should have at least {p.limit} characters",
            p.value,
            min_length=p.limit,
        )
    if p.kind == "too_big":
        return invalid(
            loc,
            "less_than_equal",
            f"Input should be less than or equal to {p.limit}",
            p.value,
            le=p.limit,
        )
    if p.kind == "too_small" and "must be >" in p.message and ">=" not in p.message:
        return invalid(
            loc, "greater_than", f"Input should be greater than {p.limit}", p.value, gt=p.limit
        )
    return invalid(
        loc,
        "greater_than_equal",
        f"Input should be greater than or equal to {p.limit}",
        p.value,
        ge=p.limit,
    )


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
