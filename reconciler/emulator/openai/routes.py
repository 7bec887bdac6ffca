"""The OpenAI endpoints of the emulator: files and uploads (``files``), and here the
fine-tuning jobs (create, list with cursor and metadata filters, get, cancel, pause,
resume, events, checkpoints) and the models a job can train or has trained. Every
builder takes a ``Host``: another host serves the same routes with its own rules, under
its own prefix (and Azure's dated ``?api-version=`` surface besides)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..core import JOB, Emulator, cancel_job, job_snapshot, json_body, listed
from ..store import Row
from ..wire import Endpoint, lookup
from . import jobs
from .create import create
from .dialect import cursor_list, not_found
from .files import file_routes, upload_routes
from .host import Host
from .jobs import OPENAI, ORG, ensure_result_file, tuned_jobs


def bound(
    host: Host,
) -> tuple[Callable[[Emulator], list[BaseRoute]], Callable[[Emulator, Row], dict[str, Any]]]:
    """``routes`` and ``job_summary`` of another host's package (``core.ProviderApi``)."""
    return (lambda emu: routes(emu, host)), (lambda emu, row: jobs.job_summary(emu, row, host))


def routes(emu: Emulator, host: Host = OPENAI) -> list[BaseRoute]:
    out: list[BaseRoute] = []
    for prefix in (host.prefix, host.dated_prefix):
        if prefix is None:
            continue
        out += [*file_routes(emu, host, prefix), *job_routes(emu, host, prefix)]
        out += upload_routes(emu, host, prefix) if host.uploads else []
        out += model_routes(emu, host, prefix) if host.model_routes else []
    return out


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


def job_routes(emu: Emulator, host: Host = OPENAI, prefix: str | None = None) -> list[BaseRoute]:
    prefix = prefix or host.prefix
    dated = prefix == host.dated_prefix
    kind, error, jobs_path = host.kind, host.error, f"{prefix}/fine_tuning/jobs"
    missing = not_found("fine-tuning job", "fine_tuning_job_id", error)
    job = lookup(emu, JOB, host.name, "job_id", missing)

    def show(row: Row, status: int = 200) -> Response:
        ensure_result_file(emu, row, host)
        headers = {"location": f"{jobs_path}/{row.id}"} if status == 201 else None
        return JSONResponse(jobs.view(emu, row, host=host), status_code=status, headers=headers)

    async def create_job(request: Request) -> Response:
        body, bad = await json_body(request)
        if bad or not isinstance(body, dict):
            return error(
                400,
                "We could not parse the JSON body of your request. "
                f"({bad or 'expected a JSON object'})",
            )
        version = request.query_params.get("api-version", "")
        row = create(emu, body, host, dated=dated and version.endswith("-preview"))
        # the dated surface answers 201 and a Location (Azure's preview example)
        return row if isinstance(row, Response) else show(row, 201 if dated else 200)

    async def list_jobs(request: Request) -> Response:
        return cursor_list(request, lambda: listed_jobs(request), 20, error=error)

    def listed_jobs(request: Request) -> list[dict[str, Any]]:
        # a host without the filter ignores metadata[...] and lists every job
        wanted = _metadata_filter(request) if host.metadata_filter else None
        now = emu.now()
        rows = [r for r in reversed(emu.store.all(JOB, host.name)) if listed(emu, r, now)]
        if wanted == {}:
            rows = [r for r in rows if not r.data.get("metadata")]
        elif wanted:
            rows = [
                r
                for r in rows
                if all((r.data.get("metadata") or {}).get(k) == v for k, v in wanted.items())
            ]
        for row in rows:
            ensure_result_file(emu, row, host)
        return [jobs.view(emu, r, host=host) for r in rows]

    @job
    async def get_job(request: Request, row: Row) -> Response:
        return show(row)

    @job
    async def cancel(request: Request, row: Row) -> Response:
        if (ended := cancel_job(emu, kind, row)) is not None:
            return error(400, f"Job {row.id} has already {ended} and cannot be cancelled.")
        return show(row)

    @job
    async def pause(request: Request, row: Row) -> Response:
        snap = job_snapshot(emu, kind, row)
        if snap.status != "running":
            return error(400, f"Job {row.id} is {snap.status}; only a running job can be paused.")
        row.data["life"]["pauses"].append([emu.now(), None])
        emu.store.update(row)
        return show(row)

    @job
    async def resume(request: Request, row: Row) -> Response:
        if not job_snapshot(emu, kind, row).paused:
            return error(400, f"Job {row.id} is not paused.")
        row.data["life"]["pauses"][-1][1] = emu.now()
        emu.store.update(row)
        return show(row)

    @job
    async def events(request: Request, row: Row) -> Response:
        return cursor_list(request, lambda: jobs.events(emu, row, host), 20, error=error)

    @job
    async def checkpoints(request: Request, row: Row) -> Response:
        return cursor_list(
            request, lambda: jobs.checkpoints(emu, row, host), 10, ends=True, error=error
        )

    out = [
        Route(jobs_path, create_job, methods=["POST"]),
        Route(jobs_path, list_jobs, methods=["GET"]),
        Route(f"{jobs_path}/{{job_id}}", get_job, methods=["GET"]),
        Route(f"{jobs_path}/{{job_id}}/cancel", cancel, methods=["POST"]),
        Route(f"{jobs_path}/{{job_id}}/events", events, methods=["GET"]),
        Route(f"{jobs_path}/{{job_id}}/checkpoints", checkpoints, methods=["GET"]),
    ]
    if host.pause:
        out += [
            Route(f"{jobs_path}/{{job_id}}/pause", pause, methods=["POST"]),
            Route(f"{jobs_path}/{{job_id}}/resume", resume, methods=["POST"]),
        ]
    if host.dated_prefix is None:
        return list(out)
    return [Route(r.path, versioned(r.endpoint, dated, error), methods=r.methods) for r in out]


