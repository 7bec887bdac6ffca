"""Nebius Token Factory under ``/nebius/v1`` (providers-next.md §3): OpenAI's routes with
Nebius' ``Host`` — supervised training only, its own hyperparameters (absolute learning
rate, LoRA, packing, context length), no metadata, no pause, no Uploads API, a 64-character
suffix, step counts on the job, FastAPI's 422 for a body it cannot read."""

from __future__ import annotations

from typing import Any

from ..openai.host import Host, openai_kind
from ..openai.routes import bound
from ..schema import Problem
from ..wire import detail_error, envelope_error

NAME = "nebius"
KIND = openai_kind(NAME, paused=None)
PHASES = (("validating_files", 5.0), ("queued", 5.0), ("running", 0.0), ("succeeded", 0.0))
MODELS = (
    "meta-llama/Llama-3.1-8B-Instruct",
    "meta-llama/Llama-3.3-70B-Instruct",
    "unsloth/gpt-oss-20b-BF16",
)
_NUM, _INT, _BOOL = {"type": "number"}, {"type": "integer"}, {"type": "boolean"}
HYPERPARAMETERS = {
    "learning_rate": {"type": "number", "exclusiveMinimum": 0},
    "warmup_ratio": _NUM,
    "weight_decay": _NUM,
    "max_grad_norm": _NUM,
    "context_length": _INT,
    "packing": _BOOL,
    "lora": _BOOL,
    "lora_r": _INT,
    "lora_alpha": _INT,
    "lora_dropout": _NUM,
}
error = envelope_error


def _problem_error(p: Problem) -> Any:
    """A body Nebius cannot read: FastAPI's 422 with pydantic's item."""
    kinds = {"missing": "missing", "extra": "extra_forbidden", "enum": "literal_error"}
    return detail_error(["body", *p.loc], kinds.get(p.kind, p.kind), p.message, p.value)


def _job_fields(out: dict[str, Any], data: dict[str, Any], steps: int) -> dict[str, Any]:
    """No metadata and no fine_tuned_model (the result is its checkpoints); the suffix and
    step counts are on the job."""
    shown = {k: v for k, v in out.items() if k not in ("metadata", "fine_tuned_model")}
    total = int(data["total_steps"])
    return {**shown, "suffix": data.get("suffix"), "trained_steps": steps, "total_steps": total}


NEBIUS = Host(
    NAME,
    "/nebius/v1",
    KIND,
    PHASES,
    MODELS,
    metadata=False,
    metadata_filter=False,
    pause=False,
    uploads=False,
    model_routes=False,  # its /v1/models lists inference ids, not these
    methods=("supervised",),
    sft_formats=("CONVERSATION", "INSTRUCTION", "GENERAL"),
    leading_bom=False,
    extra_hyperparameters=HYPERPARAMETERS,
    extra_fields={"tags": {"type": "string"}},
    job_fields=_job_fields,
    problem_error=_problem_error,
)


HOLDABLE = NEBIUS.HOLDABLE
routes, job_summary = bound(NEBIUS)
