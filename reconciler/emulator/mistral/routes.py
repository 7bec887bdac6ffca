"""The Mistral endpoints of the emulator: files (``files``), and here the fine-tuning
jobs: create (``auto_start``, ``dry_run``), list with page/page_size/total and filters,
detailed get, cancel (``CANCELLATION_REQUESTED`` → ``CANCELLED``) and start (for jobs
parked at VALIDATED)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..core import JOB, Emulator, cancel_job, job_snapshot, json_body, listed, parse_iso
from ..store import Row
from ..wire import lookup
from . import jobs
from .create import create
from .dialect import NAME, PREFIX, error, invalid, not_found, page_of
from .files import file_routes
from .jobs import KIND, MODELS, NOT_TUNABLE

JOBS = f"{PREFIX}/fine_tuning/jobs"


def routes(emu: Emulator) -> list[BaseRoute]:
    return [*file_routes(emu), *job_routes(emu), *model_routes(emu)]


def _capabilities(name: str, *, tunable: bool) -> dict[str, bool]:
    chat = tunable or name.startswith("mistral-ocr")
    return {
        "completion_chat": chat,
        "function_calling": tunable,
        "completion_fim": name.startswith("codestral"),
        "fine_tuning": tunable,
        "vision": name.startswith(("pixtral", "mistral-ocr")),
        "classification": name.startswith("mistral-moderation"),
    }


def model_routes(emu: Emulator) -> list[BaseRoute]:
    """``GET /v1/models`` and ``/v1/models/{id}``: the base models (the ones create accepts
    can be fine-tuned; a few listed ones cannot) and the fine-tuned models of finished jobs."""

    def cards() -> list[dict[str, Any]]:
        base: list[dict[str, Any]] = [
            {
                "id": name,
                "object": "model",
                "created": 1_700_000_000,
                "owned_by": "mistralai",
                "capabilities": _capabilities(name, tunable=name in MODELS),
                "name": name,
                "description": None,
                "max_context_length": 32768,
                "aliases": [],
                "deprecation": None,
                "deprecation_replacement_model": None,
                "default_model_temperature": 0.3,
                "type": "base",
            }
            for name in (*MODELS, *NOT_TUNABLE)
        ]
        tuned = [
            {
                **base[list(MODELS).index(r.data["model"])],
                "id": r.data["fine_tuned_model"],
                "created": int(r.created_at),
                "owned_by": "emulator",
                "capabilities": _capabilities(r.data["model"], tunable=False),
                "name": None,
                "type": "fine-tuned",
                "job": r.id,
                "root": r.data["model"],
                "archived": False,
            }
            for r in emu.store.all(JOB, NAME)
            if r.data["model"] in MODELS and job_snapshot(emu, KIND, r).status == "SUCCESS"
        ]
        return base + tuned

    async def list_models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": cards()})

    async def get_model(request: Request) -> Response:
        name = request.path_params["model_id"]
        found = next((c for c in cards() if c["id"] == name), None)
        if found is None:
            return error(404, f"Model {name} not found", code="1500")
        return JSONResponse(found)

    return [
        Route(f"{PREFIX}/models", list_models, methods=["GET"]),
        Route(f"{PREFIX}/models/{{model_id:path}}", get_model, methods=["GET"]),
    ]


def job_routes(emu: Emulator) -> list[BaseRoute]:
    job = lookup(emu, JOB, NAME, "job_id", not_found("Job", "3001"))

    async def create_job(request: Request) -> Response:
        body, bad = await json_body(request)
        if bad or not isinstance(body, dict):
            return invalid(["body"], "json_invalid", bad or "Input should be a valid dictionary")
        dry = request.query_params.get("dry_run", "").lower() in ("true", "1")
        row = create(emu, body, dry_run=dry)
        return row if isinstance(row, Response) else JSONResponse(jobs.view(emu, row))

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
        items = [jobs.view(emu, r) for r in rows]
        if q.get("status"):
            items = [i for i in items if i["status"] == q["status"]]
        return page_of(request, items)

    @job
    async def get_job(request: Request, row: Row) -> Response:
        return JSONResponse(jobs.view(emu, row, detailed=True))

    @job
    async def cancel(request: Request, row: Row) -> Response:
        if (ended := cancel_job(emu, KIND, row)) is not None:
            return error(400, f"Job {row.id} is {ended} and cannot be cancelled", code="3002")
        return JSONResponse(jobs.view(emu, row, detailed=True))

    @job
    async def start(request: Request, row: Row) -> Response:
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
        return JSONResponse(jobs.view(emu, row, detailed=True))

    return [
        Route(JOBS, create_job, methods=["POST"]),
        Route(JOBS, list_jobs, methods=["GET"]),
        Route(f"{JOBS}/{{job_id}}", get_job, methods=["GET"]),
        Route(f"{JOBS}/{{job_id}}/cancel", cancel, methods=["POST"]),
        Route(f"{JOBS}/{{job_id}}/start", start, methods=["POST"]),
    ]
