"""OpenAI's wire format (providers.md §2), pure: request payloads, status mapping, the
tag in ``metadata``, events and checkpoints. No I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ...model import Checkpoint, CreateRequest, Phase, RemoteEvent, RemoteFile, RemoteJob
from ...redact import scrub
from ..wire import integer as _int
from ..wire import merge as _merge
from ..wire import number as _number
from ..wire import text as _str

PROVIDER = "openai"

STATUS_TO_PHASE: dict[str, Phase] = {
    "validating_files": Phase.VALIDATING,
    "queued": Phase.QUEUED,
    "running": Phase.RUNNING,
    # not in the status enum, but the spec's own pause example answers it; the job is
    # alive mid-training and resumable, so it is active like running (never terminal),
    # and RemoteJob.status / progress keep the word "paused" visible
    "paused": Phase.RUNNING,
    "succeeded": Phase.SUCCEEDED,
    "failed": Phase.FAILED,
    "cancelled": Phase.CANCELLED,
}

TAG_KEY = "reconciler_tag"
NAME_KEY = "reconciler_name"
MAX_SUFFIX = 64
MAX_METADATA_PAIRS, MAX_METADATA_KEY, MAX_METADATA_VALUE = 16, 64, 512
EPOCHS_RANGE, BATCH_RANGE = (1, 50), (1, 256)
MAX_BETA = 2.0
# first-class fields an option must not replace (the tag lives in metadata)
RESERVED_OPTIONS: tuple[str, ...] = ("model", "training_file", "validation_file")

_HP_TO_WIRE: dict[str, str] = {
    "epochs": "n_epochs",
    "batch_size": "batch_size",
    "learning_rate_multiplier": "learning_rate_multiplier",
}
# The project's hyperparameter names this driver can send (seed goes top-level).
HYPERPARAMETERS: tuple[str, ...] = (*_HP_TO_WIRE, "seed")
DPO_KEYS: tuple[str, ...] = ("beta",)
_METHOD_TYPE = {"sft": "supervised", "dpo": "dpo"}

# Failures caused by the inputs: a new attempt with the same data fails the same way.
_DATA_ERROR_CODES = frozenset({"file_too_large", "too_many_tokens", "exceeds_token_limit"})
_DATA_ERROR_CODES |= {"unsafe_file", "content_policy_violation", "model_not_available"}
_DATA_ERROR_CODES |= {"insufficient_quota", "billing_hard_limit_reached"}
# OpenAI's wind-down answer (providers.md §0). Matched only on a create's 400/403, and
# narrowly: "cannot parse line 3 of the fine-tuning file" or "cannot create more than 3
# jobs" must stay ordinary errors.
CLOSED_PATTERN = re.compile(
    r"self[-_ ]serve\s+fine[-_ ]?tun"
    r"|(?:no\s+longer|not\s+(?:be\s+)?(?:able|allowed|permitted|eligible)\s+to|cannot|can't"
    r"|can\s+not|unable\s+to)\s+(?:create|start|run)\s+(?:new\s+|any\s+)?"
    r"(?:fine[-_ ]?tun\w*\s*)?(?:jobs?\b|fine[-_ ]?tun)"
    r"|fine[-_ ]?tuning\s+jobs?\s+(?:can\s*not|can't|can\s+no\s+longer)\s+be\s+(?:created|started)"
    r"|fine[-_ ]?tuning(?:\s+jobs?)?(?:\s+creation)?\s+(?:is\s+|has\s+(?:been\s+)?)?"
    r"(?:closing|closed|ended|disabled|no\s+longer\s+available"
    r"|being\s+(?:wound\s+down|retired|shut\s+down))",
    re.IGNORECASE,
)
CLOSED_MESSAGE = (
    "OpenAI no longer accepts new fine-tuning jobs for this organisation (self-serve "
    "fine-tuning closes 2027-01-06); existing jobs and fine-tuned models keep working. "
    "Retrying will not help: move this spec to another provider"
)


# ---------------------------------------------------------------- pure mapping


def phase_for(status: str) -> Phase:
    """The common phase of an OpenAI status string; unknown strings map to UNKNOWN."""
    return STATUS_TO_PHASE.get(str(status).strip().lower(), Phase.UNKNOWN)


def _method(req: CreateRequest, override: Any) -> dict[str, Any]:
    """``method`` with our hyperparameters under the type's key; ``options.method`` merged.

    An option naming another type (e.g. reinforcement) replaces ours rather than sitting
    beside it, and still receives the common hyperparameters it did not set itself.
    """
    if req.method not in _METHOD_TYPE:
        raise ValueError(f"openai: unsupported method {req.method!r} (sft or dpo)")
    kind = _METHOD_TYPE[req.method]
    if isinstance(override, Mapping) and isinstance(override.get("type"), str):
        kind = override["type"]
    hp = {
        theirs: req.hyperparameters[ours]
        for ours, theirs in _HP_TO_WIRE.items()
        if req.hyperparameters.get(ours) is not None
    }
    if kind == "dpo" and (req.dpo or {}).get("beta") is not None:
        hp["beta"] = (req.dpo or {})["beta"]
    method: dict[str, Any] = {"type": kind}
    if hp:
        method[kind] = {"hyperparameters": hp}
    return _merge(method, override) if isinstance(override, Mapping) else method


def create_payload(req: CreateRequest) -> dict[str, Any]:
    """The JSON body of ``POST /fine_tuning/jobs``; only keys that are set, options last."""
    # `from: {job: X}` continues from X's fine-tuned model, passed as the base model
    # (community-reported; the spec has no from_checkpoint field)
    body: dict[str, Any] = {"model": req.from_output or req.model}
    body["training_file"] = req.training_file_id
    if req.validation_file_id:
        body["validation_file"] = req.validation_file_id
    if req.suffix:
        body["suffix"] = req.suffix
    if req.hyperparameters.get("seed") is not None:
        body["seed"] = req.hyperparameters["seed"]
    body["method"] = _method(req, req.options.get("method"))
    body["metadata"] = {TAG_KEY: req.tag, NAME_KEY: req.name}
    body = _merge(body, {k: v for k, v in req.options.items() if k != "method"})
    metadata = body.get("metadata")
    # the tag is how a crash is resolved: an option may add metadata, never replace it
    body["metadata"] = {**(metadata if isinstance(metadata, Mapping) else {}), TAG_KEY: req.tag}
    return body


def _out_of_range(value: Any, low: int, high: int) -> bool:
    return isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high


def _metadata_problems(req: CreateRequest) -> list[str]:
    extra = req.options.get("metadata")
    if extra is None:
        return []
    if not isinstance(extra, Mapping):
        return ["options.metadata: a map of strings at openai"]
    problems = [
        f"options.metadata.{key}: reserved for reconciler's tag"
        for key in (TAG_KEY, NAME_KEY)
        if key in extra
    ]
    if len({*extra, TAG_KEY, NAME_KEY}) > MAX_METADATA_PAIRS:
        problems.append(
            f"options.metadata: at most {MAX_METADATA_PAIRS} pairs at openai, "
            f"including reconciler's {TAG_KEY} and {NAME_KEY}"
        )
    for key, value in extra.items():
        if len(str(key)) > MAX_METADATA_KEY:
            problems.append(f"options.metadata.{key}: keys are at most 64 characters at openai")
        if not isinstance(value, str):
            problems.append(f"options.metadata.{key}: values must be strings at openai")
        elif len(value) > MAX_METADATA_VALUE:
            problems.append(f"options.metadata.{key}: values are at most 512 characters at openai")
    return problems


def request_problems(req: CreateRequest) -> list[str]:
    """What OpenAI cannot express in a request (for spec validation); empty when fine."""
    problems: list[str] = []
    if req.method not in _METHOD_TYPE:
        problems.append(f"method: openai supports sft and dpo, not {req.method!r}")
    hp = req.hyperparameters
    for key, value in hp.items():
        if value is None or key in HYPERPARAMETERS:
            continue
        if key == "learning_rate":
            problems.append(
                "hyperparameters.learning_rate: openai takes no absolute learning rate; "
                "use learning_rate_multiplier (a factor on its own base rate) instead"
            )
        else:
            problems.append(f"hyperparameters.{key}: no equivalent at openai")
    epochs, batch = hp.get("epochs"), hp.get("batch_size")
    if epochs is not None and _out_of_range(epochs, *EPOCHS_RANGE):
        problems.append(f"hyperparameters.epochs: openai accepts 1 to 50, not {epochs!r}")
    if batch == "max":
        problems.append(
            "hyperparameters.batch_size: 'max' is not supported at openai; "
            "give an integer 1 to 256, or leave it out for openai's automatic choice"
        )
    elif batch is not None and _out_of_range(batch, *BATCH_RANGE):
        problems.append(f"hyperparameters.batch_size: openai accepts 1 to 256, not {batch!r}")
    multiplier = hp.get("learning_rate_multiplier")
    if multiplier is not None and not (isinstance(multiplier, int | float) and multiplier > 0):
        problems.append("hyperparameters.learning_rate_multiplier: must be a number above 0")
    if isinstance(req.lora, dict) or req.lora is False:
        what = "full fine-tuning (lora: false)" if req.lora is False else "LoRA settings"
        problems.append(
            f"lora: {what} cannot be chosen at openai, which decides how it trains; "
            "remove the lora field"
        )
    if req.dpo and req.method != "dpo":
        problems.append("dpo: only with method: dpo")
    for key, value in (req.dpo or {}).items():
        if key not in DPO_KEYS and value is not None:
            problems.append(f"dpo.{key}: no equivalent at openai (only beta)")
    beta = (req.dpo or {}).get("beta")
    if beta is not None and not (isinstance(beta, int | float) and 0 < beta <= MAX_BETA):
        problems.append(f"dpo.beta: openai accepts a value in (0, 2], not {beta!r}")
    if req.suffix is not None and len(req.suffix) > MAX_SUFFIX:
        problems.append(f"suffix: at most {MAX_SUFFIX} characters at openai")
    for key in RESERVED_OPTIONS:
        if key in req.options:
            problems.append(f"options.{key}: set by reconciler, use the spec field instead")
    override = req.options.get("method")
    kind = override.get("type") if isinstance(override, Mapping) else None
    if req.method == "dpo" and kind not in (None, "dpo"):
        problems.append(f"options.method.type: {kind!r} contradicts method: dpo")
    elif req.method == "sft" and kind == "dpo":
        problems.append("options.method.type: use method: dpo in the spec instead")
    return problems + _metadata_problems(req)


def progress_from_metrics(metrics: Mapping[str, Any]) -> str | None:
    """``step 30/100`` (or ``step 30``) from a metrics event's ``data`` or a checkpoint."""
    step = _int(metrics.get("step"))
    if step is None:
        step = _int(metrics.get("step_number"))
    if step is None:
        return None
    total = _int(metrics.get("total_steps"))
    return f"step {step}/{total}" if total else f"step {step}"


