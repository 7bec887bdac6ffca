"""Together AI's wire format (providers.md §3), pure: status mapping, the tag in
``suffix``, jobs, events, checkpoints and file states, and the model-limits pre-flight.
The create body is ``payload``'s. No I/O: validation, planning and tests lean on it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ... import tags
from ...model import Checkpoint, CreateRequest, Phase, RemoteEvent, RemoteJob
from ...redact import scrub
from ..wire import integer as _int
from ..wire import text as _str
from .payload import create_payload

PROVIDER = "together"

STATUS_TO_PHASE: dict[str, Phase] = {
    "pending": Phase.QUEUED,
    "queued": Phase.QUEUED,
    "running": Phase.RUNNING,
    "compressing": Phase.RUNNING,  # post-training packaging
    "uploading": Phase.RUNNING,
    "cancel_requested": Phase.CANCELLING,
    "completed": Phase.SUCCEEDED,
    "error": Phase.FAILED,
    "user_error": Phase.FAILED,  # only in the SDK's hand-written enum, not in the spec
    "cancelled": Phase.CANCELLED,
}

_TAG_AT_END = re.compile(rf"(?:^|[^0-9a-z])({tags.PATTERN})$")
# model_output_name is "<owner>/<model>-<suffix>-<random hex>": the tag is followed by a hash
_TAG_IN_OUTPUT = re.compile(rf"(?:^|[^0-9a-z])({tags.PATTERN})(?:-[0-9a-z]{{1,16}})?$")


# ---------------------------------------------------------------- pure mapping


def phase_for(status: str) -> Phase:
    """The common phase of a Together status string; unknown strings map to UNKNOWN."""
    return STATUS_TO_PHASE.get(str(status).strip().lower(), Phase.UNKNOWN)


def tag_from_suffix(suffix: str | None, *, output_name: bool = False) -> str | None:
    """Our tag at the end of a ``suffix`` (or of a ``model_output_name``), else None."""
    if not isinstance(suffix, str):
        return None
    match = (_TAG_IN_OUTPUT if output_name else _TAG_AT_END).search(suffix)
    return match.group(1) if match else None


def timestamp(value: Any) -> float | None:
    """Unix seconds from an ISO 8601 string or a number; None when absent or unreadable."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        return number if math.isfinite(number) else None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # the API speaks UTC
    return when.timestamp()


def _progress(d: Mapping[str, Any]) -> str | None:
    steps, total = _int(d.get("steps_completed")), _int(d.get("total_steps"))
    if steps is not None and total:
        return f"step {steps}/{total}"
    epochs, n_epochs = _int(d.get("epochs_completed")), _int(d.get("n_epochs"))
    if epochs is not None and n_epochs:
        return f"epoch {epochs}/{n_epochs}"
    return None


def _error_text(d: Mapping[str, Any], status: str) -> str:
    for key in ("error", "error_message", "message"):
        value = d.get(key)
        if isinstance(value, Mapping):
            value = value.get("message")
        if isinstance(value, str) and value.strip():
            return value.strip()
    events = d.get("events")
    if isinstance(events, list):
        for event in reversed(events):
            if not isinstance(event, Mapping):
                continue
            level = str(event.get("level") or "").lower()
            kind = str(event.get("type") or "").lower()
            is_error = level == "error" or kind in ("job_error", "job_user_error")
            if is_error and (message := _str(event.get("message"))):
                return message
    return f"job ended with status {status}"


