"""Fireworks datasets in the emulator (§1.2): the record is created first (client-chosen
id, ALREADY_EXISTS on a second one), then its bytes arrive by ``:upload`` (multipart) or
through a signed URL (``:getUploadEndpoint`` → PUT → ``:validateUpload``); the dataset is
``UPLOADING`` until checked, then ``READY`` (or carries an error status)."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..core import FILE, Emulator, iso, json_body
from ..schema import STR, Node, check
from ..storage import keep_content, signed_url
from ..store import Row
from .dialect import ACCOUNTS, NAME, error, not_found, page, precondition, problem_error

ID = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
MIN_EXAMPLES = 3
FORMATS = ("FORMAT_UNSPECIFIED", "CHAT", "COMPLETION", "RL")
CREATE: Node = {
    "type": "object",
    "required": ["datasetId", "dataset"],
    "properties": {
        "datasetId": STR,
        "dataset": {
            "type": "object",
            "properties": {
                "displayName": STR,
                "exampleCount": STR,
                "userUploaded": {"type": "object"},
                "format": {"enum": list(FORMATS)},
                "externalUrl": STR,
            },
            "extra": True,
        },
        "sourceDatasetId": STR,
        "filter": STR,
    },
}


def dataset_state(emu: Emulator, row: Row) -> tuple[str, dict[str, str]]:
    """(state, status) now: UPLOADING until checked, then READY with the check's verdict."""
    d = row.data
    started = d.get("processing_started_at")
    if not d.get("uploaded") or started is None:
        return "UPLOADING", {"code": "OK", "message": ""}
    if emu.now() - float(started) < emu.file_processing_seconds:
        return "UPLOADING", {"code": "OK", "message": ""}
    problem = d.get("error")
    if problem is None and int(d.get("lines", 0)) < MIN_EXAMPLES:
        problem = f"the dataset has {d.get('lines', 0)} examples; at least {MIN_EXAMPLES} needed"
    if problem is not None:
        return "UPLOADING", {"code": "INVALID_ARGUMENT", "message": f"validation failed: {problem}"}
    return "READY", {"code": "OK", "message": ""}


def dataset_view(emu: Emulator, row: Row) -> dict[str, Any]:
    d = row.data
    state, status = dataset_state(emu, row)
    out: dict[str, Any] = {"name": row.id, **d["dataset"]}
    out.update(createTime=iso(row.created_at), updateTime=iso(row.created_at), state=state)
    out["status"] = status
    out.setdefault("format", "FORMAT_UNSPECIFIED")
    if state == "READY":
        out["estimatedTokenCount"] = str(int(d.get("tokens", 0)))
        out["exampleCount"] = str(int(d.get("lines", 0)))
    return out


def ready_dataset(emu: Emulator, name: str, field: str) -> Row | Response:
    """The dataset a job names, READY; else the refusal."""
    row = emu.store.get(FILE, name, NAME)
    if row is None:
        return error(404, f"{field}: dataset {name} not found")
    state, _ = dataset_state(emu, row)
    if state != "READY":
        return precondition(f"{field}: dataset {name} is not ready (state {state})")
    return row


