"""Mistral's wire format (providers.md §4), pure: request payloads, status mapping, the
tag in ``suffix``, events and validated cost. No I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ... import tags
from ...model import Checkpoint, CreateRequest, Phase, RemoteEvent, RemoteJob
from ...model import unexpressed as _unexpressed
from ...redact import scrub
from ..wire import dicts as _dicts
from ..wire import integer as _int
from ..wire import merge as _merge
from ..wire import number as _number
from ..wire import text as _str

PROVIDER = "mistral"

STATUS_TO_PHASE: dict[str, Phase] = {
    "QUEUED": Phase.QUEUED,
    "STARTED": Phase.RUNNING,
    "RUNNING": Phase.RUNNING,
    "VALIDATING": Phase.VALIDATING,
    "VALIDATED": Phase.VALIDATING,  # parked until POST …/start: not running yet
    "CANCELLATION_REQUESTED": Phase.CANCELLING,
    "SUCCESS": Phase.SUCCEEDED,
    "FAILED": Phase.FAILED,
    "FAILED_VALIDATION": Phase.FAILED,
    "CANCELLED": Phase.CANCELLED,
}
PARKED = "VALIDATED"
FAILED_STATUSES = frozenset({"FAILED", "FAILED_VALIDATION"})

MAX_SUFFIX = 18  # JobIn.suffix maxLength: our tag takes all of it
PAGE_SIZE = 100
_HP_TO_WIRE: dict[str, str] = {
    "learning_rate": "learning_rate",
    "weight_decay": "weight_decay",
    "warmup_ratio": "warmup_fraction",
    "epochs": "epochs",
    "max_seq_length": "seq_len",
}
# The project's hyperparameter names (DESIGN §2) this driver knows how to send.
HYPERPARAMETERS: tuple[str, ...] = tuple(_HP_TO_WIRE)
_RANGES = {"learning_rate": (1e-8, 1.0), "weight_decay": (0.0, 1.0), "warmup_ratio": (0.0, 1.0)}
MIN_SEQ_LEN = 100
# Options that would override a first-class field; `suffix` carries the crash-safety tag.
RESERVED_OPTIONS: tuple[str, ...] = ("suffix", "model", "training_files", "validation_files")
_WANDB = ("project", "name", "api_key")  # integrations[]: no entity, no base URL
# JobIn's fields: Mistral rejects unknown body fields with 422 (providers.md §4.7), so an
# option outside these would only fail at create time; validation says so up front.
REQUEST_FIELDS = frozenset(
    {"model", "training_files", "validation_files", "suffix", "integrations", "auto_start"}
    | {"invalid_sample_skip_percentage", "job_type", "hyperparameters", "repositories"}
    | {"classifier_targets"}
)
WIRE_HYPERPARAMETERS = frozenset({*_HP_TO_WIRE.values(), "training_steps", "fim_ratio"})
_TAG = re.compile(rf"^{tags.PATTERN}$")
# fine-tuned model names are "ft:[classifier:]<base>:<suffix or short id>:<date>:<hash>"
_TAG_IN_MODEL = re.compile(rf"(?:^|:)({tags.PATTERN})(?::|$)")
_ERROR_KEYS = ("error", "error_message", "message", "reason", "detail")


# ---------------------------------------------------------------- pure mapping


def phase_for(status: str) -> Phase:
    """The common phase of a Mistral status string (any case); unknown strings map to UNKNOWN."""
    return STATUS_TO_PHASE.get(str(status).strip().upper(), Phase.UNKNOWN)


def tag_from_wire(d: Mapping[str, Any]) -> str | None:
    """Our tag: the whole ``suffix``, else the suffix segment of ``fine_tuned_model``."""
    suffix = d.get("suffix")
    if isinstance(suffix, str) and _TAG.match(suffix):
        return suffix
    model = d.get("fine_tuned_model")
    match = _TAG_IN_MODEL.search(model) if isinstance(model, str) else None
    return match.group(1) if match else None


def create_payload(req: CreateRequest) -> dict[str, Any]:
    """The JSON body of ``POST fine_tuning/jobs``: parked, tagged, only keys that are set."""
    if req.method != "sft":
        # sending DPO data as a supervised job would train the wrong thing: refuse
        raise ValueError(f"mistral: supports supervised fine-tuning only, not {req.method!r}")
    if req.from_output:
        raise ValueError("mistral: cannot start a job from another job's result")
    hp = req.hyperparameters
    body: dict[str, Any] = {
        "model": req.model,
        "training_files": [{"file_id": req.training_file_id, "weight": 1.0}],
        # required by the spec even when empty (the server then uses its defaults)
        "hyperparameters": {
            theirs: hp[ours] for ours, theirs in _HP_TO_WIRE.items() if hp.get(ours) is not None
        },
        # parked at VALIDATED so the cost can be read before money is spent; "will be
        # required in a future release", so it is always sent
        "auto_start": False,
    }
    if req.validation_file_id:
        body["validation_files"] = [req.validation_file_id]
    if req.wandb:
        run = {k: req.wandb[k] for k in _WANDB if req.wandb.get(k)}
        body["integrations"] = [{"type": "wandb", **run}]
    body = _merge(body, req.options)
    body["suffix"] = req.tag  # last: no option may take the tag away (DESIGN §4)
    return body


def request_problems(req: CreateRequest) -> list[str]:
    """What Mistral cannot express in a request (for spec validation); empty when fine."""
    problems: list[str] = []
    if req.method == "dpo":
        problems.append("method: mistral supports supervised fine-tuning only (no DPO)")
    elif req.method != "sft":
        problems.append(f"method: mistral supports sft only, not {req.method!r}")
    if req.lora is False:
        problems.append(
            "lora: not configurable at mistral (it always trains LoRA adapters; no full fine-tune)"
        )
    elif isinstance(req.lora, dict) and req.lora:
        problems.append("lora: not configurable at mistral (rank, alpha and modules are fixed)")
    for key, value in req.hyperparameters.items():
        if key not in HYPERPARAMETERS:
            problems.append(f"hyperparameters.{key}: no equivalent at mistral")
        elif key in _RANGES and isinstance(value, int | float):
            low, high = _RANGES[key]
            if not low <= value <= high:
                problems.append(f"hyperparameters.{key}: mistral accepts {low:g} to {high:g}")
    seq_len = req.hyperparameters.get("max_seq_length")
    if isinstance(seq_len, int) and seq_len < MIN_SEQ_LEN:
        problems.append(f"hyperparameters.max_seq_length: mistral needs at least {MIN_SEQ_LEN}")
    if req.suffix is not None:
        problems.append(
            f"suffix: cannot be used at mistral: its suffix (at most {MAX_SUFFIX} characters) "
            "carries reconciler's tag"
        )
    if req.from_output:
        problems.append("from: mistral cannot start a job from another job's result")
    for key, value in req.options.items():
        if key in RESERVED_OPTIONS:
            problems.append(f"options.{key}: set by reconciler, use the spec field instead")
        elif key not in REQUEST_FIELDS:
            problems.append(f"options.{key}: not a field of mistral's create-job request")
        elif key == "hyperparameters":
            if not isinstance(value, Mapping):
                problems.append("options.hyperparameters: must be a mapping")
                continue
            for sub in value:
                if sub not in WIRE_HYPERPARAMETERS:
                    problems.append(f"options.hyperparameters.{sub}: not a mistral hyperparameter")
    return problems + _unexpressed(req, "mistral", _WANDB, ("project", "api_key"))


def _progress(d: Mapping[str, Any]) -> str | None:
    """``step 40/100, loss 0.82`` from the newest checkpoint (detailed jobs only)."""
    points = [c for c in _dicts(d.get("checkpoints")) if _int(c.get("step_number")) is not None]
    hp = d.get("hyperparameters")
    total = _int(hp.get("training_steps")) if isinstance(hp, Mapping) else None
    if not points:
        # before the first checkpoint a running job has done none of its steps that we know
        running = str(d.get("status", "")).upper() in ("RUNNING", "STARTED")
        return f"step 0/{total}" if running and total and "checkpoints" in d else None
    latest = max(points, key=lambda c: _int(c.get("step_number")) or 0)
    text = f"step {_int(latest.get('step_number'))}"
    if total:
        text += f"/{total}"
    metrics = latest.get("metrics")
    loss = _number(metrics.get("train_loss")) if isinstance(metrics, Mapping) else None
    return f"{text}, loss {loss:.3g}" if loss is not None else text


def job_cost_usd(d: Mapping[str, Any]) -> float | None:
    """``metadata.cost`` when it is in US dollars, else None.

    Mistral bills some accounts in EUR (its own example says so); budgets are in USD and
    an exchange rate invented here would be a wrong number, so other currencies give None.
    """
    meta = d.get("metadata")
    if not isinstance(meta, Mapping):
        return None
    currency = meta.get("cost_currency")
    if not isinstance(currency, str) or currency.strip().upper() != "USD":
        return None
    return _number(meta.get("cost"))


def _event_error(data: Mapping[str, Any]) -> str | None:
    for key in _ERROR_KEYS:
        value = data.get(key)
        if isinstance(value, Mapping):
            value = value.get("message")
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _error_text(d: Mapping[str, Any], status: str) -> str:
    events = _dicts(d.get("events"))
    # the newest event that says what went wrong, whichever order the list is in
    for event in sorted(events, key=lambda e: _number(e.get("created_at")) or 0, reverse=True):
        data = event.get("data")
        if isinstance(data, Mapping) and (error := _event_error(data)):
            return error
    if status.upper() == "FAILED_VALIDATION":
        return "mistral rejected the job's data or settings (FAILED_VALIDATION)"
    return f"job ended with status {status}"


def job_from_wire(d: Mapping[str, Any]) -> RemoteJob:
    """A Mistral job (list, create or detailed form) as a RemoteJob; tolerant of any field."""
    status = str(d.get("status") or "")
    phase = phase_for(status)
    return RemoteJob(
        id=str(d.get("id") or ""),
        phase=phase,
        status=status,
        tag=tag_from_wire(d),
        fine_tuned_model=_str(d.get("fine_tuned_model")),
        progress=_progress(d),
        error=scrub(_error_text(d, status)) if phase is Phase.FAILED else None,
        # FAILED is the platform's side; FAILED_VALIDATION is our data or settings
        error_retryable=status.strip().upper() == "FAILED",
        trained_tokens=_int(d.get("trained_tokens")),
        created_at=_number(d.get("created_at")),
        cost_usd=job_cost_usd(d),
    )


def event_from_wire(d: Mapping[str, Any]) -> RemoteEvent:
    """``{name, data, created_at}`` as one line: ``status-updated: RUNNING``."""
    name = str(d.get("name") or "event")
    raw = d.get("data")
    data: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    status = str(data.get("status") or "")
    error = _event_error(data)
    if error is not None:
        message = f"{name}: {error}"
    elif status and len(data) == 1:
        message = f"{name}: {status}"
    elif data:
        message = f"{name}: " + ", ".join(f"{k}={v}" for k, v in data.items())
    else:
        message = name
    failed = error is not None or status.upper() in FAILED_STATUSES
    return RemoteEvent(
        created_at=_number(d.get("created_at")),
        level="error" if failed else "info",
        message=scrub(message),
    )


def events_from_wire(events: Any) -> list[RemoteEvent]:
    """Events oldest first; Mistral's examples list them newest first."""
    items = _dicts(events)
    first = _number(items[0].get("created_at")) if items else None
    last = _number(items[-1].get("created_at")) if items else None
    if first is not None and last is not None and first > last:
        items.reverse()  # so ties keep their order after the stable sort below
    out = [event_from_wire(e) for e in items]
    return sorted(out, key=lambda e: e.created_at if e.created_at is not None else float("-inf"))


