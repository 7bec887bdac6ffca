"""The Fireworks endpoints of the emulator: datasets (``files``), and here SFT and DPO
jobs under ``/v1/accounts/{account}/``: create with ``?supervisedFineTuningJobId=`` /
``?dpoJobId=``, list (page tokens), get, delete (a tombstone: the id stays taken),
``:cancel`` (CANCELLING → CANCELLED), ``:resume`` and ``:estimateCost``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..core import JOB, Emulator, cancel_job, job_snapshot, json_body, listed
from ..store import Row
from . import jobs
from .create import DPO, SFT, create, estimate
from .dialect import ACCOUNTS, NAME, error, not_found, page, precondition
from .files import file_routes
from .jobs import KIND, life_for, money

ID_PARAM = {SFT: "supervisedFineTuningJobId", DPO: "dpoJobId"}


def routes(emu: Emulator) -> list[BaseRoute]:
    out = file_routes(emu)
    for collection in (SFT, DPO):
        out += job_routes(emu, collection)
    return out


def job_routes(emu: Emulator, collection: str) -> list[BaseRoute]:
    missing = not_found("job")

    def found(request: Request) -> Row | Response:
        account, job_id = request.path_params["account"], request.path_params["id"]
        name = f"accounts/{account}/{collection}/{job_id}"
        return emu.store.get(JOB, name, NAME) or missing(name)

    async def create_job(request: Request) -> Response:
        body, bad = await json_body(request)
        if bad or not isinstance(body, dict):
            return error(400, bad or "the request body must be a JSON object")
        account = request.path_params["account"]
        job_id = request.query_params.get(ID_PARAM[collection])
        row = create(emu, account, collection, body, job_id)
        return row if isinstance(row, Response) else JSONResponse(jobs.view(emu, row))

    async def list_jobs(request: Request) -> Response:
        now, prefix = emu.now(), f"accounts/{request.path_params['account']}/{collection}/"
        rows = [
            r
            for r in emu.store.all(JOB, NAME)
            if r.id.startswith(prefix) and listed(emu, r, now) and "deleted_at" not in r.data
        ]
        body = page(
            request, [jobs.view(emu, r) for r in sorted(rows, key=lambda r: r.id)], collection
        )
        return body if isinstance(body, Response) else JSONResponse(body)

    async def get_job(request: Request) -> Response:
        row = found(request)
        return row if isinstance(row, Response) else JSONResponse(jobs.view(emu, row))

    async def delete_job(request: Request) -> Response:
        row = found(request)
        if isinstance(row, Response):
            return row
        if "deleted_at" not in row.data:
            if not job_snapshot(emu, KIND, row).terminal:
                return precondition(f"job {row.id} is still active: cancel it first")
            row.data["deleted_at"] = emu.now()  # a tombstone: the id can never be reused
            emu.store.update(row)
        return JSONResponse({})

    async def cancel(request: Request) -> Response:
        row = found(request)
        if isinstance(row, Response):
            return row
        if "deleted_at" in row.data:
            return precondition(f"job {row.id} is deleted")
        if (ended := cancel_job(emu, KIND, row)) is not None:
            return precondition(f"job {row.id} cannot be cancelled: it is {ended}")
        return JSONResponse({})

    async def resume(request: Request) -> Response:
        row = found(request)
        if isinstance(row, Response):
            return row
        snap = job_snapshot(emu, KIND, row)
        if "deleted_at" in row.data or snap.stopped is None:
            return precondition(f"job {row.id} cannot be resumed: it is {snap.status}")
        # a fresh plan from now, under the same id (the padding keeps created_at)
        row.data["life"] = life_for(int(row.data["tokens"]), already=emu.now() - row.created_at)
        emu.store.update(row)
        return JSONResponse(jobs.view(emu, row))

    async def estimate_cost(request: Request) -> Response:
        body, bad = await json_body(request)
        if bad or not isinstance(body, dict):
            return error(400, bad or "the request body must be a JSON object")
        usd = estimate(emu, request.path_params["account"], body)
        return usd if isinstance(usd, Response) else JSONResponse({"estimatedCost": money(usd)})

    base = f"{ACCOUNTS}/{collection}"
    out: list[BaseRoute] = [
        Route(base, create_job, methods=["POST"]),
        Route(base, list_jobs, methods=["GET"]),
        Route(f"{base}/{{id}}:cancel", cancel, methods=["POST"]),
        Route(f"{base}/{{id}}:resume", resume, methods=["POST"]),
        Route(f"{base}/{{id}}", get_job, methods=["GET"]),
        Route(f"{base}/{{id}}", delete_job, methods=["DELETE"]),
    ]
    if collection == SFT:  # before the item routes: "…Jobs:estimateCost" is no job id
        out.insert(0, Route(f"{base}:estimateCost", estimate_cost, methods=["POST"]))
    return out
