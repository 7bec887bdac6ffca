"""Mistral files in the emulator (providers.md §4.2): upload (validated at once; the same
name and content answers the existing file), list with page/page_size/total, retrieve,
delete, content and signed download URLs; plus the page-number pagination jobs share."""

from __future__ import annotations

import hashlib
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .core import FILE, SLOT, Emulator, inspect_jsonl, new_uuid, token
from .mistral_jobs import error, invalid
from .store import Row

NAME = "mistral"
PREFIX = "/mistral/v1"
PURPOSES = ("fine-tune", "batch", "ocr")
VISIBILITY = ("workspace", "user")


def int_param(request: Request, name: str, default: int, low: int = 0) -> int | Response:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        return invalid(
            ["query", name],
            "int_parsing",
            "Input should be a valid integer, unable to parse string as an integer",
            raw,
        )
    if value < low:
        return invalid(
            ["query", name],
            "greater_than_equal",
            f"Input should be greater than or equal to {low}",
            raw,
            ge=low,
        )
    return value


def page_of(request: Request, items: list[dict[str, Any]]) -> Response:
    page, size = int_param(request, "page", 0), int_param(request, "page_size", 100, 1)
    if isinstance(page, Response):
        return page
    if isinstance(size, Response):
        return size
    data = items[page * size : (page + 1) * size]
    return JSONResponse({"data": data, "object": "list", "total": len(items)})


# ---------------------------------------------------------------- files


def file_view(row: Row, *, retrieved: bool = False) -> dict[str, Any]:
    d = row.data
    out = {
        "id": row.id,
        "object": "file",
        "bytes": d["bytes"],
        "created_at": int(row.created_at),
        "filename": d["filename"],
        "purpose": d["purpose"],
        "sample_type": d["sample_type"],
        "num_lines": d["lines"],
        "mimetype": d["mimetype"],
        "source": "upload",
        "signature": d["sha256"],
        "expires_at": d.get("expires_at"),
        "visibility": d["visibility"],
    }
    if retrieved:
        out["deleted"] = False
    return out


def file_routes(emu: Emulator) -> list[BaseRoute]:
    async def upload(request: Request) -> Response:
        form = await request.form()
        part = form.get("file")
        if part is None or isinstance(part, str):
            return invalid(["body", "file"], "missing", "Field required")
        purpose = str(form.get("purpose") or "fine-tune")
        if purpose not in PURPOSES:
            return invalid(
                ["body", "purpose"],
                "enum",
                "Input should be 'fine-tune', 'batch' or 'ocr'",
                purpose,
            )
        visibility = str(form.get("visibility") or "workspace")
        if visibility not in VISIBILITY:
            return invalid(
                ["body", "visibility"], "enum", "Input should be 'workspace' or 'user'", visibility
            )
        content = await part.read()
        name = part.filename or "file.jsonl"
        sha = hashlib.sha256(content).hexdigest()
        for row in emu.store.all(FILE, NAME):
            if row.data["filename"] == name and row.data["sha256"] == sha:
                return JSONResponse(file_view(row))  # same name and content: the same file
        info = inspect_jsonl(content)
        if purpose == "fine-tune" and info.error:
            return error(
                400, f"Invalid file {name}: {info.error}", type="invalid_request_file", code="3310"
            )
        expiry = form.get("expiry")
        now = emu.now()
        data = {
            "filename": name,
            "purpose": purpose,
            "bytes": len(content),
            "sha256": sha,
            "lines": info.lines,
            "tokens": info.tokens,
            "format": info.format,
            "sample_type": {
                "fine-tune": "pretrain" if info.format == "GENERAL" else "instruct",
                "batch": "batch_request",
                "ocr": "instruct",
            }[purpose],
            "mimetype": part.content_type or "application/jsonl",
            "visibility": visibility,
            "expires_at": int(now + int(str(expiry)) * 3600)
            if str(expiry or "").isdigit()
            else None,
        }
        row = emu.store.insert(FILE, NAME, new_uuid(), now, data, content)
        return JSONResponse(file_view(row))

    async def list_files(request: Request) -> Response:
        purpose, search = request.query_params.get("purpose"), request.query_params.get("search")
        rows = [
            r
            for r in reversed(emu.store.all(FILE, NAME))
            if purpose in (None, r.data["purpose"]) and (not search or search in r.data["filename"])
        ]
        return page_of(request, [file_view(r) for r in rows])

    def find(request: Request) -> Row | Response:
        row = emu.store.get(FILE, request.path_params["file_id"], NAME)
        if row is None:
            return error(404, f"File {request.path_params['file_id']} not found", code="3300")
        return row

    async def get_file(request: Request) -> Response:
        row = find(request)
        return row if isinstance(row, Response) else JSONResponse(file_view(row, retrieved=True))

    async def delete_file(request: Request) -> Response:
        row = find(request)
        if isinstance(row, Response):
            return row
        emu.store.delete(FILE, row.id)
        return JSONResponse({"id": row.id, "object": "file", "deleted": True})

    async def content(request: Request) -> Response:
        row = find(request)
        if isinstance(row, Response):
            return row
        return Response(
            emu.store.content(FILE, row.id) or b"", media_type="application/octet-stream"
        )

    async def signed_url(request: Request) -> Response:
        row = find(request)
        if isinstance(row, Response):
            return row
        slot = token(32)
        emu.store.insert(SLOT, NAME, slot, emu.now(), {"file_id": row.id, "writable": False})
        return JSONResponse({"url": str(request.base_url).rstrip("/") + f"/_storage/{slot}"})

    return [
        Route(f"{PREFIX}/files", upload, methods=["POST"]),
        Route(f"{PREFIX}/files", list_files, methods=["GET"]),
        Route(f"{PREFIX}/files/{{file_id}}", get_file, methods=["GET"]),
        Route(f"{PREFIX}/files/{{file_id}}", delete_file, methods=["DELETE"]),
        Route(f"{PREFIX}/files/{{file_id}}/content", content, methods=["GET"]),
        Route(f"{PREFIX}/files/{{file_id}}/url", signed_url, methods=["GET"]),
    ]
