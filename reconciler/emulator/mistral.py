"""Mistral under ``/mistral/v1`` (providers.md §4): files (``mistral_files``) and
fine-tuning jobs: create (``auto_start``, ``dry_run``, 409 for a similar active job),
list with page/page_size/total and filters, detailed get, cancel
(``CANCELLATION_REQUESTED`` → ``CANCELLED``) and start (for jobs parked at VALIDATED)."""

from __future__ import annotations

import math
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from . import mistral_jobs as mj
from .core import (
    FILE,
    JOB,
    Emulator,
    haystack,
    job_snapshot,
    json_body,
    listed,
    new_uuid,
    parse_iso,
    plan_fault_failure,
)
from .lifecycle import new_life, plan_failure, request_cancel
from .mistral_files import PREFIX, file_routes, page_of
from .mistral_jobs import error, invalid, problem_error
from .schema import check
from .store import Row

NAME = "mistral"
KIND = mj.KIND
__all__ = ["KIND", "NAME", "error", "job_summary", "routes"]


def _plan(emu: Emulator, body: dict[str, Any]) -> dict[str, Any] | Response:
    """The job's resolved fields (files checked, tokens and cost computed), or an error."""
    model = body["model"]
    if model not in mj.MODELS:
        return error(
            400,
            f"Model {model} is not available for fine-tuning. Available models: "
            f"{', '.join(mj.MODELS)}",
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
        train_tokens = steps * mj.TOKENS_PER_STEP
        hp["epochs"] = round(train_tokens / max(1, data_tokens), 4)
    else:
        epochs = float(hp["epochs"] or 1.0)
        train_tokens = max(1, math.ceil(epochs * data_tokens))
        steps = max(1, math.ceil(train_tokens / mj.TOKENS_PER_STEP))
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
        "cost": round(max(mj.MINIMUM_FEE, train_tokens / 1e6 * mj.MODELS[model]), 4),
        "formats": sorted({str(r.data.get("format")) for r in train}),
        "filenames": [r.data["filename"] for r in train],
    }


def _similar(emu: Emulator, plan: dict[str, Any]) -> Row | None:
    """An active job with the same model, files, suffix and hyperparameters (→ 409)."""
    for row in emu.store.all(JOB, NAME):
        same = all(
            row.data[k] == plan[k] for k in ("model", "training_files", "suffix", "hyperparameters")
        )
        if same and job_snapshot(emu, KIND, row).status in mj.ACTIVE:
            return row
    return None


def create(emu: Emulator, body: dict[str, Any], *, dry_run: bool = False) -> Row | Response:
    if (problem := check(body, mj.CREATE)) is not None:
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
                "train_tokens_per_step": mj.TOKENS_PER_STEP,
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
    phases = list(mj.PHASES)
    phases[3] = ("RUNNING", float(min(3600.0, 40.0 + plan["train_tokens"] / 2000.0)))
    life = new_life(phases, park=None if plan["auto_start"] else mj.PARK)
    if plan["formats"] not in (["CONVERSATION"], ["GENERAL"]):
        plan_failure(
            life,
            KIND,
            retryable=False,
            message="training data must be instruct "
            f"(messages) examples, not {', '.join(plan['formats']).lower()}",
        )
    hay = haystack(plan["suffix"], plan["model"], job_id, *plan["filenames"])
    if life["fail"] is None:
        plan_fault_failure(emu, KIND, life, hay)
    now = emu.now()
    plan.update(
        life=life,
        haystack=hay,
        fine_tuned_model=mj.fine_tuned_model(plan["model"], plan["suffix"], job_id, now),
    )
    return emu.store.insert(JOB, NAME, job_id, now, plan)


def job_summary(emu: Emulator, row: Row) -> dict[str, Any]:
    return {
        "status": job_snapshot(emu, KIND, row).status,
        "model": row.data["model"],
        "suffix": row.data["suffix"],
        "training_files": row.data["training_files"],
        "fine_tuned_model": row.data["fine_tuned_model"],
    }


def job_routes(emu: Emulator) -> list[BaseRoute]:
    jobs = f"{PREFIX}/fine_tuning/jobs"

    def find(request: Request) -> Row | Response:
        row = emu.store.get(JOB, request.path_params["job_id"], NAME)
        if row is None:
            return error(404, f"Job {request.path_params['job_id']} not found", code="3001")
        return row

    async def create_job(request: Request) -> Response:
        body, bad = await json_body(request)
        if bad or not isinstance(body, dict):
            return invalid(["body"], "json_invalid", bad or "Input should be a valid dictionary")
        dry = request.query_params.get("dry_run", "").lower() in ("true", "1")
        row = create(emu, body, dry_run=dry)
        return row if isinstance(row, Response) else JSONResponse(mj.view(emu, row))

    async def list_jobs(request: Request) -> Response:
        q = request.query_params
        after, before = (
            parse_iso(q.get("created_after", "")),
            parse_iso(q.get("created_before", "")),
        )
        now = emu.now()
        rows = [
            r
            for r in reversed(emu.store.all(JOB, NAME))
            if listed(emu, r, now)
            and q.get("model") in (None, r.data["model"])
            and q.get("suffix") in (None, r.data["suffix"])
            and (after is None or r.created_at >= after)
            and (before is None or r.created_at <= before)
        ]
        items = [mj.view(emu, r) for r in rows]
        if q.get("status"):
            items = [i for i in items if i["status"] == q["status"]]
        return page_of(request, items)

    async def get_job(request: Request) -> Response:
        row = find(request)
        return row if isinstance(row, Response) else JSONResponse(mj.view(emu, row, detailed=True))

    async def cancel(request: Request) -> Response:
        row = find(request)
        if isinstance(row, Response):
            return row
        snap = job_snapshot(emu, KIND, row)
        if snap.terminal:
            return error(400, f"Job {row.id} is {snap.status} and cannot be cancelled", code="3002")
        request_cancel(row.data["life"], snap, emu.now())
        emu.store.update(row)
        return JSONResponse(mj.view(emu, row, detailed=True))

    async def start(request: Request) -> Response:
        row = find(request)
        if isinstance(row, Response):
            return row
        snap = job_snapshot(emu, KIND, row)
        life = row.data["life"]
        if snap.status != "VALIDATED" or life["park"] is None or life["released"] is not None:
            return error(
                400,
                f"Job {row.id} is {snap.status}: only a validated job created with "
                "auto_start false can be started",
                code="3003",
            )
        life["released"] = snap.t
        emu.store.update(row)
        return JSONResponse(mj.view(emu, row, detailed=True))

    return [
        Route(jobs, create_job, methods=["POST"]),
        Route(jobs, list_jobs, methods=["GET"]),
        Route(f"{jobs}/{{job_id}}", get_job, methods=["GET"]),
        Route(f"{jobs}/{{job_id}}/cancel", cancel, methods=["POST"]),
        Route(f"{jobs}/{{job_id}}/start", start, methods=["POST"]),
    ]


def routes(emu: Emulator) -> list[BaseRoute]:
    return [*file_routes(emu), *job_routes(emu)]
