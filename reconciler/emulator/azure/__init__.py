"""Azure OpenAI under ``/azure/openai/v1`` and the dated ``/azure/openai/…?api-version=``
(providers-next.md §2): OpenAI's routes with Azure's ``Host`` — the ``api-key`` header,
a ``pending`` first status, a 40-character suffix, no metadata filter on the job list,
no Uploads API, ``trainingType`` on the preview surface only, Azure's model names."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, Response

from ..openai import jobs as _jobs
from ..openai.host import Host, openai_kind
from ..openai.routes import bound
from ..wire import envelope_error

NAME = "azure"
KEY_HEADER = "api-key"
AUTH_MESSAGE = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
    "provide a valid key for an active subscription and use a correct regional API "
    "endpoint for your resource."
)
KIND = openai_kind(NAME)
PHASES = (("pending", 5.0), ("queued", 5.0), ("running", 0.0), ("succeeded", 0.0))
# OpenAI's models less the retired completion and gpt-3.5 ones
MODELS = tuple(m for m in _jobs.MODELS if not m.startswith(("gpt-3.5", "babbage", "davinci")))


def error(status: int, message: str, **fields: Any) -> Response:
    """Azure's body: OpenAI's envelope (``code`` always set); a 401 in its gateway's words."""
    if status == 401:
        return JSONResponse({"error": {"code": "401", "message": message}}, status_code=401)
    return envelope_error(status, message, **{**fields, "code": fields.get("code") or str(status)})


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


HOLDABLE = AZURE.HOLDABLE
routes, job_summary = bound(AZURE)
