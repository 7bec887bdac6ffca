"""The OpenAI fine-tuning job and model endpoints of the emulator: create (with the
service's checks; data problems fail the job while validating files), list with cursor
and metadata filters, get, cancel (immediate), pause, resume, events, checkpoints."""

from __future__ import annotations

import hashlib
import math
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from . import openai_jobs as oj
from .core import (
    FILE,
    JOB,
    Emulator,
    digest,
    haystack,
    job_snapshot,
    json_body,
    listed,
    plan_fault_failure,
    token,
)
from .lifecycle import new_life, plan_failure, request_cancel
from .openai_files import PREFIX, limit_param, page
from .openai_jobs import KIND, error, problem_error
from .schema import check
from .store import Row

NAME = "openai"
JOBS = f"{PREFIX}/fine_tuning/jobs"


def _metadata_filter(request: Request) -> dict[str, str] | None:
    """``metadata[k]=v`` pairs; ``{}`` for the literal ``metadata=null`` (jobs without)."""
    if request.query_params.get("metadata") == "null":
        return {}
    pairs = {
        key[len("metadata[") : -1]: value
        for key, value in request.query_params.items()
        if key.startswith("metadata[") and key.endswith("]")
    }
    return pairs or None


def job_routes(emu: Emulator) -> list[BaseRoute]:
    def find(request: Request) -> Row | Response:
        job_id = request.path_params["job_id"]
        row = emu.store.get(JOB, job_id, NAME)
        if row is None:
            return error(404, f"No such fine-tuning job: {job_id}", param="fine_tuning_job_id")
        return row

    def show(row: Row) -> Response:
        ensure_result_file(emu, row)
        return JSONResponse(oj.view(emu, row))

    async def create_job(request: Request) -> Response:
        body, bad = await json_body(request)
        if bad or not isinstance(body, dict):
            return error(
                400,
                "We could not parse the JSON body of your request. "
                f"({bad or 'expected a JSON object'})",
            )
        row = create(emu, body)
        return row if isinstance(row, Response) else show(row)

    async def list_jobs(request: Request) -> Response:
        limit = limit_param(request, 20, 100)
        if isinstance(limit, Response):
            return limit
        wanted = _metadata_filter(request)
        now = emu.now()
        rows = [r for r in reversed(emu.store.all(JOB, NAME)) if listed(emu, r, now)]
        if wanted == {}:
            rows = [r for r in rows if not r.data.get("metadata")]
        elif wanted:
            rows = [
                r
                for r in rows
                if all((r.data.get("metadata") or {}).get(k) == v for k, v in wanted.items())
            ]
        for row in rows:
            ensure_result_file(emu, row)
        data, more = page([oj.view(emu, r) for r in rows], request.query_params.get("after"), limit)
        return JSONResponse({"object": "list", "data": data, "has_more": more})

    async def get_job(request: Request) -> Response:
        row = find(request)
        return row if isinstance(row, Response) else show(row)

    async def cancel(request: Request) -> Response:
        row = find(request)
        if isinstance(row, Response):
            return row
        snap = job_snapshot(emu, KIND, row)
        if snap.terminal:
            return error(400, f"Job {row.id} has already {snap.status} and cannot be cancelled.")
        request_cancel(row.data["life"], snap, emu.now())
        emu.store.update(row)
        return show(row)

    async def pause(request: Request) -> Response:
        row = find(request)
        if isinstance(row, Response):
            return row
        snap = job_snapshot(emu, KIND, row)
        if snap.status != "running" or snap.paused:
            state = "paused" if snap.paused else snap.status
            return error(400, f"Job {row.id} is {state}; only a running job can be paused.")
        row.data["life"]["pauses"].append([emu.now(), None])
        emu.store.update(row)
        return show(row)

    async def resume(request: Request) -> Response:
        row = find(request)
        if isinstance(row, Response):
            return row
        if not job_snapshot(emu, KIND, row).paused:
            return error(400, f"Job {row.id} is not paused.")
        row.data["life"]["pauses"][-1][1] = emu.now()
        emu.store.update(row)
        return show(row)

    async def events(request: Request) -> Response:
        row = find(request)
        if isinstance(row, Response):
            return row
        limit = limit_param(request, 20, 100)
        if isinstance(limit, Response):
            return limit
        data, more = page(oj.events(emu, row), request.query_params.get("after"), limit)
        return JSONResponse({"object": "list", "data": data, "has_more": more})

    async def checkpoints(request: Request) -> Response:
        row = find(request)
        if isinstance(row, Response):
            return row
        limit = limit_param(request, 10, 100)
        if isinstance(limit, Response):
            return limit
        data, more = page(oj.checkpoints(emu, row), request.query_params.get("after"), limit)
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "has_more": more,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }
        )

    return [
        Route(JOBS, create_job, methods=["POST"]),
        Route(JOBS, list_jobs, methods=["GET"]),
        Route(f"{JOBS}/{{job_id}}", get_job, methods=["GET"]),
        Route(f"{JOBS}/{{job_id}}/cancel", cancel, methods=["POST"]),
        Route(f"{JOBS}/{{job_id}}/pause", pause, methods=["POST"]),
        Route(f"{JOBS}/{{job_id}}/resume", resume, methods=["POST"]),
        Route(f"{JOBS}/{{job_id}}/events", events, methods=["GET"]),
        Route(f"{JOBS}/{{job_id}}/checkpoints", checkpoints, methods=["GET"]),
    ]


