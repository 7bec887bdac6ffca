"""The wire shapes the providers share: their error bodies, the lookup that answers for a
missing object, and list paging (``after``/``limit`` cursors, page numbers)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .core import Emulator
from .store import Row

Endpoint = Callable[[Request], Awaitable[Response]]
RowEndpoint = Callable[[Request, Row], Awaitable[Response]]


# ---------------------------------------------------------------- error bodies


def envelope_error(
    status: int,
    message: str,
    *,
    type: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    """OpenAI's ``{"error": {message, type, param, code}}``, which Together copies; ``extra``
    keys stand beside ``error``."""
    body: dict[str, Any] = {
        "error": {"message": message, "type": type, "param": param, "code": code}
    }
    body.update(extra or {})
    return JSONResponse(body, status_code=status)


def flat_error(
    status: int,
    message: str,
    *,
    type: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> Response:
    """Mistral's body outside validation (as observed: ``object: error``)."""
    body = {"object": "error", "message": message, "type": type, "param": param, "code": code}
    return JSONResponse(body, status_code=status)


def detail_error(
    loc: list[str | int], kind: str, msg: str, value: Any = None, **ctx: Any
) -> Response:
    """A 422 ``HTTPValidationError`` with one item, in pydantic's words."""
    item: dict[str, Any] = {"type": kind, "loc": loc, "msg": msg, "input": value}
    if ctx:
        item["ctx"] = ctx
    return JSONResponse({"detail": [item]}, status_code=422)


# ---------------------------------------------------------------- lookups


def lookup(
    emu: Emulator, kind: str, provider: str, param: str, missing: Callable[[str], Response]
) -> Callable[[RowEndpoint], Endpoint]:
    """Turns ``handler(request, row)`` into an endpoint that finds the row the path
    parameter ``param`` names, answering ``missing(id)`` when there is none."""

    def wrap(handler: RowEndpoint) -> Endpoint:
        # a plain function, not a callable object: Starlette calls functions with a Request
        async def endpoint(request: Request) -> Response:
            obj_id = request.path_params[param]
            row = emu.store.get(kind, obj_id, provider)
            if row is None:
                return missing(obj_id)
            return await handler(request, row)

        return endpoint

    return wrap


# ---------------------------------------------------------------- paging


@dataclass(frozen=True)
class BadQuery:
    """A whole-number query parameter that is not one, or is out of ``low..high``."""

    name: str
    raw: str
    low: int
    high: int | None
    parsed: bool  # True: a number, out of range


def query_int(
    request: Request, name: str, default: int, low: int, high: int | None = None
) -> int | BadQuery:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        return BadQuery(name, raw, low, high, parsed=False)
    if value < low or (high is not None and value > high):
        return BadQuery(name, raw, low, high, parsed=True)
    return value


def cursor_page(
    items: list[dict[str, Any]], after: str | None, limit: int, *, ends: bool = False
) -> dict[str, Any]:
    """A cursor list: the items after the one whose id is ``after``; ``ends`` adds
    ``first_id`` and ``last_id``."""
    if after:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    data = items[:limit]
    body: dict[str, Any] = {"object": "list", "data": data, "has_more": len(items) > limit}
    if ends:
        body["first_id"] = data[0]["id"] if data else None
        body["last_id"] = data[-1]["id"] if data else None
    return body


def numbered_page(items: list[dict[str, Any]], page: int, size: int) -> dict[str, Any]:
    """Page ``page`` (from 0) of ``size`` items, with the ``total``."""
    data = items[page * size : (page + 1) * size]
    return {"data": data, "object": "list", "total": len(items)}
