"""stub"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from .core import Emulator
from .lifecycle import JobKind
from .store import Row

NAME = "openai"
KIND = JobKind("openai", "running", "failed", "failed", "running", "cancelled")


def error(
    status: int,
    message: str,
    *,
    type: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> Response:
    return JSONResponse(
        {"error": {"message": message, "type": type, "param": param, "code": code}},
        status_code=status,
    )


def routes(emu: Emulator) -> list[BaseRoute]:
    return []


def job_summary(emu: Emulator, row: Row) -> dict[str, Any]:
    return {}
