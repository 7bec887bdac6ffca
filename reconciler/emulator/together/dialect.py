"""How Together answers a refusal: OpenAI's error body (``wire.envelope_error``), and its
words for schema problems and missing objects."""

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


def not_found(what: str) -> Callable[[str], Response]:
    """The 404 for a missing ``what``."""

    def missing(obj_id: str) -> Response:
        return error(404, f"{what} {obj_id} not found", param="id", code="not_found")

    return missing


def file_not_found(file_id: str, param: str) -> Response:
    """A 400: the body names a file that does not exist."""
    return error(400, f"{param}: file {file_id} not found", param=param, code="file_not_found")
