"""OpenAI fine-tuning jobs in the emulator (providers.md §2.4–2.6): the create-body
schema, hyperparameter resolution, and the wire views of a job, its events and its
checkpoints, all derived from the job's life on the clock."""

from __future__ import annotations

import math
from typing import Any

from starlette.responses import JSONResponse, Response

from .core import Emulator, digest, job_snapshot, loss_at, steps_between
from .lifecycle import JobKind, Snapshot
from .schema import STR, Node, Problem, nullable, type_name
from .store import Row

KIND = JobKind(
    provider="openai",
    run_status="running",
    failed="failed",
    failed_permanent="failed",
    permanent_at="queued",  # bad files are found while validating_files
    cancelled="cancelled",  # cancel is immediate: no transient status
)
ORG = "org-emulator"
ACCOUNT = "personal"  # the org slug in ft: model names
PHASES = (("validating_files", 5.0), ("queued", 5.0), ("running", 0.0), ("succeeded", 0.0))
MODELS = (
    "gpt-4.1-2025-04-14",
    "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano-2025-04-14",
    "gpt-4o-2024-08-06",
    "gpt-4o-mini-2024-07-18",
    "gpt-3.5-turbo",
    "gpt-3.5-turbo-0125",
    "gpt-3.5-turbo-1106",
    "babbage-002",
    "davinci-002",
    "o4-mini-2025-04-16",
)
COMPLETION_MODELS = ("babbage-002", "davinci-002")  # prompt/completion data
RFT_MODELS = ("o4-mini-2025-04-16",)
MIN_EXAMPLES = 10


