"""How OpenAI answers a refusal: its error body (``wire.envelope_error``), and its words for
schema problems, missing objects and a bad ``limit``; and its cursor lists."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..schema import Problem, type_name
from ..wire import BadQuery, cursor_page, envelope_error, query_int

NAME = "openai"
PREFIX = "/openai/v1"
error = envelope_error


def missing_parameter(param: str, error: Callable[..., Response] = envelope_error) -> Response:
    return error(
        400,
        f"Missing required parameter: '{param}'.",
        param=param,
        code="missing_required_parameter",
    )


def invalid_value(
    value: object, supported: str, param: str, error: Callable[..., Response] = envelope_error
) -> Response:
    return error(
        400,
        f"Invalid value: '{value}'. Supported values are: {supported}.",
        param=param,
        code="invalid_value",
    )


def problem_error(p: Problem) -> Response:
    """A schema problem in the words the API uses."""
    param = p.param
    if p.kind == "missing":
        return missing_parameter(param)
    if p.kind == "enum":
        return invalid_value(p.value, p.expected, param)
    if p.kind == "extra":
        message, code = f"Unrecognized request argument supplied: {param}", "unknown_parameter"
    elif p.kind == "type":
        got = type_name(p.value)
        message = f"Invalid type for '{param}': expected {p.expected}, but got {got} instead."
        code = "invalid_type"
    else:
        message, code = f"Invalid '{param}': {p.message}.", "invalid_value"
    return error(400, message, param=param, code=code)


def not_found(
    what: str, param: str, error: Callable[..., Response] = envelope_error
) -> Callable[[str], Response]:
    """The 404 for a missing ``what`` named by the path parameter ``param``."""

    def missing(obj_id: str) -> Response:
        return error(404, f"No such {what}: {obj_id}", param=param, code=None)

    return missing


def limit_param(
    request: Request, default: int, top: int, error: Callable[..., Response] = envelope_error
) -> int | Response:
    """The ``limit`` of a cursor list, 1 to ``top``."""
    limit = query_int(request, "limit", default, 1, top)
    if not isinstance(limit, BadQuery):
        return limit
    if not limit.parsed:
        message = f"Invalid 'limit': expected an integer, got '{limit.raw}'."
    else:
        message = f"Invalid 'limit': must be between 1 and {top}."
    return error(400, message, param="limit")


def cursor_list(
    request: Request,
    items: Callable[[], list[dict[str, Any]]],
    default: int,
    top: int = 100,
    *,
    ends: bool = False,
    error: Callable[..., Response] = envelope_error,
) -> Response:
    """The page of ``items()`` that ``?after=`` and ``?limit=`` ask for; the limit is
    checked first, so a refused request computes (and ensures) nothing."""
    limit = limit_param(request, default, top, error)
    if isinstance(limit, Response):
        return limit
    after = request.query_params.get("after")
    return JSONResponse(cursor_page(items(), after, limit, ends=ends))
