"""OpenAI files and the Uploads API in the emulator (providers.md §2.2): multipart
upload, list with cursor pagination, retrieve, delete, content; and large uploads in
parts (create, add parts, complete with byte-count and md5 checks, cancel, expiry)."""

from __future__ import annotations

import hashlib
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..core import FILE, PART, UPLOAD, Emulator, content_facts, json_body, token
from ..schema import STR, Node, check
from ..store import Row
from ..wire import Endpoint, RowEndpoint, lookup
from .dialect import (
    cursor_list,
    error,
    invalid_value,
    missing_parameter,
    not_found,
    problem_error,
)
from .host import Host
from .jobs import OPENAI

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
    emu: Emulator,
    filename: str,
    purpose: str,
    content: bytes,
    expires: int | None,
    host: Host = OPENAI,
) -> Row:
    now = emu.now()
    data = {
        "filename": filename,
        "purpose": purpose,
        # OpenAI (and Azure's mirror of it) reads past a leading byte-order mark
        **content_facts(content, leading_bom=host.leading_bom),
        "expires_at": now + expires if expires else None,
    }
    return emu.store.insert(FILE, host.name, f"file-{token(22)}", now, data, content)


def file_routes(emu: Emulator, host: Host = OPENAI, prefix: str | None = None) -> list[BaseRoute]:
    prefix, error = prefix or host.prefix, host.error
    no_file = not_found("file", "file_id", error)

    async def create_file(request: Request) -> Response:
        form = await request.form(max_part_size=MAX_PART)
        known = {"file", "purpose", "expires_after[anchor]", "expires_after[seconds]"}
        for key in form:
            if key not in known:
                return error(400, f"Unrecognized request argument supplied: {key}", param=key)
        upload, purpose = form.get("file"), form.get("purpose")
        if upload is None or isinstance(upload, str):
            return missing_parameter("file", error)
        if purpose not in PURPOSES:
            return invalid_value(purpose, ", ".join(PURPOSES), "purpose", error)
        name = upload.filename or "file"
        if purpose == "fine-tune" and not name.endswith(".jsonl"):
            return error(
                400,
                f"Invalid file format for Fine-Tuning API. Must be .jsonl, got {name}",
                param="file",
            )
        seconds = form.get("expires_after[seconds]")
        expires = int(str(seconds)) if seconds and str(seconds).isdigit() else None
        row = new_file(emu, name, str(purpose), await upload.read(), expires, host)
        return JSONResponse(file_view(row))

    def listed_files(request: Request) -> list[dict[str, Any]]:
        purpose = request.query_params.get("purpose")
        rows = [r for r in emu.store.all(FILE, host.name) if purpose in (None, r.data["purpose"])]
        items = [file_view(r) for r in rows]
        if request.query_params.get("order", "desc") == "desc":
            items.reverse()
        return items

    async def list_files(request: Request) -> Response:
        return cursor_list(
            request, lambda: listed_files(request), 10000, 10000, ends=True, error=error
        )

    @lookup(emu, FILE, host.name, "file_id", no_file)
    async def get_file(request: Request, row: Row) -> Response:
        return JSONResponse(file_view(row))

    # delete and content find a file of any provider, as they always have
    async def delete_file(request: Request) -> Response:
        file_id = request.path_params["file_id"]
        if not emu.store.delete(FILE, file_id):
            return no_file(file_id)
        return JSONResponse({"id": file_id, "object": "file", "deleted": True})

    async def content(request: Request) -> Response:
        data = emu.store.content(FILE, request.path_params["file_id"])
        if data is None:
            return no_file(request.path_params["file_id"])
        return Response(data, media_type="application/octet-stream")

    return [
        Route(f"{prefix}/files", create_file, methods=["POST"]),
        Route(f"{prefix}/files", list_files, methods=["GET"]),
        Route(f"{prefix}/files/{{file_id}}", get_file, methods=["GET"]),
        Route(f"{prefix}/files/{{file_id}}", delete_file, methods=["DELETE"]),
        Route(f"{prefix}/files/{{file_id}}/content", content, methods=["GET"]),
    ]


# ---------------------------------------------------------------- uploads


def upload_view(emu: Emulator, row: Row) -> dict[str, Any]:
    d = row.data
    status = d["status"]
    if status == "pending" and emu.now() > d["expires_at"]:
        status = "expired"
    file = emu.store.get(FILE, d["file_id"], OPENAI.name) if d.get("file_id") else None
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


def upload_routes(emu: Emulator, host: Host = OPENAI, prefix: str | None = None) -> list[BaseRoute]:
    """OpenAI's Uploads API (no other host has it)."""
    prefix, name = prefix or host.prefix, host.name
    upload = lookup(emu, UPLOAD, name, "upload_id", not_found("upload", "upload_id"))

    def pending(handler: RowEndpoint) -> Endpoint:
        """An endpoint about an upload that must still be pending."""

        @upload
        async def endpoint(request: Request, row: Row) -> Response:
            status = upload_view(emu, row)["status"]
            if status != "pending":
                return error(400, f"Upload {row.id} is {status}; it cannot be changed.")
            return await handler(request, row)

        return endpoint

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
        row = emu.store.insert(UPLOAD, name, f"upload_{token(24)}", now, data)
        return JSONResponse(upload_view(emu, row))

    @pending
    async def add_part(request: Request, row: Row) -> Response:
        form = await request.form(max_part_size=MAX_PART)
        part = form.get("data")
        if part is None:
            return missing_parameter("data")
        content = part.encode() if isinstance(part, str) else await part.read()
        if len(content) > MAX_PART:
            return error(400, "Invalid 'data': a part holds at most 64 MB.", param="data")
        created = emu.store.insert(
            PART, name, f"part_{token(24)}", emu.now(), {"upload_id": row.id}, content
        )
        return JSONResponse(
            {
                "id": created.id,
                "object": "upload.part",
                "created_at": int(created.created_at),
                "upload_id": row.id,
            }
        )

    @pending
    async def complete(request: Request, row: Row) -> Response:
        body, bad = await json_body(request)
        if bad or not isinstance(body, dict):
            return error(400, bad or "The request body must be a JSON object.")
        if (problem := check(body, COMPLETE_UPLOAD)) is not None:
            return problem_error(problem)
        chunks = []
        for part_id in body["part_ids"]:
            part = emu.store.get(PART, part_id, name)
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

    @pending
    async def cancel(request: Request, row: Row) -> Response:
        row.data["status"] = "cancelled"
        emu.store.update(row)
        return JSONResponse(upload_view(emu, row))

    return [
        Route(f"{prefix}/uploads", create_upload, methods=["POST"]),
        Route(f"{prefix}/uploads/{{upload_id}}/parts", add_part, methods=["POST"]),
        Route(f"{prefix}/uploads/{{upload_id}}/complete", complete, methods=["POST"]),
        Route(f"{prefix}/uploads/{{upload_id}}/cancel", cancel, methods=["POST"]),
    ]