def error(
    status: int,
    message: str,
    *,
    type: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> Response:
    """OpenAI's error body."""
    body = {"error": {"message": message, "type": type, "param": param, "code": code}}
    return JSONResponse(body, status_code=status)


def problem_error(p: Problem) -> Response:
    """A schema problem in the words the API uses."""
    param = p.param
    if p.kind == "missing":
        return error(
            400,
            f"Missing required parameter: '{param}'.",
            param=param,
            code="missing_required_parameter",
        )
    if p.kind == "extra":
        return error(
            400,
            f"Unrecognized request argument supplied: {param}",
            param=param,
            code="unknown_parameter",
        )
    if p.kind == "type":
        got = type_name(p.value)
        return error(
            400,
            f"Invalid type for '{param}': expected {p.expected}, but got {got} instead.",
            param=param,
            code="invalid_type",
        )
    if p.kind == "enum":
        return error(
            400,
            f"Invalid value: '{p.value}'. Supported values are: {p.expected}.",
            param=param,
            code="invalid_value",
        )
    return error(400, f"Invalid '{param}': {p.message}.", param=param, code="invalid_value")


def _auto(node: Node) -> Node:
    return {"anyOf": [{"enum": ["auto"]}, node]}


EPOCHS = _auto({"type": "integer", "minimum": 1, "maximum": 50})
BATCH = _auto({"type": "integer", "minimum": 1, "maximum": 256})
LR = _auto({"type": "number", "exclusiveMinimum": 0})
HP_SFT: Node = {
    "type": "object",
    "properties": {"n_epochs": EPOCHS, "batch_size": BATCH, "learning_rate_multiplier": LR},
}
HP_DPO: Node = {
    "type": "object",
    "properties": {
        **HP_SFT["properties"],
        "beta": _auto({"type": "number", "exclusiveMinimum": 0, "maximum": 2}),
    },
}
HP_RFT: Node = {
    "type": "object",
    "properties": {
        **HP_SFT["properties"],
        "reasoning_effort": {"enum": ["default", "low", "medium", "high"]},
        "compute_multiplier": _auto({"type": "number", "exclusiveMinimum": 1e-5, "maximum": 10}),
        "eval_interval": _auto({"type": "integer", "minimum": 1}),
        "eval_samples": _auto({"type": "integer", "minimum": 1}),
    },
}
METHOD: Node = {
    "type": "object",
    "discriminator": "type",
    "cases": {
        "supervised": {
            "properties": {
                "type": STR,
                "supervised": {"type": "object", "properties": {"hyperparameters": HP_SFT}},
            }
        },
        "dpo": {
            "properties": {
                "type": STR,
                "dpo": {"type": "object", "properties": {"hyperparameters": HP_DPO}},
            }
        },
        "reinforcement": {
            "required": ["reinforcement"],
            "properties": {
                "type": STR,
                "reinforcement": {
                    "type": "object",
                    "required": ["grader"],
                    "properties": {"grader": {"type": "object"}, "hyperparameters": HP_RFT},
                },
            },
        },
    },
}
WANDB: Node = {
    "type": "object",
    "required": ["project"],
    "properties": {
        "project": STR,
        "name": nullable(STR),
        "entity": nullable(STR),
        "tags": {"type": "array", "items": STR},
    },
}
CREATE: Node = {
    "type": "object",
    "required": ["model", "training_file"],
    "properties": {
        "model": STR,
        "training_file": STR,
        "validation_file": nullable(STR),
        "suffix": nullable({"type": "string", "minLength": 1, "maxLength": 64}),
        "seed": nullable({"type": "integer", "minimum": 0, "maximum": 2147483647}),
        "metadata": nullable(
            {"type": "object", "maxProperties": 16, "values": {"type": "string", "maxLength": 512}}
        ),
        "integrations": nullable(
            {
                "type": "array",
                "maxItems": 5,
                "items": {
                    "type": "object",
                    "required": ["type", "wandb"],
                    "properties": {"type": {"enum": ["wandb"]}, "wandb": WANDB},
                },
            }
        ),
        "hyperparameters": HP_SFT,
        "method": METHOD,
    },
}


def resolved(method: dict[str, Any], lines: int) -> dict[str, Any]:
    """The method with every "auto" replaced by what the service picks."""
    kind = method["type"]
    hp = dict((method.get(kind) or {}).get("hyperparameters") or {})
    picks: dict[str, Any] = {
        "n_epochs": 3 if lines >= 100 else 4,
        "batch_size": max(1, min(256, lines // 100)),
        "learning_rate_multiplier": 1.8 if kind == "supervised" else 1.0,
    }
    if kind == "dpo":
        picks["beta"] = 0.1
    if kind == "reinforcement":
        picks.update(compute_multiplier=1.0, eval_interval=1, eval_samples=1)
        hp.setdefault("reasoning_effort", "default")
    for key, pick in picks.items():
        if hp.get(key, "auto") == "auto":
            hp[key] = pick
    out = {"type": kind, kind: {**(method.get(kind) or {}), "hyperparameters": hp}}
    return out


def fine_tuned_model(model: str, suffix: str | None, job_id: str) -> str:
    """``ft:<base>:<org>:<suffix>:<id>``: the name OpenAI gives the result."""
    return f"ft:{model}:{ACCOUNT}:{suffix or ''}:{digest(job_id)}"


# ---------------------------------------------------------------- views


def view(emu: Emulator, row: Row, snap: Snapshot | None = None) -> dict[str, Any]:
    """The ``fine_tuning.job`` object now."""
    d = row.data
    snap = snap or job_snapshot(emu, KIND, row)
    validated = snap.index > 0 or snap.terminal
    method = d["method_resolved"] if validated else d["method"]
    kind = method["type"]
    hp = dict(method[kind].get("hyperparameters") or {})
    succeeded = snap.status == "succeeded"
    fail = d["life"].get("fail") if snap.stopped == "failed" else None
    running = not snap.terminal and not snap.paused and snap.index >= 1
    out: dict[str, Any] = {
        "object": "fine_tuning.job",
        "id": row.id,
        "model": d["model"],
        "created_at": int(row.created_at),
        "finished_at": int(snap.finished_at) if snap.finished_at is not None else None,
        "fine_tuned_model": d["fine_tuned_model"] if succeeded else None,
        "organization_id": ORG,
        "result_files": [d["result_file"]] if succeeded and d.get("result_file") else [],
        "status": snap.status,
        "validation_file": d.get("validation_file"),
        "training_file": d["training_file"],
        "hyperparameters": {
            k: hp.get(k, "auto") for k in ("batch_size", "learning_rate_multiplier", "n_epochs")
        },
        "method": method,
        "trained_tokens": d["trained_tokens"] if succeeded else None,
        "integrations": d.get("integrations"),
        "seed": d["seed"],
        "estimated_finish": int(snap.abs_at(snap.starts[-1])) if running else None,
        "metadata": d.get("metadata"),
        "error": None,
    }
    if fail is not None:
        out["error"] = {
            "code": "server_error" if fail["retryable"] else "invalid_training_file",
            "message": fail["message"],
            "param": None if fail["retryable"] else "training_file",
        }
    return out


def _progress(row: Row, snap: Snapshot) -> tuple[int, float, float]:
    """(total steps, effective start and end of training)."""
    run = [p[0] for p in row.data["life"]["phases"]].index("running")
    return int(row.data["total_steps"]), snap.starts[run], snap.end(run)


def events(emu: Emulator, row: Row) -> list[dict[str, Any]]:
    """Every event so far, newest first (as the API lists them)."""
    d = row.data
    snap = job_snapshot(emu, KIND, row)
    out: list[tuple[float, str, str, str, dict[str, Any]]] = []

    def at(
        t: float,
        message: str,
        level: str = "info",
        kind: str = "message",
        data: dict[str, Any] | None = None,
    ) -> None:
        if t <= snap.t:
            out.append((snap.abs_at(t), message, level, kind, data or {}))

    total, start, end = _progress(row, snap)
    span = 0.0 if end == math.inf else end - start
    at(0.0, f"Created fine-tuning job: {row.id}")
    at(0.0, f"Validating training file: {d['training_file']}")
    at(snap.starts[1], "Files validated, moving job to queued state")
    at(start, "Fine-tuning job started")
    for step in steps_between(total, min(total, 10)):
        loss = loss_at(step, total, row.id)
        at(
            start + span * step / total,
            f"Step {step}/{total}: training loss={loss:.2f}",
            kind="metrics",
            data={
                "step": step,
                "train_loss": loss,
                "total_steps": total,
                "train_mean_token_accuracy": round(1 - loss / 3, 4),
            },
        )
    for step in d["checkpoint_steps"]:
        at(start + span * step / total, f"Checkpoint created at step {step}")
    at(end, "New fine-tuned model created")
    at(end, "The job has successfully completed")
    for begin, finish in snap.pauses:
        out.append((begin, "Fine-tuning job paused", "info", "message", {}))
        if finish is not None:
            out.append((finish, "Fine-tuning job resumed", "info", "message", {}))
    if snap.stopped == "cancelled" and snap.finished_at is not None:
        out.append((snap.finished_at, "Fine-tuning job cancelled", "info", "message", {}))
    if snap.stopped == "failed" and snap.finished_at is not None:
        message = d["life"]["fail"]["message"]
        out.append((snap.finished_at, message, "error", "message", {}))
    out.sort(key=lambda e: e[0])
    return [
        {
            "object": "fine_tuning.job.event",
            "id": f"ftevent-{digest(row.id, when, msg, n=24)}",
            "created_at": int(when),
            "level": level,
            "message": msg,
            "type": kind,
            "data": data,
        }
        for when, msg, level, kind, data in reversed(out)
    ]


def checkpoints(emu: Emulator, row: Row) -> list[dict[str, Any]]:
    """Checkpoints at the ends of the last epochs, newest first."""
    d = row.data
    snap = job_snapshot(emu, KIND, row)
    total, start, end = _progress(row, snap)
    span = 0.0 if end == math.inf else end - start
    out = []
    for step in d["checkpoint_steps"]:
        t = start + span * step / total
        final = step == total
        if t > snap.t or (final and snap.status != "succeeded"):
            continue
        loss = loss_at(step, total, row.id)
        out.append(
            {
                "object": "fine_tuning.job.checkpoint",
                "id": f"ftckpt_{digest(row.id, step, n=24)}",
                "created_at": int(snap.abs_at(t)),
                "fine_tuned_model_checkpoint": (
                    d["fine_tuned_model"] if final else f"{d['fine_tuned_model']}:ckpt-step-{step}"
                ),
                "step_number": step,
                "fine_tuning_job_id": row.id,
                "metrics": {
                    "step": float(step),
                    "train_loss": loss,
                    "train_mean_token_accuracy": round(1 - loss / 3, 4),
                    "valid_loss": round(loss * 1.05, 4),
                    "valid_mean_token_accuracy": round(1 - loss / 2.8, 4),
                    "full_valid_loss": round(loss * 1.06, 4),
                    "full_valid_mean_token_accuracy": round(1 - loss / 2.7, 4),
                },
            }
        )
    return list(reversed(out))


def result_csv(row: Row) -> bytes:
    """The ``step_metrics.csv`` result file of a succeeded job."""
    total = int(row.data["total_steps"])
    lines = ["step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy"]
    for step in range(1, total + 1):
        loss = loss_at(step, total, row.id)
        lines.append(f"{step},{loss},{round(1 - loss / 3, 4)},,")
    return ("\n".join(lines) + "\n").encode()
