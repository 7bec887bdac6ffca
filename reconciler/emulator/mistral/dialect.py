"""How Mistral answers a refusal: ``object: error`` bodies (``wire.flat_error``), 422
``detail`` lists in pydantic's words for schema and query problems, and its pages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..schema import Problem
from ..wire import BadQuery, detail_error, flat_error, numbered_page, query_int

NAME = "mistral"
PREFIX = "/mistral/v1"
error = flat_error
invalid = detail_error

_TYPE_ERRORS = {
    "string": ("string_type", "Input should be a valid string"),
    "integer": ("int_type", "Input should be a valid integer"),
    "number": ("float_type", "Input should be a valid number"),
    "boolean": ("bool_type", "Input should be a valid boolean"),
    "array": ("list_type", "Input should be a valid list"),
    "object": ("model_type", "Input should be a valid dictionary or object to extract fields from"),
}
# a problem with a bound → pydantic's error type, its message and the ctx key of the bound
_BOUNDS = {
    "too_long": ("string_too_long", "String should have at most {} characters", "max_length"),
    "too_short": ("string_too_short", "String should have at least {} characters", "min_length"),
    "too_big": ("less_than_equal", "Input should be less than or equal to {}", "le"),
    "above": ("greater_than", "Input should be greater than {}", "gt"),
    "too_small": ("greater_than_equal", "Input should be greater than or equal to {}", "ge"),
}


def _out_of_bounds(loc: list[str | int], bound: str, limit: Any, value: Any) -> Response:
    kind, msg, key = _BOUNDS[bound]
    return invalid(loc, kind, msg.format(limit), value, **{key: limit})


def problem_error(p: Problem, where: str = "body") -> Response:
    """A schema problem as pydantic would report it."""
    loc: list[str | int] = [where, *p.loc]
    if p.kind == "missing":
        return invalid(loc, "missing", "Field required")
    if p.kind == "extra":
        return invalid(loc, "extra_forbidden", "Extra inputs are not permitted", p.value)
    if p.kind == "type":
        first = p.expected.split(" or ")[-1]
        kind, msg = _TYPE_ERRORS.get(first, ("value_error", f"Input should be {p.expected}"))
        return invalid(loc, kind, msg, p.value)
    if p.kind == "enum":
        options = [repr(v) for v in p.limit]
        said = " or ".join([", ".join(options[:-1]), options[-1]] if len(options) > 1 else options)
        return invalid(loc, "enum", f"Input should be {said}", p.value, expected=said)
    bound = p.kind if p.kind in ("too_long", "too_short", "too_big") else "too_small"
    if p.kind == "too_small" and "must be >" in p.message and ">=" not in p.message:
        bound = "above"
    return _out_of_bounds(loc, bound, p.limit, p.value)


def not_found(what: str, code: str) -> Callable[[str], Response]:
    """The 404 for a missing ``what`` (``File``, ``Job``)."""

    def missing(obj_id: str) -> Response:
        return error(404, f"{what} {obj_id} not found", code=code)

    return missing


def query_param(request: Request, name: str, default: int, low: int = 0) -> int | Response:
    """A whole-number query parameter, at least ``low``."""
    value = query_int(request, name, default, low)
    if not isinstance(value, BadQuery):
        return value
    if value.parsed:
        return _out_of_bounds(["query", name], "too_small", low, value.raw)
    return invalid(
        ["query", name],
        "int_parsing",
        "Input should be a valid integer, unable to parse string as an integer",
        value.raw,
    )


def page_of(request: Request, items: list[dict[str, Any]]) -> Response:
    """The ``page`` (from 0) of ``page_size`` items, with the ``total``."""
    page, size = query_param(request, "page", 0), query_param(request, "page_size", 100, 1)
    if isinstance(page, Response):
        return page
    if isinstance(size, Response):
        return size
    return JSONResponse(numbered_page(items, page, size))