def job_from_wire(d: Mapping[str, Any]) -> RemoteJob:
    """A Together job object (truncated or full) as a RemoteJob; tolerant of any field."""
    status = str(d.get("status") or "")
    phase = phase_for(status)
    output_name = _str(d.get("model_output_name"))
    tag = tag_from_suffix(_str(d.get("suffix"))) or tag_from_suffix(output_name, output_name=True)
    failed = phase is Phase.FAILED
    return RemoteJob(
        id=str(d.get("id") or d.get("job_id") or ""),
        phase=phase,
        status=status,
        tag=tag,
        fine_tuned_model=output_name if phase is Phase.SUCCEEDED else None,
        progress=_progress(d),
        error=scrub(_error_text(d, status)) if failed else None,
        # "error" is the platform's side; "user_error" is our inputs: retrying will not help
        error_retryable=status.lower() == "error",
        trained_tokens=_int(d.get("token_count")),
        created_at=timestamp(d.get("created_at")),
        # total_price is an integer whose unit nobody documents (the spec example shows
        # 1500 beside 850,000 tokens; dollars, cents and micro-dollars all fit): no number
        # is better than a wrong one. Estimates come from estimate_price, in dollars.
        cost_usd=None,
    )


def event_from_wire(d: Mapping[str, Any]) -> RemoteEvent:
    level = str(d.get("level") or "info").lower()
    # the spec has legacy_info / legacy_iwarning / legacy_ierror beside info / warning / error
    level = {"legacy_info": "info", "legacy_iwarning": "warning", "legacy_ierror": "error"}.get(
        level, level
    )
    return RemoteEvent(
        created_at=timestamp(d.get("created_at")),
        level=level,
        message=str(d.get("message") or d.get("type") or ""),
    )


def checkpoints_from_wire(job_id: str, items: list[Mapping[str, Any]]) -> list[Checkpoint]:
    """``GET /fine-tunes/{id}/checkpoints`` oldest first, each id one ``from_checkpoint``
    takes: ``JOB_ID:STEP``, or the job id for the final one (listed twice for LoRA, merged
    and adapter). ``path`` is storage, not a model name: ``model`` stays None."""
    found: dict[str, Checkpoint] = {}
    for d in items:
        step, kind = _int(d.get("step")), str(d.get("checkpoint_type") or "").lower()
        if kind.startswith("final") or step is not None:
            cid = job_id if kind.startswith("final") else f"{job_id}:{step}"
            found.setdefault(cid, Checkpoint(cid, step, None, timestamp(d.get("created_at"))))
    return sorted(found.values(), key=lambda c: (c.id == job_id, c.step or 0, c.created_at or 0))


def file_state(d: Mapping[str, Any]) -> str:
    """``ready``, ``failed`` or ``pending`` for a Together file object."""
    status = d.get("processing_status")
    if isinstance(status, str) and status:
        status = status.upper()
        if status == "COMPLETED":
            return "ready"
        return "failed" if status in ("FAILED", "INVALID_FORMAT") else "pending"
    if "Processed" in d:
        return "ready" if d["Processed"] is True else "pending"
    return "ready"  # a server that reports no processing at all has nothing to wait for


def file_error(d: Mapping[str, Any]) -> str:
    report = d.get("validation_report")
    if isinstance(report, Mapping) and (error := _str(report.get("error"))):
        return error
    return f"processing status {d.get('processing_status')}"


# ---------------------------------------------------------------- pre-flight

# spec field, wire key, and the limits document's minimum / maximum for it ("{kind}":
# lora_training or full_training; "{dpo}": the DPO variant's suffix; "{method}": sft or dpo)
_LIMITS: tuple[tuple[str, str, str | None, str], ...] = (
    (
        "hyperparameters.batch_size",
        "batch_size",
        "{kind}.min_batch_size",
        "{kind}.max_batch_size{dpo}",
    ),
    ("lora.r", "lora_r", None, "lora_training.max_rank"),
    ("hyperparameters.epochs", "n_epochs", None, "max_num_epochs"),
    ("hyperparameters.n_evals", "n_evals", None, "max_num_evals"),
    ("hyperparameters.n_checkpoints", "n_checkpoints", None, "max_num_checkpoints"),
    ("hyperparameters.learning_rate", "learning_rate", "min_learning_rate", "max_learning_rate"),
    (
        "hyperparameters.max_seq_length",
        "max_seq_length",
        "min_max_seq_length",
        "max_seq_length_{method}",
    ),
)


