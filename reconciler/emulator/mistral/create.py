"""The Mistral create-job body (``JobIn``): its schema, and the checks (files, a similar
active job → 409), token and cost arithmetic and ``dry_run`` that turn it into a job."""

from __future__ import annotations

import math
from typing import Any

from starlette.responses import JSONResponse, Response

from ..core import FILE, JOB, Emulator, haystack, job_snapshot, new_uuid, plan_fault_failure
from ..lifecycle import new_life, plan_failure
from ..schema import BOOL, STR, Node, check, nullable
from ..store import Row
from .dialect import NAME, error, invalid, problem_error
from .jobs import ACTIVE, KIND, MINIMUM_FEE, MODELS, PARK, PHASES, TOKENS_PER_STEP, fine_tuned_model

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


def _plan(emu: Emulator, body: dict[str, Any]) -> dict[str, Any] | Response:
    """The job's resolved fields (files checked, tokens and cost computed), or an error."""
    model = body["model"]
    if model not in MODELS:
        return error(
            400,
            f"Model {model} is not available for fine-tuning. Available models: "
            f"{', '.join(MODELS)}",
            type="invalid_model",
            code="1500",
        )
    if body.get("job_type") == "classifier":
        return error(400, "classifier jobs are not supported by the emulator", param="job_type")
    files = body.get("training_files") or []
    if not files:
        return invalid(
            ["body", "training_files"],
            "too_short",
            "List should have at least 1 item after validation",
            files,
        )
    rows = []
    for ref in [*(f["file_id"] for f in files), *(body.get("validation_files") or [])]:
        row = emu.store.get(FILE, ref, NAME)
        if row is None or row.data["purpose"] != "fine-tune":
            return error(
                404,
                f"File {ref} not found or not a fine-tuning file",
                type="invalid_request_file",
                code="3300",
            )
        rows.append(row)
    train = rows[: len(files)]
    hp = {
        "training_steps": None,
        "learning_rate": 1e-4,
        "weight_decay": 0.1,
        "warmup_fraction": 0.05,
        "epochs": None,
        "seq_len": None,
        "fim_ratio": 0.9,
        **body["hyperparameters"],
    }
    data_tokens = sum(int(r.data["tokens"]) for r in train)
    if hp["training_steps"]:
        steps = int(hp["training_steps"])
        train_tokens = steps * TOKENS_PER_STEP
        hp["epochs"] = round(train_tokens / max(1, data_tokens), 4)
    else:
        epochs = float(hp["epochs"] or 1.0)
        train_tokens = max(1, math.ceil(epochs * data_tokens))
        steps = max(1, math.ceil(train_tokens / TOKENS_PER_STEP))
        hp.update(epochs=epochs, training_steps=steps)
    integrations = [
        {
            "type": "wandb",
            "project": i["project"],
            "name": i.get("name"),
            "run_name": i.get("run_name"),
            "url": None,
        }
        for i in body.get("integrations") or []
    ] or None
    return {
        "model": model,
        "training_files": [r.id for r in train],
        "weights": [f.get("weight", 1.0) for f in files],
        "validation_files": body.get("validation_files") or [],
        "suffix": body.get("suffix"),
        "integrations": integrations,
        "auto_start": bool(body.get("auto_start", False)),
        "hyperparameters": hp,
        "total_steps": steps,
        "train_tokens": train_tokens,
        "data_tokens": data_tokens,
        "cost": round(max(MINIMUM_FEE, train_tokens / 1e6 * MODELS[model]), 4),
        "formats": sorted({str(r.data.get("format")) for r in train}),
        "filenames": [r.data["filename"] for r in train],
    }


def _similar(emu: Emulator, plan: dict[str, Any]) -> Row | None:
    """An active job with the same model, files, suffix and hyperparameters (→ 409)."""
    for row in emu.store.all(JOB, NAME):
        same = all(
            row.data[k] == plan[k] for k in ("model", "training_files", "suffix", "hyperparameters")
        )
        if same and job_snapshot(emu, KIND, row).status in ACTIVE:
            return row
    return None


def create(emu: Emulator, body: dict[str, Any], *, dry_run: bool = False) -> Row | Response:
    if (problem := check(body, CREATE)) is not None:
        return problem_error(problem)
    plan = _plan(emu, body)
    if isinstance(plan, Response):
        return plan
    if dry_run:
        seconds = int(min(3600.0, 40.0 + plan["train_tokens"] / 2000.0))
        hp = plan["hyperparameters"]
        return JSONResponse(
            {
                "object": "job.metadata",
                "expected_duration_seconds": seconds,
                "cost": plan["cost"],
                "cost_currency": "USD",
                "train_tokens_per_step": TOKENS_PER_STEP,
                "train_tokens": plan["train_tokens"],
                "data_tokens": plan["data_tokens"],
                "estimated_start_time": None,
                "epochs": hp["epochs"],
                "training_steps": hp["training_steps"],
                "deprecated": True,
                "details": "dry_run is deprecated: create the job with auto_start false instead",
            }
        )
    if (twin := _similar(emu, plan)) is not None:
        return error(
            409,
            f"A similar job ({twin.id}) is already queued or running; cancel it "
            "or change the request",
            type="conflict",
            code="1409",
        )
    job_id = new_uuid()
    phases = list(PHASES)
    phases[3] = ("RUNNING", float(min(3600.0, 40.0 + plan["train_tokens"] / 2000.0)))
    life = new_life(phases, park=None if plan["auto_start"] else PARK)
    if plan["formats"] not in (["CONVERSATION"], ["GENERAL"]):
        plan_failure(
            life,
            KIND,
            retryable=False,
            message="training data must be instruct "
            f"(messages) examples, not {', '.join(plan['formats']).lower()}",
        )
    hay = haystack(plan["suffix"], plan["model"], job_id, *plan["filenames"])
    plan_fault_failure(emu, KIND, life, hay)
    now = emu.now()
    plan.update(
        life=life,
        haystack=hay,
        fine_tuned_model=fine_tuned_model(plan["model"], plan["suffix"], job_id, now),
    )
    return emu.store.insert(JOB, NAME, job_id, now, plan)
