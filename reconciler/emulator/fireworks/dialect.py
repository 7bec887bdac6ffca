"""How Fireworks answers a refusal: a google.rpc status in an ``error`` object (the
gateway's mapping of codes to HTTP statuses, §1.9), and AIP-style page tokens."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..schema import Problem

NAME = "fireworks"
PREFIX = "/fireworks/v1"
ACCOUNTS = f"{PREFIX}/accounts/{{account}}"

# HTTP status → the google.rpc code the gateway maps to it
CODES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def error(
    status: int,
    message: str,
    *,
    type: str = "",
    param: str | None = None,
    code: str | None = None,
) -> Response:
    """``{"error": {"code", "message", "status"}}``: the HTTP status and its rpc code name
    (``code`` overrides the name: FAILED_PRECONDITION is a 400 too)."""
    rpc = code if code and code.isupper() else CODES.get(status, "UNKNOWN")
    body = {"error": {"code": status, "message": message, "status": rpc}}
    return JSONResponse(body, status_code=status)


def problem_error(p: Problem) -> Response:
    """A schema problem as ``invalid <field>: <what is wrong>``."""
    where = p.param or "body"
    return error(400, f"invalid {where}: {p.message}")


def not_found(what: str) -> Callable[[str], Response]:
    def missing(name: str) -> Response:
        return error(404, f"{what} {name} not found")

    return missing


def precondition(message: str) -> Response:
    return error(400, message, code="FAILED_PRECONDITION")


# ---------------------------------------------------------------- paging


def page(request: Request, items: list[dict[str, Any]], key: str) -> dict[str, Any] | Response:
    """One page of ``items`` by ``pageSize`` (default 50, above 200 coerced to 200) and an
    opaque ``pageToken``; ``nextPageToken`` is absent on the last page."""
    raw = request.query_params.get("pageSize") or "50"
    try:
        size = int(raw)
    except ValueError:
        return error(400, f"invalid pageSize: {raw!r} is not an integer")
    if size < 0:
        return error(400, "invalid pageSize: must not be negative")
    size = min(size or 50, 200)
    start = 0
    if token := request.query_params.get("pageToken"):
        try:
            start = int(base64.urlsafe_b64decode(token.encode()).decode().removeprefix("o:"))
        except ValueError:
            return error(400, "invalid pageToken")
    chunk = items[start : start + size]
    body: dict[str, Any] = {key: chunk, "totalSize": len(items)}
    if start + size < len(items):
        body["nextPageToken"] = base64.urlsafe_b64encode(f"o:{start + size}".encode()).decode()
    return body