def limit_problems(req: CreateRequest, limits: Mapping[str, Any] | None) -> list[str]:
    """What ``GET /fine-tunes/models/limits`` says the request breaks (None: the model is
    not one Together fine-tunes). Each line names the spec field, or ``options.X`` when an
    option set the wire value."""
    if limits is None:
        return [f"model: {req.model!r} is not a model Together can fine-tune"]
    body, model = create_payload(req), req.model
    raw_type = body.get("training_type")
    ttype: Mapping[str, Any] = raw_type if isinstance(raw_type, Mapping) else {}
    full = str(ttype.get("type", "")).lower() == "full"
    kind = "full_training" if full else "lora_training"

    def field(ours: str, wire: str) -> str:
        holder = "training_type" if wire.startswith("lora_") else wire
        return f"options.{holder}" if holder in req.options else ours

    bounds = limits.get(kind)
    if not isinstance(bounds, Mapping) or (full and limits.get("supports_full_training") is False):
        what = "full fine-tuning (lora: false)" if full else "LoRA fine-tuning"
        return [f"{field('lora', 'lora_type')}: Together offers no {what} for {model}"]
    names = {"kind": kind, "dpo": "_dpo" * (req.method == "dpo"), "method": req.method}
    values = {**body, **ttype}
    out: list[str] = []
    for ours, wire, low, high in _LIMITS:
        for key, over in ((low, False), (high, True)):
            path = key.format(**names) if key else ""
            limit = _dig(limits, path)
            value = values.get(wire)
            if limit is None or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if value > limit if over else value < limit:
                side = "over" if over else "under"
                out.append(
                    f"{field(ours, wire)}: {value} is {side} Together's {path} {limit} for {model}"
                )
    if req.train_vision and limits.get("supports_vision") is not True:
        # the SDK refuses this before sending: the model has no vision encoder
        out.append(f"train_vision: {model} is not a vision model at Together")
    modules, allowed = ttype.get("lora_trainable_modules"), bounds.get("target_modules")
    if isinstance(modules, str) and isinstance(allowed, list) and modules != "all-linear":
        unknown = [x for x in (m.strip() for m in modules.split(",")) if x not in allowed]
        out += [
            f"{field('lora.trainable_modules', 'lora_trainable_modules')}: {', '.join(unknown)} "
            f"not in Together's {kind}.target_modules for {model} ({', '.join(allowed)})"
        ] * bool(unknown)
    return out


def _dig(doc: Mapping[str, Any], path: str) -> float | None:
    """The number at a dotted ``path`` of the limits document, else None."""
    node: Any = doc
    for part in path.split(".") if path else ():
        node = node.get(part) if isinstance(node, Mapping) else None
    return None if isinstance(node, bool) or not isinstance(node, int | float) else node


def violations(body: Any) -> list[str]:
    """``field: message`` for each violation a 422 body lists (empty when it lists none).

    Read tolerantly: ``errors`` or ``details`` beside or inside ``error``, or a pydantic
    ``detail`` list; each item's field as ``field``, ``param``, ``loc`` or ``path``."""
    if not isinstance(body, Mapping):
        return []
    inner = body.get("error")
    holders = [body, inner] if isinstance(inner, Mapping) else [body]
    out: list[str] = []
    for holder in holders:
        for key in ("errors", "details", "detail"):
            items = holder.get(key)
            for item in items if isinstance(items, list) else ():
                if not isinstance(item, Mapping):
                    continue
                where = item.get("field") or item.get("param") or item.get("path")
                if where is None and isinstance(item.get("loc"), list):
                    where = ".".join(str(p) for p in item["loc"] if p != "body")
                said = _str(item.get("message")) or _str(item.get("msg")) or ""
                out.append(f"{where}: {said}" if where else said)
    return [scrub(line) for line in out if line]
