"""The Mistral endpoints of the emulator: files (``files``), and here the fine-tuning
jobs: create (``auto_start``, ``dry_run``), list with page/page_size/total and filters,
detailed get, cancel (``CANCELLATION_REQUESTED`` → ``CANCELLED``) and start (for jobs
parked at VALIDATED)."""

from __future__ import annotations

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
from .jobs import KIND

JOBS = f"{PREFIX}/fine_tuning/jobs"


def routes(emu: Emulator) -> list[BaseRoute]:
    return [*file_routes(emu), *job_routes(emu)]


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