def checkpoints_from_wire(job_id: str, points: Any) -> list[Checkpoint]:
    """A detailed job's inline ``checkpoints`` oldest first (Mistral lists them newest
    first), as ``JOB_ID:STEP``: metrics only, no model to call or download."""
    out: list[Checkpoint] = []
    for d in _dicts(points):
        if (step := _int(d.get("step_number"))) is None:
            continue  # nothing to name it by
        raw = d.get("metrics")
        numbers = {str(k): _number(v) for k, v in raw.items()} if isinstance(raw, Mapping) else {}
        metrics = {k: v for k, v in numbers.items() if v is not None}
        out.append(
            Checkpoint(f"{job_id}:{step}", step, None, _number(d.get("created_at")), metrics)
        )
    return sorted(out, key=lambda c: (c.step, c.created_at or 0))


def model_problems(model: str, cards: list[Mapping[str, Any]]) -> list[str]:
    """The spec's model against ``GET /v1/models``: a model the key cannot see, or one whose
    card says ``capabilities.fine_tuning: false`` (by id or alias), is a problem."""
    found = [
        c
        for c in cards
        if c.get("id") == model or (isinstance(c.get("aliases"), list) and model in c["aliases"])
    ]
    if not found:
        return [f"model: {model!r} is not a model Mistral lists for this key (GET /v1/models)"]
    capable = [c.get("capabilities") for c in found]
    if all(isinstance(c, Mapping) and c.get("fine_tuning") is False for c in capable):
        return [f"model: {model!r} cannot be fine-tuned at Mistral (capabilities.fine_tuning)"]
    return []
