"""Together files in the emulator: the SDK's signed-URL upload (checksum dedupe → 409),
the documented multipart upload, preprocessing (``processing_status`` PENDING → COMPLETED
or INVALID_FORMAT); the bytes of a signed-URL upload arrive through ``..storage``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..core import FILE, Emulator, new_uuid
from ..storage import keep_content, signed_url
from ..store import Row
from ..wire import lookup
from .dialect import NAME, PREFIX, error, not_found

PURPOSES = (
    "fine-tune",
    "eval",
    "eval-sample",
    "eval-output",
    "eval-summary",
    "batch-generated",
    "batch-api",
    "calibration",
)
FILE_TYPES = ("jsonl", "csv", "parquet")


# ---------------------------------------------------------------- files


def processing_status(emu: Emulator, row: Row) -> str:
    d = row.data
    started = d.get("processing_started_at")
    if not d.get("uploaded") or started is None:
        return "PENDING"
    elapsed = emu.now() - float(started)
    if elapsed < emu.file_processing_seconds / 2:
        return "QUEUED"
    if elapsed < emu.file_processing_seconds:
        return "RUNNING"
    if d.get("file_type", "jsonl") != "jsonl" or d.get("purpose") != "fine-tune":
        return "COMPLETED"  # only fine-tune JSONL is validated here
    return "COMPLETED" if d.get("error") is None else "INVALID_FORMAT"


def file_view(emu: Emulator, row: Row) -> dict[str, Any]:
    d = row.data
    status = processing_status(emu, row)
    out: dict[str, Any] = {
        "id": row.id,
        "object": "file",
        "created_at": int(row.created_at),
        "filename": d["filename"],
        "bytes": int(d.get("bytes", 0)),
        "purpose": d["purpose"],
        "FileType": d.get("file_type", "jsonl"),
        "Processed": status == "COMPLETED",
        "processing_status": status,
        "LineCount": int(d.get("lines", 0)),
    }
    if status in ("COMPLETED", "INVALID_FORMAT"):
        report: dict[str, Any] = {
            "valid": status == "COMPLETED",
            "file_id": row.id,
            "nlines": int(d.get("lines", 0)),
            "dataset_format": d.get("format"),
            "dataset_has_tools": False,
            "dataset_has_reasoning": False,
            "dataset_is_multimodal": False,
            "dataset_has_message_weights": False,
            "dataset_has_sample_weights": False,
            "dataset_has_parallel_tool_calls": False,
        }
        if status == "INVALID_FORMAT":
            report.update(error=d.get("error"), error_type="INVALID_FORMAT")
        out["validation_report"] = report
    return out


def _form_problem(form: Any, required: tuple[str, ...]) -> Response | None:
    """The first problem of an upload form, in the order the server checks."""
    for name in required:
        if not form.get(name):
            return error(400, f"{name} is required", param=name, code="missing_required_parameter")
    purpose = form.get("purpose")
    if purpose not in PURPOSES:
        return error(400, f"purpose: must be one of {', '.join(PURPOSES)}", param="purpose")
    if form.get("file_type", "jsonl") not in FILE_TYPES:
        return error(400, f"file_type: must be one of {', '.join(FILE_TYPES)}", param="file_type")
    return None


def file_routes(emu: Emulator) -> list[BaseRoute]:
    no_file = not_found("file")
    file = lookup(emu, FILE, NAME, "id", no_file)

    async def upload_url(request: Request) -> Response:
        """The SDK's step 1: no bytes, a checksum; 302 to storage, or 409 when known."""
        form = await request.form()
        if (bad := _form_problem(form, ("purpose", "file_name"))) is not None:
            return bad
        checksum = str(form.get("checksum") or "").lower()
        if checksum:
            for row in emu.store.all(FILE, NAME):
                if row.data.get("uploaded") and row.data.get("sha256") == checksum:
                    return error(
                        409,
                        f"File already exists: {row.id}",
                        code="file_exists",
                        extra={"file_id": row.id},
                    )
        file_id = f"file-{new_uuid()}"
        data = {
            "filename": str(form["file_name"]),
            "purpose": str(form["purpose"]),
            "file_type": str(form.get("file_type") or "jsonl"),
            "uploaded": False,
            "bytes": 0,
            "processing_started_at": None,
            "checksum": checksum,
        }
        emu.store.insert(FILE, NAME, file_id, emu.now(), data)
        location = signed_url(emu, request, NAME, file_id, writable=True)
        return Response(
            status_code=302, headers={"Location": location, "X-Together-File-Id": file_id}
        )

    async def upload_multipart(request: Request) -> Response:
        """The documented ``POST /files/upload``: the bytes in the form; no dedupe."""
        form = await request.form()
        if (bad := _form_problem(form, ("purpose", "file_name", "file"))) is not None:
            return bad
        upload = form["file"]
        if isinstance(upload, str):
            return error(400, "file: must be a file part", param="file")
        content = await upload.read()
        data = {
            "filename": str(form["file_name"]),
            "purpose": str(form["purpose"]),
            "file_type": str(form.get("file_type") or "jsonl"),
            "processing_started_at": emu.now(),
        }
        row = emu.store.insert(FILE, NAME, f"file-{new_uuid()}", emu.now(), data)
        keep_content(emu, row, content)
        return JSONResponse(file_view(emu, row))

    @file
    async def preprocess(request: Request, row: Row) -> Response:
        if not row.data.get("uploaded"):
            return error(400, f"file {row.id} has no content yet: upload it first", param="id")
        if row.data.get("processing_started_at") is None:
            row.data["processing_started_at"] = emu.now()
            emu.store.update(row)
        return JSONResponse(file_view(emu, row))

    async def list_files(request: Request) -> Response:
        return JSONResponse({"data": [file_view(emu, r) for r in emu.store.all(FILE, NAME)]})

    @file
    async def get_file(request: Request, row: Row) -> Response:
        return JSONResponse(file_view(emu, row))

    # delete finds a file of any provider, as it always has
    async def delete_file(request: Request) -> Response:
        file_id = request.path_params["id"]
        if not emu.store.delete(FILE, file_id):
            return no_file(file_id)
        return JSONResponse({"id": file_id, "deleted": True})

    @file
    async def file_content(request: Request, row: Row) -> Response:
        content = emu.store.content(FILE, row.id)
        if content is None:
            return no_file(row.id)
        return Response(content, media_type="text/plain")

    return [
        Route(f"{PREFIX}/files", upload_url, methods=["POST"]),
        Route(f"{PREFIX}/files", list_files, methods=["GET"]),
        Route(f"{PREFIX}/files/upload", upload_multipart, methods=["POST"]),
        Route(f"{PREFIX}/files/{{id}}", get_file, methods=["GET"]),
        Route(f"{PREFIX}/files/{{id}}", delete_file, methods=["DELETE"]),
        Route(f"{PREFIX}/files/{{id}}/content", file_content, methods=["GET"]),
        Route(f"{PREFIX}/files/{{id}}/preprocess", preprocess, methods=["POST"]),
    ]
