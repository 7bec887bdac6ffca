"""OpenAI files and the Uploads API in the emulator (providers.md §2.2): multipart
upload, list with cursor pagination, retrieve, delete, content; and large uploads in
parts (create, add parts, complete with byte-count and md5 checks, cancel, expiry)."""

from __future__ import annotations

import hashlib
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .core import FILE, PART, UPLOAD, Emulator, inspect_jsonl, json_body, token
from .openai_jobs import error, problem_error
from .schema import STR, Node, check
from .store import Row

NAME = "openai"
PREFIX = "/openai/v1"
PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
UPLOAD_PURPOSES = ("assistants", "batch", "fine-tune", "vision")
MAX_UPLOAD = 8 * 1024**3
MAX_PART = 64 * 1024**2
CREATE_UPLOAD: Node = {
    "type": "object",
    "required": ["filename", "purpose", "bytes", "mime_type"],
    "properties": {
        "filename": STR,
        "purpose": {"enum": list(UPLOAD_PURPOSES)},
        "bytes": {"type": "integer", "minimum": 0, "maximum": MAX_UPLOAD},
        "mime_type": STR,
        "expires_after": {
            "type": "object",
            "required": ["anchor", "seconds"],
            "properties": {
                "anchor": {"enum": ["created_at"]},
                "seconds": {"type": "integer", "minimum": 3600, "maximum": 2592000},
            },
        },
    },
}
COMPLETE_UPLOAD: Node = {
    "type": "object",
    "required": ["part_ids"],
    "properties": {"part_ids": {"type": "array", "items": STR}, "md5": STR},
}


def not_found(what: str, obj_id: str, param: str) -> Response:
    return error(404, f"No such {what}: {obj_id}", param=param, code=None)


def page(
    items: list[dict[str, Any]], after: str | None, limit: int
) -> tuple[list[dict[str, Any]], bool]:
    """Cursor pagination: the items after the one whose id is ``after``."""
    if after:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    return items[:limit], len(items) > limit


def limit_param(request: Request, default: int, top: int) -> int | Response:
    raw = request.query_params.get("limit")
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        return error(400, f"Invalid 'limit': expected an integer, got '{raw}'.", param="limit")
    if not 1 <= value <= top:
        return error(400, f"Invalid 'limit': must be between 1 and {top}.", param="limit")
    return value


# ---------------------------------------------------------------- files


def file_view(row: Row) -> dict[str, Any]:
    d = row.data
    out: dict[str, Any] = {
        "id": row.id,
        "object": "file",
        "bytes": int(d["bytes"]),
        "created_at": int(row.created_at),
        "filename": d["filename"],
        "purpose": d["purpose"],
        "status": "processed",
    }
    if d.get("expires_at") is not None:
        out["expires_at"] = int(d["expires_at"])
    return out


def new_file(
    emu: Emulator, filename: str, purpose: str, content: bytes, expires: int | None
) -> Row:
    info = inspect_jsonl(content)
    now = emu.now()
    data = {
        "filename": filename,
        "purpose": purpose,
        "bytes": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
        "lines": info.lines,
        "tokens": info.tokens,
        "format": info.format,
        "error": info.error,
        "expires_at": now + expires if expires else None,
    }
    row = emu.store.insert(FILE, NAME, f"file-{token(22)}", now, data, content)
    return row


def file_routes(emu: Emulator) -> list[BaseRoute]:
    async def create_file(request: Request) -> Response:
        form = await request.form(max_part_size=MAX_PART)
        known = {"file", "purpose", "expires_after[anchor]", "expires_after[seconds]"}
        for key in form:
            if key not in known:
                return error(400, f"Unrecognized request argument supplied: {key}", param=key)
        upload, purpose = form.get("file"), form.get("purpose")
        if upload is None or isinstance(upload, str):
            return error(
                400,
                "Missing required parameter: 'file'.",
                param="file",
                code="missing_required_parameter",
            )
        if purpose not in PURPOSES:
            return error(
                400,
                f"Invalid value: '{purpose}'. Supported values are: {', '.join(PURPOSES)}.",
                param="purpose",
                code="invalid_value",
            )
        name = upload.filename or "file"
        if purpose == "fine-tune" and not name.endswith(".jsonl"):
            return error(
                400,
                f"Invalid file format for Fine-Tuning API. Must be .jsonl, got {name}",
                param="file",
            )
        seconds = form.get("expires_after[seconds]")
        expires = int(str(seconds)) if seconds and str(seconds).isdigit() else None
        row = new_file(emu, name, str(purpose), await upload.read(), expires)
        return JSONResponse(file_view(row))

    async def list_files(request: Request) -> Response:
        limit = limit_param(request, 10000, 10000)
        if isinstance(limit, Response):
            return limit
        purpose = request.query_params.get("purpose")
        rows = [r for r in emu.store.all(FILE, NAME) if purpose in (None, r.data["purpose"])]
        items = [file_view(r) for r in rows]
        if request.query_params.get("order", "desc") == "desc":
            items.reverse()
        data, more = page(items, request.query_params.get("after"), limit)
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "has_more": more,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }
        )

    async def get_file(request: Request) -> Response:
        row = emu.store.get(FILE, request.path_params["file_id"], NAME)
        if row is None:
            return not_found("file", request.path_params["file_id"], "file_id")
        return JSONResponse(file_view(row))

    async def delete_file(request: Request) -> Response:
        file_id = request.path_params["file_id"]
        if not emu.store.delete(FILE, file_id):
            return not_found("file", file_id, "file_id")
        return JSONResponse({"id": file_id, "object": "file", "deleted": True})

    async def content(request: Request) -> Response:
        data = emu.store.content(FILE, request.path_params["file_id"])
        if data is None:
            return not_found("file", request.path_params["file_id"], "file_id")
        return Response(data, media_type="application/octet-stream")

    return [
        Route(f"{PREFIX}/files", create_file, methods=["POST"]),
        Route(f"{PREFIX}/files", list_files, methods=["GET"]),
        Route(f"{PREFIX}/files/{{file_id}}", get_file, methods=["GET"]),
        Route(f"{PREFIX}/files/{{file_id}}", delete_file, methods=["DELETE"]),
        Route(f"{PREFIX}/files/{{file_id}}/content", content, methods=["GET"]),
    ]