def file_routes(emu: Emulator) -> list[BaseRoute]:
    missing = not_found("dataset")

    def found(request: Request) -> Row | Response:
        account, dataset_id = request.path_params["account"], request.path_params["id"]
        name = f"accounts/{account}/datasets/{dataset_id}"
        return emu.store.get(FILE, name, NAME) or missing(name)

    async def create(request: Request) -> Response:
        body, bad = await json_body(request)
        if bad or not isinstance(body, dict):
            return error(400, bad or "the request body must be a JSON object")
        if (problem := check(body, CREATE)) is not None:
            return problem_error(problem)
        dataset_id = body["datasetId"]
        if not ID.match(dataset_id):
            return error(400, f"invalid datasetId {dataset_id!r}: 1-63 of a-z, 0-9, '-'")
        name = f"accounts/{request.path_params['account']}/datasets/{dataset_id}"
        if emu.store.get(FILE, name) is not None:
            return error(409, f"dataset {name} already exists")
        data = {
            "dataset": {k: v for k, v in body["dataset"].items() if k != "name"},
            "filename": f"{dataset_id}.jsonl",
            "purpose": "fine-tune",
            "uploaded": False,
            "bytes": 0,
            "processing_started_at": None,
        }
        row = emu.store.insert(FILE, NAME, name, emu.now(), data)
        return JSONResponse(dataset_view(emu, row))

    async def get(request: Request) -> Response:
        row = found(request)
        return row if isinstance(row, Response) else JSONResponse(dataset_view(emu, row))

    async def delete(request: Request) -> Response:
        row = found(request)
        if isinstance(row, Response):
            return row
        emu.store.delete(FILE, row.id)
        return JSONResponse({})

    async def list_datasets(request: Request) -> Response:
        prefix = f"accounts/{request.path_params['account']}/datasets/"
        rows = [r for r in emu.store.all(FILE, NAME) if r.id.startswith(prefix)]
        body = page(request, [dataset_view(emu, r) for r in rows], "datasets")
        return body if isinstance(body, Response) else JSONResponse(body)

    async def upload(request: Request) -> Response:
        row = found(request)
        if isinstance(row, Response):
            return row
        if row.data.get("uploaded"):
            return precondition(f"dataset {row.id} already has its file")
        form = await request.form()
        part = form.get("file")
        if part is None or isinstance(part, str):
            return error(400, "file: a file part is required")
        content = await part.read()
        if len(content) > 150 * 1000 * 1000:
            return error(400, "file: over 150 MB, use getUploadEndpoint")
        row.data["processing_started_at"] = emu.now()
        keep_content(emu, row, content)
        answer = {
            "id": row.id.rsplit("/", 1)[-1],
            "object": "file",
            "bytes": len(content),
            "created_at": int(emu.now()),
            "filename": part.filename or row.data["filename"],
            "purpose": "fine-tune",
        }
        return JSONResponse(answer)

    async def upload_endpoint(request: Request) -> Response:
        row = found(request)
        if isinstance(row, Response):
            return row
        body, bad = await json_body(request)
        sizes = body.get("filenameToSize") if isinstance(body, dict) else None
        if bad or not isinstance(sizes, dict) or not sizes:
            return error(400, bad or "filenameToSize: a map of file name to size is required")
        if len(sizes) != 1:
            return error(400, "filenameToSize: the emulator takes one file a dataset")
        urls = {n: signed_url(emu, request, NAME, row.id, writable=True) for n in sizes}
        return JSONResponse({"filenameToSignedUrls": urls})

    async def validate(request: Request) -> Response:
        row = found(request)
        if isinstance(row, Response):
            return row
        if not row.data.get("uploaded"):
            return precondition(f"dataset {row.id}: no file was uploaded")
        if int(row.data.get("bytes", 0)) == 0:
            return error(400, f"dataset {row.id}: the uploaded file is empty")
        if row.data.get("processing_started_at") is None:
            row.data["processing_started_at"] = emu.now()
            emu.store.update(row)
        return JSONResponse({})

    base = f"{ACCOUNTS}/datasets"
    return [
        Route(base, create, methods=["POST"]),
        Route(base, list_datasets, methods=["GET"]),
        Route(f"{base}/{{id}}:upload", upload, methods=["POST"]),
        Route(f"{base}/{{id}}:getUploadEndpoint", upload_endpoint, methods=["POST"]),
        Route(f"{base}/{{id}}:validateUpload", validate, methods=["POST"]),
        Route(f"{base}/{{id}}", get, methods=["GET"]),
        Route(f"{base}/{{id}}", delete, methods=["DELETE"]),
    ]