def model_routes(emu: Emulator) -> list[BaseRoute]:
    def models() -> list[dict[str, Any]]:
        base = [
            {"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "system"}
            for m in oj.MODELS
        ]
        tuned = [
            {
                "id": r.data["fine_tuned_model"],
                "object": "model",
                "created": int(snap.finished_at or r.created_at),
                "owned_by": oj.ORG,
            }
            for r in emu.store.all(JOB, NAME)
            if not r.data.get("model_deleted")
            and (snap := job_snapshot(emu, KIND, r)).status == "succeeded"
        ]
        return base + tuned

    async def list_models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": models()})

    async def get_model(request: Request) -> Response:
        name = request.path_params["model"]
        found = next((m for m in models() if m["id"] == name), None)
        if found is None:
            return error(
                404, f"The model '{name}' does not exist", param="model", code="model_not_found"
            )
        return JSONResponse(found)

    async def delete_model(request: Request) -> Response:
        name = request.path_params["model"]
        if name in oj.MODELS:
            return error(
                403, "You have insufficient permissions to delete this model.", param="model"
            )
        for row in emu.store.all(JOB, NAME):
            if (
                row.data["fine_tuned_model"] == name
                and not row.data.get("model_deleted")
                and job_snapshot(emu, KIND, row).status == "succeeded"
            ):
                row.data["model_deleted"] = True
                emu.store.update(row)
                return JSONResponse({"id": name, "object": "model", "deleted": True})
        return error(
            404, f"The model '{name}' does not exist", param="model", code="model_not_found"
        )

    return [
        Route(f"{PREFIX}/models", list_models, methods=["GET"]),
        Route(f"{PREFIX}/models/{{model}}", get_model, methods=["GET"]),
        Route(f"{PREFIX}/models/{{model}}", delete_model, methods=["DELETE"]),
    ]


# ---------------------------------------------------------------- job creation


def _file_for(emu: Emulator, file_id: str, param: str) -> Row | Response:
    row = emu.store.get(FILE, file_id, NAME)
    if row is None:
        return error(400, f"invalid {param}: {file_id}", param=param, code="invalid_file")
    if row.data["purpose"] != "fine-tune":
        return error(
            400,
            f"File {file_id} has purpose '{row.data['purpose']}'; fine-tuning "
            "needs purpose 'fine-tune'.",
            param=param,
            code="invalid_file",
        )
    return row


def fine_tunable(emu: Emulator, model: str) -> bool:
    if model in oj.MODELS:
        return True
    return any(
        r.data["fine_tuned_model"] == model
        and not r.data.get("model_deleted")
        and job_snapshot(emu, KIND, r).status == "succeeded"
        for r in emu.store.all(JOB, NAME)
    )


def create(emu: Emulator, body: dict[str, Any]) -> Row | Response:
    """Check and record a new job (its whole future is planned here)."""
    if (problem := check(body, oj.CREATE)) is not None:
        return problem_error(problem)
    for key in body.get("metadata") or {}:
        if len(key) > 64:
            return error(
                400, "Invalid 'metadata': keys are at most 64 characters.", param="metadata"
            )
    model = body["model"]
    if not fine_tunable(emu, model):
        return error(
            400,
            f"Model {model} is not available for fine-tuning or does not exist.",
            param="model",
            code="model_not_available",
        )
    if body.get("hyperparameters") and body.get("method"):
        return error(
            400,
            "Specify hyperparameters in 'method', not both 'hyperparameters' and 'method'.",
            param="hyperparameters",
        )
    method = body.get("method") or {
        "type": "supervised",
        "supervised": {"hyperparameters": body.get("hyperparameters") or {}},
    }
    base = model.split(":")[1] if model.startswith("ft:") else model
    if method["type"] == "reinforcement" and base not in oj.RFT_MODELS:
        return error(
            400,
            f"Model {model} does not support reinforcement fine-tuning.",
            param="model",
            code="model_not_available",
        )
    train = _file_for(emu, body["training_file"], "training_file")
    if isinstance(train, Response):
        return train
    valid: Row | None = None
    if body.get("validation_file"):
        found = _file_for(emu, body["validation_file"], "validation_file")
        if isinstance(found, Response):
            return found
        valid = found
    job_id = f"ftjob-{token(24)}"
    lines = max(1, int(train.data["lines"]))
    final = oj.resolved(method, lines)
    hp = final[method["type"]]["hyperparameters"]
    epochs, batch = int(hp["n_epochs"]), int(hp["batch_size"])
    per_epoch = max(1, math.ceil(lines / batch))
    total = per_epoch * epochs
    trained = int(train.data["tokens"]) * epochs
    phases = list(oj.PHASES)
    phases[2] = ("running", float(min(3600.0, 40.0 + trained / 2000.0)))
    life = new_life(phases)
    reason = _data_problem(train, method["type"], base)
    if reason:
        plan_failure(life, KIND, retryable=False, message=reason)
    hay = haystack(
        body.get("suffix"),
        model,
        job_id,
        train.data["filename"],
        *(body.get("metadata") or {}).values(),
    )
    if life["fail"] is None:
        plan_fault_failure(emu, KIND, life, hay)
    data = {
        "model": model,
        "training_file": train.id,
        "validation_file": valid.id if valid else None,
        "suffix": body.get("suffix"),
        "metadata": body.get("metadata"),
        "integrations": body.get("integrations"),
        "seed": body["seed"] if body.get("seed") is not None else int(digest(job_id), 16) % 2**31,
        "method": {
            "type": method["type"],
            method["type"]: {
                **(method.get(method["type"]) or {}),
                "hyperparameters": {
                    k: "auto" for k in ("n_epochs", "batch_size", "learning_rate_multiplier")
                }
                | dict((method.get(method["type"]) or {}).get("hyperparameters") or {}),
            },
        },
        "method_resolved": final,
        "fine_tuned_model": oj.fine_tuned_model(model, body.get("suffix"), job_id),
        "trained_tokens": trained,
        "total_steps": total,
        "checkpoint_steps": [per_epoch * e for e in range(max(1, epochs - 2), epochs + 1)],
        "life": life,
        "haystack": hay,
    }
    return emu.store.insert(JOB, NAME, job_id, emu.now(), data)


def _data_problem(train: Row, method: str, base: str) -> str | None:
    """Why the training data cannot train this method, as validation reports it."""
    d = train.data
    if d.get("error"):
        return f"The training file {train.id} is not valid JSONL: {d['error']}."
    wanted = {"supervised": "CONVERSATION", "dpo": "PREFERENCE", "reinforcement": "CONVERSATION"}
    expected = "INSTRUCTION" if base in oj.COMPLETION_MODELS else wanted[method]
    if d.get("format") != expected:
        return (
            f"The training file {train.id} has {str(d.get('format')).lower()} examples; "
            f"{method} fine-tuning of {base} needs {expected.lower()} examples."
        )
    if int(d.get("lines", 0)) < oj.MIN_EXAMPLES:
        return (
            f"Training file {train.id} has {d['lines']} example(s), but must have at least "
            f"{oj.MIN_EXAMPLES} examples."
        )
    return None


def ensure_result_file(emu: Emulator, row: Row) -> None:
    """A succeeded job's ``step_metrics.csv`` exists from the first time anyone looks."""
    if row.data.get("result_file") or job_snapshot(emu, KIND, row).status != "succeeded":
        return
    content = oj.result_csv(row)
    file_id = f"file-{digest(row.id, 'result', n=22)}"
    if emu.store.get(FILE, file_id) is None:
        emu.store.insert(
            FILE,
            NAME,
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
