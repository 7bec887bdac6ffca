"""Together AI's wire format (providers.md §3), pure: request payloads, status mapping,
the tag in ``suffix``, file states. No I/O: validation, planning and tests lean on it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from ... import tags
from ...model import Checkpoint, CreateRequest, Phase, RemoteEvent, RemoteJob
from ...redact import scrub
from ..wire import integer as _int
from ..wire import merge as _merge
from ..wire import text as _str

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

LR_SCHEDULERS: tuple[str, ...] = ("linear", "cosine")
# Options that would override a first-class field; `suffix` carries the crash-safety tag.
RESERVED_OPTIONS: tuple[str, ...] = ("suffix", "model", "training_file", "validation_file")

TAG_LENGTH = tags.LENGTH  # 18: "rc" + namespace code + "-" + 11 hex
MAX_SUFFIX = 40  # the SDK's documented limit (the spec states none)
# The user's suffix gets "-<tag>" appended, so it may use what is left of the 40.
MAX_USER_SUFFIX = MAX_SUFFIX - 1 - TAG_LENGTH  # 21

_HP_TO_WIRE: dict[str, str] = {
    "epochs": "n_epochs",
    "learning_rate": "learning_rate",
    "batch_size": "batch_size",
    "warmup_ratio": "warmup_ratio",
    "weight_decay": "weight_decay",
    "max_grad_norm": "max_grad_norm",
    "max_seq_length": "max_seq_length",
    "n_checkpoints": "n_checkpoints",
    "n_evals": "n_evals",
    "seed": "random_seed",
}
_DPO_TO_WIRE: dict[str, str] = {
    "beta": "dpo_beta",
    "rpo_alpha": "rpo_alpha",
    "simpo_gamma": "simpo_gamma",
    "normalize_logratios_by_length": "dpo_normalize_logratios_by_length",
    "reference_free": "dpo_reference_free",
}
# The project's hyperparameter names (DESIGN §2) this driver knows how to send.
HYPERPARAMETERS: tuple[str, ...] = (*_HP_TO_WIRE, "lr_scheduler", "min_lr_ratio", "num_cycles")
LORA_KEYS: tuple[str, ...] = ("r", "alpha", "dropout", "trainable_modules")
DPO_KEYS: tuple[str, ...] = tuple(_DPO_TO_WIRE)
# what POST /fine-tunes/estimate-price accepts of a create body
_ESTIMATE_KEYS = frozenset(("training_file", "validation_file", "model", "n_epochs", "n_evals"))
_ESTIMATE_KEYS |= {"training_method", "training_type", "from_checkpoint"}
_TAG_AT_END = re.compile(rf"(?:^|[^0-9a-z])({tags.PATTERN})$")
# model_output_name is "<owner>/<model>-<suffix>-<random hex>": the tag is followed by a hash
_TAG_IN_OUTPUT = re.compile(rf"(?:^|[^0-9a-z])({tags.PATTERN})(?:-[0-9a-z]{{1,16}})?$")


# ---------------------------------------------------------------- pure mapping


def phase_for(status: str) -> Phase:
    """The common phase of a Together status string; unknown strings map to UNKNOWN."""
    return STATUS_TO_PHASE.get(str(status).strip().lower(), Phase.UNKNOWN)


def compose_suffix(user_suffix: str | None, tag: str) -> str:
    """The wire ``suffix``: the tag alone, or ``<user suffix>-<tag>`` (user part ≤ 24 chars)."""
    return tag if not user_suffix else f"{user_suffix}-{tag}"


def tag_from_suffix(suffix: str | None, *, output_name: bool = False) -> str | None:
    """Our tag at the end of a ``suffix`` (or of a ``model_output_name``), else None."""
    if not isinstance(suffix, str):
        return None
    match = (_TAG_IN_OUTPUT if output_name else _TAG_AT_END).search(suffix)
    return match.group(1) if match else None


def _lr_scheduler(hp: Mapping[str, Any]) -> dict[str, Any] | None:
    kind = hp.get("lr_scheduler")
    min_lr, cycles = hp.get("min_lr_ratio"), hp.get("num_cycles")
    if kind is None:
        if min_lr is None and cycles is None:
            return None
        kind = "cosine"  # the SDK's default scheduler, which it always sends
    kind = str(kind).lower()
    # the spec requires both cosine args; fill the SDK's defaults for the ones not given
    args: dict[str, Any] = {"min_lr_ratio": 0.0 if min_lr is None else min_lr}
    if kind == "cosine":
        args["num_cycles"] = 0.5 if cycles is None else cycles
    return {"lr_scheduler_type": kind, "lr_scheduler_args": args}


def _training_method(req: CreateRequest) -> dict[str, Any]:
    if req.method == "sft":
        # the spec requires train_on_inputs; "auto" is its default and what the SDK sends
        return {"method": "sft", "train_on_inputs": "auto"}
    if req.method != "dpo":
        raise ValueError(f"together: unsupported method {req.method!r} (sft or dpo)")
    dpo = req.dpo or {}
    method: dict[str, Any] = {"method": "dpo"}
    for ours, theirs in _DPO_TO_WIRE.items():
        if dpo.get(ours) is not None:
            method[theirs] = dpo[ours]
    gamma = dpo.get("simpo_gamma")
    if isinstance(gamma, int | float) and gamma > 0:
        # SimPO is reference-free with length normalisation (the SDK forces both)
        method.setdefault("dpo_reference_free", True)
        method.setdefault("dpo_normalize_logratios_by_length", True)
    return method


def _training_type(lora: Mapping[str, Any] | bool | None) -> dict[str, Any] | None:
    if lora is False:
        return {"type": "Full"}
    if lora is None or lora is True or not lora:
        # omitted = the server's default LoRA (spec); a bare {"type": "Lora"} would break
        # the spec's LoRATrainingType, which requires lora_r and lora_alpha
        return None
    out: dict[str, Any] = {"type": "Lora"}
    r, alpha = lora.get("r"), lora.get("alpha")
    if r is not None:
        out["lora_r"] = r
        if alpha is None and isinstance(r, int):
            alpha = 2 * r  # the SDK's default; the spec requires lora_alpha with lora_r
    if alpha is not None:
        out["lora_alpha"] = alpha
    if lora.get("dropout") is not None:
        out["lora_dropout"] = lora["dropout"]
    modules = lora.get("trainable_modules")
    if modules is not None:
        # the wire field is one string; a list is sent comma-separated
        out["lora_trainable_modules"] = (
            modules if isinstance(modules, str) else ",".join(str(m) for m in modules)
        )
    return out


def create_payload(req: CreateRequest) -> dict[str, Any]:
    """The JSON body of ``POST /fine-tunes`` for a request; only keys that are set."""
    hp = req.hyperparameters
    body: dict[str, Any] = {"training_file": req.training_file_id, "model": req.model}
    if req.validation_file_id:
        body["validation_file"] = req.validation_file_id
    for ours, theirs in _HP_TO_WIRE.items():
        if hp.get(ours) is not None:
            body[theirs] = hp[ours]
    if (scheduler := _lr_scheduler(hp)) is not None:
        body["lr_scheduler"] = scheduler
    body["training_method"] = _training_method(req)
    if (training_type := _training_type(req.lora)) is not None:
        body["training_type"] = training_type
    if req.from_output:
        body["from_checkpoint"] = req.from_output
    body["suffix"] = compose_suffix(req.suffix, req.tag)
    return _merge(body, req.options)


def estimate_payload(training_file_id: str, req: CreateRequest) -> dict[str, Any]:
    """The body of ``POST /fine-tunes/estimate-price``: the create fields it accepts."""
    body = create_payload(replace(req, training_file_id=training_file_id))
    return {k: v for k, v in body.items() if k in _ESTIMATE_KEYS}


def request_problems(req: CreateRequest) -> list[str]:
    """What Together cannot express in a request (for spec validation); empty when fine."""
    problems: list[str] = []
    if req.method not in ("sft", "dpo"):
        problems.append(f"method: together supports sft and dpo, not {req.method!r}")
    for key in req.hyperparameters:
        if key not in HYPERPARAMETERS:
            problems.append(f"hyperparameters.{key}: no equivalent at together")
    scheduler = req.hyperparameters.get("lr_scheduler")
    if scheduler is not None and str(scheduler).lower() not in LR_SCHEDULERS:
        problems.append(
            f"hyperparameters.lr_scheduler: must be linear or cosine, not {scheduler!r}"
        )
    if req.hyperparameters.get("num_cycles") is not None and scheduler == "linear":
        problems.append("hyperparameters.num_cycles: only applies to the cosine scheduler")
    batch = req.hyperparameters.get("batch_size")
    if (
        batch is not None
        and batch != "max"
        and (isinstance(batch, bool) or not isinstance(batch, int))
    ):
        problems.append("hyperparameters.batch_size: an integer or 'max'")
    if isinstance(req.lora, dict):
        for key in req.lora:
            if key not in LORA_KEYS:
                problems.append(f"lora.{key}: no equivalent at together")
        if req.lora and req.lora.get("r") is None:
            problems.append("lora.r: together requires the rank when LoRA settings are given")
    if req.dpo and req.method != "dpo":
        problems.append("dpo: only with method: dpo")
    for key in req.dpo or {}:
        if key not in DPO_KEYS:
            problems.append(f"dpo.{key}: no equivalent at together")
    if req.suffix is not None and len(req.suffix) > MAX_USER_SUFFIX:
        problems.append(
            f"suffix: at most {MAX_USER_SUFFIX} characters at together "
            f"(the tag is appended and the whole must stay within {MAX_SUFFIX})"
        )
    for key in RESERVED_OPTIONS:
        if key in req.options:
            problems.append(f"options.{key}: set by reconciler, use the spec field instead")
    return problems


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