# ---------------------------------------------------------------- uploads


def upload_view(emu: Emulator, row: Row) -> dict[str, Any]:
    d = row.data
    status = d["status"]
    if status == "pending" and emu.now() > d["expires_at"]:
        status = "expired"
    file = emu.store.get(FILE, d["file_id"], NAME) if d.get("file_id") else None
    return {
        "id": row.id,
        "object": "upload",
        "bytes": d["bytes"],
        "created_at": int(row.created_at),
        "expires_at": int(d["expires_at"]),
        "filename": d["filename"],
        "purpose": d["purpose"],
        "status": status,
        "file": file_view(file) if file else None,
    }


def upload_routes(emu: Emulator) -> list[BaseRoute]:
    def pending(request: Request) -> Row | Response:
        row = emu.store.get(UPLOAD, request.path_params["upload_id"], NAME)
        if row is None:
            return not_found("upload", request.path_params["upload_id"], "upload_id")
        status = upload_view(emu, row)["status"]
        if status != "pending":
            return error(400, f"Upload {row.id} is {status}; it cannot be changed.", param=None)
        return row

    async def create_upload(request: Request) -> Response:
        body, bad = await json_body(request)
        if bad or not isinstance(body, dict):
            return error(400, bad or "The request body must be a JSON object.")
        if (problem := check(body, CREATE_UPLOAD)) is not None:
            return problem_error(problem)
        now = emu.now()
        data = {
            "filename": body["filename"],
            "purpose": body["purpose"],
            "bytes": body["bytes"],
            "mime_type": body["mime_type"],
            "status": "pending",
            "expires_at": now + 3600,
            "file_expires": (body.get("expires_after") or {}).get("seconds"),
        }
        row = emu.store.insert(UPLOAD, NAME, f"upload_{token(24)}", now, data)
        return JSONResponse(upload_view(emu, row))

    async def add_part(request: Request) -> Response:
        row = pending(request)
        if isinstance(row, Response):
            return row
        form = await request.form(max_part_size=MAX_PART)
        part = form.get("data")
        if part is None:
            return error(
                400,
                "Missing required parameter: 'data'.",
                param="data",
                code="missing_required_parameter",
            )
        content = part.encode() if isinstance(part, str) else await part.read()
        if len(content) > MAX_PART:
            return error(400, "Invalid 'data': a part holds at most 64 MB.", param="data")
        created = emu.store.insert(
            PART, NAME, f"part_{token(24)}", emu.now(), {"upload_id": row.id}, content
        )
        return JSONResponse(
            {
                "id": created.id,
                "object": "upload.part",
                "created_at": int(created.created_at),
                "upload_id": row.id,
            }
        )

    async def complete(request: Request) -> Response:
        row = pending(request)
        if isinstance(row, Response):
            return row
        body, bad = await json_body(request)
        if bad or not isinstance(body, dict):
            return error(400, bad or "The request body must be a JSON object.")
        if (problem := check(body, COMPLETE_UPLOAD)) is not None:
            return problem_error(problem)
        chunks = []
        for part_id in body["part_ids"]:
            part = emu.store.get(PART, part_id, NAME)
            if part is None or part.data["upload_id"] != row.id:
                return error(400, f"Invalid part ID: {part_id}", param="part_ids")
            chunks.append(emu.store.content(PART, part_id) or b"")
        content = b"".join(chunks)
        if len(content) != row.data["bytes"]:
            return error(
                400,
                f"The number of bytes uploaded ({len(content)}) does not match "
                f"the number expected ({row.data['bytes']}).",
                param="part_ids",
            )
        md5 = hashlib.md5(content, usedforsecurity=False).hexdigest()
        if body.get("md5") and body["md5"].lower() != md5:
            return error(400, "The md5 checksum does not match the uploaded bytes.", param="md5")
        file = new_file(
            emu, row.data["filename"], row.data["purpose"], content, row.data.get("file_expires")
        )
        row.data.update(status="completed", file_id=file.id)
        emu.store.update(row)
        return JSONResponse(upload_view(emu, row))

    async def cancel(request: Request) -> Response:
        row = pending(request)
        if isinstance(row, Response):
            return row
        row.data["status"] = "cancelled"
        emu.store.update(row)
        return JSONResponse(upload_view(emu, row))

    return [
        Route(f"{PREFIX}/uploads", create_upload, methods=["POST"]),
        Route(f"{PREFIX}/uploads/{{upload_id}}/parts", add_part, methods=["POST"]),
        Route(f"{PREFIX}/uploads/{{upload_id}}/complete", complete, methods=["POST"]),
        Route(f"{PREFIX}/uploads/{{upload_id}}/cancel", cancel, methods=["POST"]),
    ]
