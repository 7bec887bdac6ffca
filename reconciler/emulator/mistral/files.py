"""Mistral files in the emulator (providers.md §4.2): upload (validated at once; the same
name and content answers the existing file), list with page/page_size/total, retrieve,
delete, content and signed download URLs."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..core import FILE, Emulator, content_facts, new_uuid
from ..storage import signed_url
from ..store import Row
from ..wire import lookup
from .dialect import NAME, PREFIX, error, invalid, not_found, page_of

PURPOSES = ("fine-tune", "batch", "ocr")
VISIBILITY = ("workspace", "user")


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
    file = lookup(emu, FILE, NAME, "file_id", not_found("File", "3300"))

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
        facts = content_facts(content)
        for row in emu.store.all(FILE, NAME):
            if row.data["filename"] == name and row.data["sha256"] == facts["sha256"]:
                return JSONResponse(file_view(row))  # same name and content: the same file
        if purpose == "fine-tune" and facts["error"]:
            return error(
                400,
                f"Invalid file {name}: {facts['error']}",
                type="invalid_request_file",
                code="3310",
            )
        expiry = form.get("expiry")
        now = emu.now()
        data = {
            "filename": name,
            "purpose": purpose,
            **facts,
            "sample_type": {
                "fine-tune": "pretrain" if facts["format"] == "GENERAL" else "instruct",
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

    @file
    async def get_file(request: Request, row: Row) -> Response:
        return JSONResponse(file_view(row, retrieved=True))

    @file
    async def delete_file(request: Request, row: Row) -> Response:
        emu.store.delete(FILE, row.id)
        return JSONResponse({"id": row.id, "object": "file", "deleted": True})

    @file
    async def content(request: Request, row: Row) -> Response:
        return Response(
            emu.store.content(FILE, row.id) or b"", media_type="application/octet-stream"
        )

    @file
    async def download_url(request: Request, row: Row) -> Response:
        return JSONResponse({"url": signed_url(emu, request, NAME, row.id, writable=False)})

    return [
        Route(f"{PREFIX}/files", upload, methods=["POST"]),
        Route(f"{PREFIX}/files", list_files, methods=["GET"]),
        Route(f"{PREFIX}/files/{{file_id}}", get_file, methods=["GET"]),
        Route(f"{PREFIX}/files/{{file_id}}", delete_file, methods=["DELETE"]),
        Route(f"{PREFIX}/files/{{file_id}}/content", content, methods=["GET"]),
        Route(f"{PREFIX}/files/{{file_id}}/url", download_url, methods=["GET"]),
    ]
