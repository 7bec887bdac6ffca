"""OpenAI fine-tuning jobs in the emulator (providers.md §2.4–2.6): the lifecycle, the
model catalogue, and the wire views of a job, its events, checkpoints and result file,
all derived from the job's life on the clock."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from typing import Any

from ..core import FILE, JOB, Emulator, digest, job_snapshot, loss_at, steps_between
from ..lifecycle import Snapshot
from ..store import Row
from .dialect import NAME, PREFIX
from .host import Host, openai_kind

# bad files are found while validating_files; cancel is immediate; "paused" is not in the
# spec's status enum, but what its own pause example answers
KIND = openai_kind(NAME)
ORG = "org-emulator"
ACCOUNT = "personal"  # the org slug in ft: model names
PHASES = (("validating_files", 5.0), ("queued", 5.0), ("running", 0.0), ("succeeded", 0.0))
HOLDABLE = tuple(status for status, _ in PHASES[:-1])  # what a `stuck` fault may hold
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
OPENAI = Host(
    NAME,
    PREFIX,
    KIND,
    PHASES,
    MODELS,
    completion_models=COMPLETION_MODELS,
    rft_models=RFT_MODELS,
)


def fine_tuned_model(model: str, suffix: str | None, job_id: str, host: Host = OPENAI) -> str:
    """The name the host gives the result (OpenAI: ``ft:<base>:<org>:<suffix>:<id>``)."""
    return host.model_name(model, suffix, digest(job_id, n=32 if host is not OPENAI else 8))


def tuned_jobs(emu: Emulator, host: Host = OPENAI) -> Iterator[tuple[Row, Snapshot]]:
    """Succeeded jobs whose fine-tuned model is not deleted, with their snapshots."""
    for row in emu.store.all(JOB, host.name):
        if not row.data.get("model_deleted"):
            snap = job_snapshot(emu, host.kind, row)
            if snap.status == "succeeded":
                yield row, snap


def job_summary(emu: Emulator, row: Row, host: Host = OPENAI) -> dict[str, Any]:
    """The job in ``/_emulator/state``."""
    return {
        "status": job_snapshot(emu, host.kind, row).status,
        "model": row.data["model"],
        "suffix": row.data.get("suffix"),
        "metadata": row.data.get("metadata"),
        "training_file": row.data["training_file"],
        "fine_tuned_model": row.data["fine_tuned_model"],
    }


# ---------------------------------------------------------------- views


def view(
    emu: Emulator, row: Row, snap: Snapshot | None = None, host: Host = OPENAI
) -> dict[str, Any]:
    """The ``fine_tuning.job`` object now."""
    d = row.data
    snap = snap or job_snapshot(emu, host.kind, row)
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
    if host.job_fields is not None:
        run = [p[0] for p in d["life"]["phases"]].index("running")
        done = round(int(d["total_steps"]) * snap.fraction(run))
        out = host.job_fields(out, d, done)
    return out


def _progress(row: Row, snap: Snapshot) -> tuple[int, float, float]:
    """(total steps, effective start and end of training)."""
    run = [p[0] for p in row.data["life"]["phases"]].index("running")
    return int(row.data["total_steps"]), snap.starts[run], snap.end(run)


def events(emu: Emulator, row: Row, host: Host = OPENAI) -> list[dict[str, Any]]:
    """Every event so far, newest first (as the API lists them)."""
    d = row.data
    snap = job_snapshot(emu, host.kind, row)
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


def checkpoints(emu: Emulator, row: Row, host: Host = OPENAI) -> list[dict[str, Any]]:
    """Checkpoints at the ends of the last epochs, newest first."""
    d = row.data
    snap = job_snapshot(emu, host.kind, row)
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


def ensure_result_file(emu: Emulator, row: Row, host: Host = OPENAI) -> None:
    """A succeeded job's ``step_metrics.csv`` exists from the first time anyone looks."""
    if row.data.get("result_file") or job_snapshot(emu, host.kind, row).status != "succeeded":
        return
    content = result_csv(row)
    file_id = f"file-{digest(row.id, 'result', n=22)}"
    if emu.store.get(FILE, file_id) is None:
        emu.store.insert(
            FILE,
            host.name,
            file_id,
            emu.now(),
            {
                "filename": "step_metrics.csv",
                "purpose": "fine-tune-results",
                "bytes": len(content),
                "sha256": hashlib.sha256(content).hexdigest(),
            },
            content,
        )
    row.data["result_file"] = file_id
    emu.store.update(row)
