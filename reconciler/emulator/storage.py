"""The emulator's object storage ``/_storage/<token>``, where signed URLs point: PUT
without auth, as to S3 (Together's uploads), GET for signed downloads (Mistral's)."""

from __future__ import annotations

import hashlib

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .core import FILE, SLOT, Emulator, content_facts, token
from .store import Row


def signed_url(
    emu: Emulator, request: Request, provider: str, file_id: str, *, writable: bool
) -> str:
    """A new storage URL for a file's bytes; the token in it is the only credential."""
    slot = token(32)
    emu.store.insert(SLOT, provider, slot, emu.now(), {"file_id": file_id, "writable": writable})
    return str(request.base_url).rstrip("/") + f"/_storage/{slot}"


def keep_content(emu: Emulator, row: Row, content: bytes) -> None:
    """Keep an uploaded file's bytes and what inspecting them tells."""
    row.data.update(uploaded=True, **content_facts(content))
    emu.store.update(row, content)  # one statement: a crash never splits data and bytes


def storage_routes(emu: Emulator) -> list[BaseRoute]:
    """``/_storage/<token>``: signed URLs, no auth (the token is the credential)."""

    async def put(request: Request) -> Response:
        slot = emu.store.get(SLOT, request.path_params["token"])
        row = emu.store.get(FILE, slot.data["file_id"]) if slot else None
        if slot is None or row is None:
            return Response("NoSuchUpload", status_code=404, media_type="text/plain")
        if not slot.data.get("writable"):
            return Response("AccessDenied", status_code=403, media_type="text/plain")
        content = await request.body()
        keep_content(emu, row, content)
        etag = hashlib.md5(content, usedforsecurity=False).hexdigest()
        return Response(status_code=200, headers={"ETag": f'"{etag}"'})

    async def get(request: Request) -> Response:
        slot = emu.store.get(SLOT, request.path_params["token"])
        content = emu.store.content(FILE, slot.data["file_id"]) if slot else None
        if content is None:
            return Response("NoSuchKey", status_code=404, media_type="text/plain")
        return Response(content, media_type="application/octet-stream")

    return [
        Route("/_storage/{token}", put, methods=["PUT"]),
        Route("/_storage/{token}", get, methods=["GET"]),
    ]
