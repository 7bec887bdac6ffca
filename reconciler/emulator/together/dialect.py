"""How Together answers a refusal: OpenAI's error body (``wire.envelope_error``), and its
words for schema problems and missing objects. A body that breaks the create schema is
a 422 whose ``error.message`` is a summary and whose ``errors`` list every violation."""

from __future__ import annotations

from collections.abc import Callable

from starlette.responses import Response

from ..schema import Problem
from ..wire import envelope_error

NAME = "together"
PREFIX = "/together/v1"
error = envelope_error


def problem_error(p: Problem) -> Response:
    """A schema problem as ``<where>: <what is wrong>``."""
    where = p.param or "body"
    return error(400, f"{where}: {p.message}", param=p.param or None, code="invalid_value")


def validation_error(violations: list[tuple[str, str]]) -> Response:
    """A 422: a summary in ``error`` (ErrorData) and each ``{field, message}`` beside it."""
    count = len(violations)
    return error(
        422,
        f"Invalid request: {count} validation error{'s' * (count != 1)}",
        param=violations[0][0] if count == 1 else None,
        code="invalid_request",
        extra={"errors": [{"field": f, "message": m} for f, m in violations]},
    )


def not_found(what: str) -> Callable[[str], Response]:
    """The 404 for a missing ``what``."""

    def missing(obj_id: str) -> Response:
        return error(404, f"{what} {obj_id} not found", param="id", code="not_found")

    return missing


def file_not_found(file_id: str, param: str) -> Response:
    """A 400: the body names a file that does not exist."""
    return error(400, f"{param}: file {file_id} not found", param=param, code="file_not_found")
