"""Nebius Token Factory's deltas from OpenAI's wire format (providers-next.md §3), as a
``Host``: an absolute learning rate and its own LoRA, packing and schedule fields in the
method's hyperparameters, supervised training only, no metadata (the tag ends the
64-character suffix), no pause. Pure.
"""

from __future__ import annotations

from typing import Any

from ...model import CreateRequest
from ..openai.mapping import STATUS_TO_PHASE, Host
from ..openai.mapping import request_problems as _request_problems

PROVIDER = "nebius"
MAX_SUFFIX = 64
# the project's hyperparameter names → Nebius' (inside method.supervised.hyperparameters)
HYPERPARAMETERS = {
    "epochs": "n_epochs",
    "batch_size": "batch_size",
    "learning_rate": "learning_rate",  # absolute, not OpenAI's multiplier
    "warmup_ratio": "warmup_ratio",
    "weight_decay": "weight_decay",
    "max_grad_norm": "max_grad_norm",
    "max_seq_length": "context_length",
}
HINTS = {
    "learning_rate_multiplier": "nebius takes an absolute learning rate: "
    "use hyperparameters.learning_rate instead",
}
# options that are hyperparameters at Nebius, with the type each must have
HP_OPTIONS: dict[str, type] = {"packing": bool}
STATUSES = {k: v for k, v in STATUS_TO_PHASE.items() if k != "paused"}  # OpenAI's six


def lora_fields(req: CreateRequest) -> dict[str, Any]:
    """``lora`` (false = full fine-tune) and its rank, alpha and dropout. The spec's
    default (``lora: true``) asks for LoRA explicitly: the docs' example sends false."""
    if req.lora is False:
        return {"lora": False}
    out: dict[str, Any] = {"lora": True}
    settings = req.lora if isinstance(req.lora, dict) else {}
    for ours, theirs in (("r", "lora_r"), ("alpha", "lora_alpha"), ("dropout", "lora_dropout")):
        value = settings.get(ours)
        if value is not None:
            # Nebius types alpha as an integer
            whole = ours == "alpha" and isinstance(value, float) and value.is_integer()
            out[theirs] = int(value) if whole else value
    return out


def _problems(req: CreateRequest) -> list[str]:
    problems = []
    settings = req.lora if isinstance(req.lora, dict) else {}
    if settings.get("trainable_modules") is not None:
        problems.append("lora.trainable_modules: no equivalent at nebius (it adapts its own set)")
    alpha = settings.get("alpha")
    if isinstance(alpha, float) and not alpha.is_integer():
        problems.append(f"lora.alpha: nebius takes a whole number, not {alpha!r}")
    for key, kind in HP_OPTIONS.items():
        if key in req.options and not isinstance(req.options[key], kind):
            problems.append(f"options.{key}: {kind.__name__} at nebius")
    return problems


NEBIUS = Host(
    PROVIDER,
    statuses=STATUSES,
    max_suffix=MAX_SUFFIX,
    tag_in_suffix=True,
    metadata=False,  # no metadata map on a Nebius job
    methods=("sft",),  # only supervised appears in the docs
    hyperparameters=HYPERPARAMETERS,
    hints=HINTS,
    ranges=False,  # OpenAI's epochs and batch ranges are not documented at Nebius
    lora=lora_fields,
    hp_options=tuple(HP_OPTIONS),
    problems=_problems,
    pausable=False,
    uploads=False,
    # GET /v1/models lists inference ids, which differ from the training ids (§3.3)
    lists_models=False,
)


def request_problems(req: CreateRequest) -> list[str]:
    """What Nebius cannot express in a request (for spec validation)."""
    return _request_problems(req, NEBIUS)