def versioned(endpoint: Endpoint, dated: bool, error: Callable[..., Response]) -> Endpoint:
    """An endpoint of the dated surface wants ``?api-version=``; ``/v1`` takes none (or
    ``v1`` / ``preview``)."""

    async def checked(request: Request) -> Response:
        version = request.query_params.get("api-version")
        if dated and not version:
            return error(
                400,
                "The api-version query parameter (?api-version=) is required for all requests.",
                code="MissingApiVersionParameter",
            )
        if not dated and version not in (None, "v1", "preview"):
            return error(400, f"Unsupported api-version '{version}' on /v1.", code="BadRequest")
        response: Response = await endpoint(request)
        return response

    return checked


def model_routes(emu: Emulator, host: Host = OPENAI, prefix: str | None = None) -> list[BaseRoute]:
    prefix, error = prefix or host.prefix, host.error

    def models() -> list[dict[str, Any]]:
        base = [
            {"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "system"}
            for m in host.models
        ]
        tuned = [
            {
                "id": r.data["fine_tuned_model"],
                "object": "model",
                "created": int(snap.finished_at or r.created_at),
                "owned_by": ORG,
            }
            for r, snap in tuned_jobs(emu, host)
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
        if name in host.models:
            return error(
                403, "You have insufficient permissions to delete this model.", param="model"
            )
        for row, _ in tuned_jobs(emu, host):
            if row.data["fine_tuned_model"] == name:
                row.data["model_deleted"] = True
                emu.store.update(row)
                return JSONResponse({"id": name, "object": "model", "deleted": True})
        return no_model(name)

    return [
        Route(f"{prefix}/models", list_models, methods=["GET"]),
        Route(f"{prefix}/models/{{model}}", get_model, methods=["GET"]),
        Route(f"{prefix}/models/{{model}}", delete_model, methods=["DELETE"]),
    ]
