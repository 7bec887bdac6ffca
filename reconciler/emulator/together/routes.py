"""The Together endpoints of the emulator: files (``files``), and here the fine-tune
jobs (create, list, get, cancel: ``cancel_requested`` → ``cancelled``, delete, events,
checkpoints, metrics), price estimates and the model catalogue the SDK reads before
every create."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..core import FILE, JOB, Emulator, cancel_job, job_snapshot, json_body, listed
from ..schema import check
from ..store import Row
from ..wire import lookup
from . import jobs
from .create import ESTIMATE, checkpoint_model, create
from .dialect import NAME, PREFIX, error, file_not_found, not_found, problem_error
from .files import file_routes, processing_status
from .jobs import KIND, MODELS, limits, price_per_million


def routes(emu: Emulator) -> list[BaseRoute]:
    return [*file_routes(emu), *job_routes(emu)]


def job_routes(emu: Emulator) -> list[BaseRoute]:
    job = lookup(emu, JOB, NAME, "id", not_found("fine-tune job"))

    async def create_job(request: Request) -> Response:
        body, bad = await json_body(request)
        if bad or not isinstance(body, dict):
            return error(400, bad or "the request body must be a JSON object")
        row = create(emu, body)
        if isinstance(row, Response):
            return row
        return JSONResponse(jobs.view(emu, row, truncated=True))

    async def list_jobs(request: Request) -> Response:
        now = emu.now()
        rows = [r for r in emu.store.all(JOB, NAME) if listed(emu, r, now)]
        return JSONResponse({"data": [jobs.view(emu, r, truncated=True) for r in rows]})

    @job
    async def get_job(request: Request, row: Row) -> Response:
        return JSONResponse(jobs.view(emu, row))

    @job
    async def delete_job(request: Request, row: Row) -> Response:
        if not job_snapshot(emu, KIND, row).terminal:
            return error(400, f"job {row.id} is still active: cancel it first", param="id")
        emu.store.delete(JOB, row.id)
        return JSONResponse({"message": f"fine-tune job {row.id} deleted"})

    @job
    async def cancel(request: Request, row: Row) -> Response:
        if (ended := cancel_job(emu, KIND, row)) is not None:
            return error(400, f"job {row.id} cannot be cancelled: it is {ended}", param="id")
        return JSONResponse(jobs.view(emu, row, truncated=True))

    @job
    async def events(request: Request, row: Row) -> Response:
        return JSONResponse({"data": jobs.view(emu, row)["events"]})

    @job
    async def checkpoints(request: Request, row: Row) -> Response:
        return JSONResponse({"data": jobs.checkpoints(emu, row)})

    @job
    async def metrics(request: Request, row: Row) -> Response:
        return JSONResponse({"metrics": jobs.metrics(emu, row)})

    async def estimate(request: Request) -> Response:
        body, bad = await json_body(request)
        if bad or not isinstance(body, dict):
            return error(400, bad or "the request body must be a JSON object")
        if (problem := check(body, ESTIMATE)) is not None:
            return problem_error(problem)
        return _estimate(emu, body)

    async def supported(request: Request) -> Response:
        return JSONResponse({"models": sorted(MODELS)})

    async def model_limits(request: Request) -> Response:
        model = request.query_params.get("model_name")
        if not model:
            return error(400, "model_name: is required", param="model_name")
        if model not in MODELS:
            return JSONResponse({"message": f"model {model} not found"}, status_code=404)
        return JSONResponse(limits(model))

    return [
        Route(f"{PREFIX}/fine-tunes", create_job, methods=["POST"]),
        Route(f"{PREFIX}/fine-tunes", list_jobs, methods=["GET"]),
        Route(f"{PREFIX}/fine-tunes/estimate-price", estimate, methods=["POST"]),
        Route(f"{PREFIX}/fine-tunes/models/supported", supported, methods=["GET"]),
        Route(f"{PREFIX}/fine-tunes/models/limits", model_limits, methods=["GET"]),
        Route(f"{PREFIX}/fine-tunes/{{id}}", get_job, methods=["GET"]),
        Route(f"{PREFIX}/fine-tunes/{{id}}", delete_job, methods=["DELETE"]),
        Route(f"{PREFIX}/fine-tunes/{{id}}/cancel", cancel, methods=["POST"]),
        Route(f"{PREFIX}/fine-tunes/{{id}}/events", events, methods=["GET"]),
        Route(f"{PREFIX}/fine-tunes/{{id}}/checkpoints", checkpoints, methods=["GET"]),
        Route(f"{PREFIX}/fine-tunes/{{id}}/metrics", metrics, methods=["GET"]),
    ]


def _estimate(emu: Emulator, body: dict[str, Any]) -> Response:
    """What training on the named files would cost, or why no estimate is available."""
    train = emu.store.get(FILE, body["training_file"], NAME)
    if train is None:
        return file_not_found(body["training_file"], "training_file")
    status = processing_status(emu, train)
    if status != "COMPLETED":
        reason = "train_file_invalid" if status == "INVALID_FORMAT" else "train_file_not_validated"
        return JSONResponse({"estimation_available": False, "unavailable_reason": reason})
    valid = (
        emu.store.get(FILE, body["validation_file"], NAME) if body.get("validation_file") else None
    )
    epochs, evals = body.get("n_epochs", 1), body.get("n_evals", 0)
    train_tokens = int(train.data["tokens"]) * epochs
    eval_tokens = (int(valid.data["tokens"]) if valid else 0) * evals
    ttype = body.get("training_type") or {}
    method = body.get("training_method") or {}
    model = body.get("model") or checkpoint_model(emu, str(body.get("from_checkpoint") or ""))
    rate = price_per_million(
        str(model or ""),
        full=ttype.get("type") == "Full",
        dpo=method.get("method") == "dpo",
    )
    return JSONResponse(
        {
            "estimation_available": True,
            "estimated_total_price": (train_tokens + eval_tokens) * rate / 1e6,
            "allowed_to_proceed": True,
            "user_limit": 1000.0,
            "estimated_train_token_count": float(train_tokens),
            "estimated_eval_token_count": float(eval_tokens),
        }
    )
