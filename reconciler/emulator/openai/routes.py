"""The OpenAI endpoints of the emulator: files and uploads (``files``), and here the
fine-tuning jobs (create, list with cursor and metadata filters, get, cancel, pause,
resume, events, checkpoints) and the models a job can train or has trained."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..core import JOB, Emulator, cancel_job, job_snapshot, json_body, listed
from ..store import Row
from ..wire import lookup
from . import jobs
from .create import create
from .dialect import NAME, PREFIX, cursor_list, error, not_found
from .files import file_routes, upload_routes
from .jobs import KIND, MODELS, ORG, ensure_result_file, tuned_jobs

JOBS = f"{PREFIX}/fine_tuning/jobs"


def routes(emu: Emulator) -> list[BaseRoute]:
    return [*file_routes(emu), *upload_routes(emu), *job_routes(emu), *model_routes(emu)]


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
    job = lookup(emu, JOB, NAME, "job_id", not_found("fine-tuning job", "fine_tuning_job_id"))

    def show(row: Row) -> Response:
        ensure_result_file(emu, row)
        return JSONResponse(jobs.view(emu, row))

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
        return cursor_list(request, lambda: listed_jobs(request), 20)

    def listed_jobs(request: Request) -> list[dict[str, Any]]:
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
        return [jobs.view(emu, r) for r in rows]

    @job
    async def get_job(request: Request, row: Row) -> Response:
        return show(row)

    @job
    async def cancel(request: Request, row: Row) -> Response:
        if (ended := cancel_job(emu, KIND, row)) is not None:
            return error(400, f"Job {row.id} has already {ended} and cannot be cancelled.")
        return show(row)

    @job
    async def pause(request: Request, row: Row) -> Response:
        snap = job_snapshot(emu, KIND, row)
        if snap.status != "running":
            return error(400, f"Job {row.id} is {snap.status}; only a running job can be paused.")
        row.data["life"]["pauses"].append([emu.now(), None])
        emu.store.update(row)
        return show(row)

    @job
    async def resume(request: Request, row: Row) -> Response:
        if not job_snapshot(emu, KIND, row).paused:
            return error(400, f"Job {row.id} is not paused.")
        row.data["life"]["pauses"][-1][1] = emu.now()
        emu.store.update(row)
        return show(row)

    @job
    async def events(request: Request, row: Row) -> Response:
        return cursor_list(request, lambda: jobs.events(emu, row), 20)

    @job
    async def checkpoints(request: Request, row: Row) -> Response:
        return cursor_list(request, lambda: jobs.checkpoints(emu, row), 10, ends=True)

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
            for m in MODELS
        ]
        tuned = [
            {
                "id": r.data["fine_tuned_model"],
                "object": "model",
                "created": int(snap.finished_at or r.created_at),
                "owned_by": ORG,
            }
            for r, snap in tuned_jobs(emu)
        ]
        return base + tuned

    def no_model(name: str) -> Response:
        return error(
            404, f"The model '{name}' does not exist", param="model", code="model_not_found"
        )

    async def list_models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": models()})

    async def get_model(request: Request) -> Response:
        name = request.path_params["model"]
        found = next((m for m in models() if m["id"] == name), None)
        return no_model(name) if found is None else JSONResponse(found)

    async def delete_model(request: Request) -> Response:
        name = request.path_params["model"]
        if name in MODELS:
            return error(
                403, "You have insufficient permissions to delete this model.", param="model"
            )
        for row, _ in tuned_jobs(emu):
            if row.data["fine_tuned_model"] == name:
                row.data["model_deleted"] = True
                emu.store.update(row)
                return JSONResponse({"id": name, "object": "model", "deleted": True})
        return no_model(name)

    return [
        Route(f"{PREFIX}/models", list_models, methods=["GET"]),
        Route(f"{PREFIX}/models/{{model}}", get_model, methods=["GET"]),
        Route(f"{PREFIX}/models/{{model}}", delete_model, methods=["DELETE"]),
    ]