def _progress(d: Mapping[str, Any], status: str) -> str | None:
    if status == "paused":
        return "paused"
    # the documented job object carries no metrics; read them when a server embeds some
    for key, inner in (("events", "data"), ("checkpoints", "metrics")):
        items = d.get(key)
        for item in items if isinstance(items, list) else []:  # newest first, as listed
            if isinstance(item, Mapping) and isinstance(item.get(inner), Mapping):
                found = progress_from_metrics({**item, **item[inner]})
                if found:
                    return found
    finish = _number(d.get("estimated_finish"))
    if finish and phase_for(status).active:
        return "ETA " + datetime.fromtimestamp(finish, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return None


def _error(d: Mapping[str, Any], status: str) -> tuple[str, bool]:
    """The failure text and whether a new attempt could succeed (not a data problem)."""
    err = d.get("error")
    err = err if isinstance(err, Mapping) else {}
    code, param = _str(err.get("code")), _str(err.get("param"))
    text = _str(err.get("message")) or f"job ended with status {status}"
    detail = ", ".join(x for x in (code, f"param {param}" if param else None) if x)
    # a named input (param) or a data/validation code: the same data fails the same way;
    # anything else (no code, server_error, …) is the platform's side and worth a new attempt
    data_error = bool(param) or bool(
        code and (code.startswith("invalid") or code in _DATA_ERROR_CODES)
    )
    return scrub(f"{text} ({detail})" if detail else text), not data_error


def job_from_wire(d: Mapping[str, Any]) -> RemoteJob:
    """An OpenAI job object as a RemoteJob; tolerant of missing and unknown fields."""
    status = str(d.get("status") or "")
    phase = phase_for(status)
    metadata = d.get("metadata")
    tag = _str(metadata.get(TAG_KEY)) if isinstance(metadata, Mapping) else None
    error, retryable = _error(d, status) if phase is Phase.FAILED else (None, False)
    created = _number(d.get("created_at"))
    return RemoteJob(
        id=str(d.get("id") or ""),
        phase=phase,
        status=status,
        tag=tag,
        fine_tuned_model=_str(d.get("fine_tuned_model")),
        progress=_progress(d, status.strip().lower()),
        error=error,
        error_retryable=retryable,
        trained_tokens=_int(d.get("trained_tokens")),
        created_at=created,
        cost_usd=None,  # no per-token price is published for these endpoints
    )


def event_from_wire(d: Mapping[str, Any]) -> RemoteEvent:
    level = str(d.get("level") or "info").lower()
    return RemoteEvent(
        created_at=_number(d.get("created_at")),
        level="warning" if level == "warn" else level,  # the spelling the other drivers use
        message=str(d.get("message") or ""),
    )


def checkpoint_from_wire(d: Mapping[str, Any]) -> Checkpoint:
    raw = d.get("metrics")
    numbers = {k: _number(v) for k, v in raw.items()} if isinstance(raw, Mapping) else {}
    return Checkpoint(
        id=str(d.get("id") or ""),
        step=_int(d.get("step_number")),
        model=_str(d.get("fine_tuned_model_checkpoint")),
        created_at=_number(d.get("created_at")),
        metrics={str(k): v for k, v in numbers.items() if v is not None},
    )


def remote_file(d: Mapping[str, Any], name: str) -> RemoteFile:
    return RemoteFile(
        id=str(d["id"]), filename=_str(d.get("filename")) or name, bytes=_int(d.get("bytes"))
    )


def model_problems(model: str, models: list[Mapping[str, Any]]) -> list[str]:
    """The spec's model against ``GET /models``. That list says nothing of which models
    can be fine-tuned, so only a model the key cannot see at all is a problem."""
    if any(m.get("id") == model for m in models):
        return []
    return [f"model: {model!r} is not a model OpenAI lists for this key (GET /models)"]
