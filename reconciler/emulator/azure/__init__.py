"""Azure OpenAI under ``/azure/openai/v1`` and the dated ``/azure/openai/…?api-version=``
(providers-next.md §2): OpenAI's routes with Azure's ``Host`` — the ``api-key`` header,
a ``pending`` first status, a 40-character suffix, no metadata filter on the job list,
no Uploads API, ``trainingType`` on the preview surface only, Azure's model names."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from ..core import Emulator
from ..lifecycle import JobKind
from ..openai import jobs as _jobs
from ..openai.host import Host
from ..openai.routes import routes as _routes
from ..store import Row
from ..wire import envelope_error

NAME = "azure"
KEY_HEADER = "api-key"
AUTH_MESSAGE = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
    "provide a valid key for an active subscription and use a correct regional API "
    "endpoint for your resource."
)
KIND = JobKind(
    provider=NAME,
    run_status="running",
    failed="failed",
    failed_permanent="failed",
    permanent_at="queued",
    cancelled="cancelled",
    paused="paused",
)
PHASES = (("pending", 5.0), ("queued", 5.0), ("running", 0.0), ("succeeded", 0.0))
HOLDABLE = tuple(status for status, _ in PHASES[:-1])
MODELS = (
    "gpt-4.1-2025-04-14",
    "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano-2025-04-14",
    "gpt-4o-2024-08-06",
    "gpt-4o-mini-2024-07-18",
    "o4-mini-2025-04-16",
)


def error(
    status: int,
    message: str,
    *,
    type: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> Response:
    """Azure's body: OpenAI's envelope; a 401 in the words of its API gateway."""
    if status == 401:
        return JSONResponse({"error": {"code": "401", "message": message}}, status_code=401)
    return envelope_error(status, message, type=type, param=param, code=code or str(status))


def _model_name(model: str, suffix: str | None, digest: str) -> str:
    """``<base>.ft-<32 hex>[-<suffix>]``: the name Azure gives the result."""
    return f"{model}.ft-{digest}" + (f"-{suffix}" if suffix else "")


def _job_fields(out: dict[str, Any], data: dict[str, Any], steps: int) -> dict[str, Any]:
    return {**out, "user_provided_suffix": data.get("suffix"), **data.get("extra", {})}


AZURE = Host(
    NAME,
    "/azure/openai/v1",
    KIND,
    PHASES,
    MODELS,
    rft_models=("o4-mini-2025-04-16",),
    key_header=KEY_HEADER,
    dated_prefix="/azure/openai",
    max_suffix=40,
    metadata_filter=False,
    uploads=False,
    dated_fields={"trainingType": {"enum": ["globalstandard", "developerTier"]}},
    job_fields=_job_fields,
    model_name=_model_name,
    error=error,
    auth_message=AUTH_MESSAGE,
)


def routes(emu: Emulator) -> list[BaseRoute]:
    return _routes(emu, AZURE)


def job_summary(emu: Emulator, row: Row) -> dict[str, Any]:
    return _jobs.job_summary(emu, row, AZURE)
