"""OpenAI's wire format (providers.md §2), pure: request payloads, status mapping, the
tag in ``metadata``, events and checkpoints. No I/O.

Hosts that speak the same API with other rules (Azure OpenAI, Nebius) pass their own
``Host``: which statuses, hyperparameters, methods and suffix length they have, and
whether the tag can ride in ``metadata`` (listed by a filter) or must end the suffix.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ... import tags
from ...model import Checkpoint, CreateRequest, Phase, RemoteEvent, RemoteFile, RemoteJob
from ...model import unexpressed as _unexpressed
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
_WANDB = ("project", "name", "entity")  # integrations[].wandb; no key, no base URL
TAG_SEPARATOR_LENGTH = tags.LENGTH + 1  # "<user suffix>-<tag>" where the suffix carries it
_TAG_AT_END = re.compile(rf"(?:^|[^0-9a-z])({tags.PATTERN})$")

_HP_TO_WIRE: dict[str, str] = {
    "epochs": "n_epochs",
    "batch_size": "batch_size",
    "learning_rate_multiplier": "learning_rate_multiplier",
}
# The project's hyperparameter names this driver can send (seed goes top-level).
HYPERPARAMETERS: tuple[str, ...] = (*_HP_TO_WIRE, "seed")
_HINTS = {
    "learning_rate": "{name} takes no absolute learning rate; "
    "use learning_rate_multiplier (a factor on its own base rate) instead",
}
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


@dataclass(frozen=True)
class Host:
    """What one host of OpenAI's fine-tuning API does its own way (data, no I/O)."""

    provider: str
    statuses: Mapping[str, Phase] = field(default_factory=lambda: dict(STATUS_TO_PHASE))
    max_suffix: int = MAX_SUFFIX  # the whole wire suffix, our tag included where it rides there
    suffix_pattern: str | None = None  # the characters a suffix may have, where narrower
    # False: the tag rides in metadata, which the list filters on; True: the suffix ends in
    # "-<tag>" (no metadata filter) and a crash is resolved by listing every job
    tag_in_suffix: bool = False
    metadata: bool = True  # the create takes a metadata map (our tag and name go there too)
    methods: tuple[str, ...] = ("sft", "dpo")
    hyperparameters: Mapping[str, str] = field(default_factory=lambda: dict(_HP_TO_WIRE))
    # what to say of an unmapped hyperparameter ("{name}": the provider)
    hints: Mapping[str, str] = field(default_factory=lambda: dict(_HINTS))
    ranges: bool = True  # OpenAI's documented epochs (1-50) and batch size (1-256) ranges
    # the host's own LoRA fields in the method's hyperparameters (Nebius); None: the host
    # decides how it trains and a spec's lora settings are refused
    lora: Callable[[CreateRequest], dict[str, Any]] | None = None
    hp_options: tuple[str, ...] = ()  # options that go into the method's hyperparameters
    problems: Callable[[CreateRequest], list[str]] | None = None  # the host's own rules
    closes: bool = False  # OpenAI's 2027 wind-down answer is recognised on a create
    pausable: bool = True  # POST …/pause and …/resume
    uploads: bool = True  # the Uploads API (parts) for files over POST /files' 512 MB
    lists_models: bool = True  # GET /models names the models a create may use (preflight)

    def phase_for(self, status: str) -> Phase:
        return self.statuses.get(str(status).strip().lower(), Phase.UNKNOWN)

    def reserved(self) -> tuple[str, ...]:
        return (*RESERVED_OPTIONS, "suffix") if self.tag_in_suffix else RESERVED_OPTIONS

    def max_user_suffix(self) -> int:
        return self.max_suffix - TAG_SEPARATOR_LENGTH if self.tag_in_suffix else self.max_suffix


OPENAI_HOST = Host(PROVIDER, closes=True)


def compose_suffix(user_suffix: str | None, tag: str) -> str:
    """The wire suffix of a host that carries the tag there: the tag, or ``<user>-<tag>``."""
    return f"{user_suffix}-{tag}" if user_suffix else tag


def tag_from_suffix(suffix: str | None) -> str | None:
    """Our tag at the end of a suffix, else None."""
    match = _TAG_AT_END.search(suffix) if isinstance(suffix, str) else None
    return match.group(1) if match else None


# ---------------------------------------------------------------- pure mapping


def phase_for(status: str, host: Host = OPENAI_HOST) -> Phase:
    """The common phase of a status string; unknown strings map to UNKNOWN."""
    return host.phase_for(status)


def _method(req: CreateRequest, override: Any, host: Host) -> dict[str, Any]:
    """``method`` with our hyperparameters under the type's key; ``options.method`` merged.

    An option naming another type (e.g. reinforcement) replaces ours rather than sitting
    beside it, and still receives the common hyperparameters it did not set itself.
    """
    if req.method not in _METHOD_TYPE or req.method not in host.methods:
        raise ValueError(f"{host.provider}: unsupported method {req.method!r}")
    kind = _METHOD_TYPE[req.method]
    if isinstance(override, Mapping) and isinstance(override.get("type"), str):
        kind = override["type"]
    hp = {
        theirs: req.hyperparameters[ours]
        for ours, theirs in host.hyperparameters.items()
        if req.hyperparameters.get(ours) is not None
    }
    if kind == "dpo" and (req.dpo or {}).get("beta") is not None:
        hp["beta"] = (req.dpo or {})["beta"]
    if host.lora is not None:
        hp.update(host.lora(req))
    hp.update({k: req.options[k] for k in host.hp_options if k in req.options})
    method: dict[str, Any] = {"type": kind}
    if hp:
        method[kind] = {"hyperparameters": hp}
    return _merge(method, override) if isinstance(override, Mapping) else method


def create_payload(req: CreateRequest, host: Host = OPENAI_HOST) -> dict[str, Any]:
    """The JSON body of ``POST /fine_tuning/jobs``; only keys that are set, options last."""
    # `from: {job: X}` continues from X's fine-tuned model, passed as the base model
    # (community-reported; the spec has no from_checkpoint field)
    body: dict[str, Any] = {"model": req.from_output or req.model}
    body["training_file"] = req.training_file_id
    if req.validation_file_id:
        body["validation_file"] = req.validation_file_id
    if host.tag_in_suffix:
        body["suffix"] = compose_suffix(req.suffix, req.tag)
    elif req.suffix:
        body["suffix"] = req.suffix
    if req.hyperparameters.get("seed") is not None:
        body["seed"] = req.hyperparameters["seed"]
    body["method"] = _method(req, req.options.get("method"), host)
    if req.wandb:  # the key is the one saved in the organisation's W&B settings
        run = {k: req.wandb[k] for k in _WANDB if req.wandb.get(k)}
        body["integrations"] = [{"type": "wandb", "wandb": run}]
    if host.metadata:
        body["metadata"] = {TAG_KEY: req.tag, NAME_KEY: req.name}
    skip = {"method", *host.hp_options}
    body = _merge(body, {k: v for k, v in req.options.items() if k not in skip})
    if host.metadata:
        metadata = body.get("metadata")
        # the tag is how a crash is resolved: an option may add metadata, never replace it
        extra = metadata if isinstance(metadata, Mapping) else {}
        body["metadata"] = {**extra, TAG_KEY: req.tag}
    return body


def _out_of_range(value: Any, low: int, high: int) -> bool:
    return isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high


def _metadata_problems(req: CreateRequest, host: Host) -> list[str]:
    extra = req.options.get("metadata")
    name = host.provider
    if extra is None:
        return []
    if not host.metadata:
        return [f"options.metadata: {name} jobs have no metadata"]
    if not isinstance(extra, Mapping):
        return [f"options.metadata: a map of strings at {name}"]
    problems = [
        f"options.metadata.{key}: reserved for reconciler's tag"
        for key in (TAG_KEY, NAME_KEY)
        if key in extra
    ]
    if len({*extra, TAG_KEY, NAME_KEY}) > MAX_METADATA_PAIRS:
        problems.append(
            f"options.metadata: at most {MAX_METADATA_PAIRS} pairs at {name}, "
            f"including reconciler's {TAG_KEY} and {NAME_KEY}"
        )
    for key, value in extra.items():
        if len(str(key)) > MAX_METADATA_KEY:
            problems.append(f"options.metadata.{key}: keys are at most 64 characters at {name}")
        if not isinstance(value, str):
            problems.append(f"options.metadata.{key}: values must be strings at {name}")
        elif len(value) > MAX_METADATA_VALUE:
            problems.append(f"options.metadata.{key}: values are at most 512 characters at {name}")
    return problems


def _hyperparameter_problems(req: CreateRequest, host: Host) -> list[str]:
    name, hp, problems = host.provider, req.hyperparameters, []
    for key, value in hp.items():
        if value is None or key == "seed" or key in host.hyperparameters:
            continue
        hint = host.hints.get(key)
        said = hint.format(name=name) if hint else f"no equivalent at {name}"
        problems.append(f"hyperparameters.{key}: {said}")
    epochs, batch = hp.get("epochs"), hp.get("batch_size")
    if host.ranges and epochs is not None and _out_of_range(epochs, *EPOCHS_RANGE):
        problems.append(f"hyperparameters.epochs: {name} accepts 1 to 50, not {epochs!r}")
    if batch == "max":
        problems.append(
            f"hyperparameters.batch_size: 'max' is not supported at {name}; give an integer"
            f"{' 1 to 256' if host.ranges else ''}, or leave it out for {name}'s automatic choice"
        )
    elif host.ranges and batch is not None and _out_of_range(batch, *BATCH_RANGE):
        problems.append(f"hyperparameters.batch_size: {name} accepts 1 to 256, not {batch!r}")
    multiplier = hp.get("learning_rate_multiplier")
    if multiplier is not None and not (isinstance(multiplier, int | float) and multiplier > 0):
        problems.append("hyperparameters.learning_rate_multiplier: must be a number above 0")
    return problems


def _suffix_problems(req: CreateRequest, host: Host) -> list[str]:
    name, limit = host.provider, host.max_user_suffix()
    if req.suffix is None:
        return []
    problems = []
    if len(req.suffix) > limit:
        whole = (
            f" (reconciler appends its {tags.LENGTH}-character tag and the whole must stay "
            f"within {host.max_suffix})"
            if host.tag_in_suffix
            else ""
        )
        problems.append(f"suffix: at most {limit} characters at {name}{whole}")
    if host.suffix_pattern and not re.fullmatch(host.suffix_pattern, req.suffix):
        problems.append(f"suffix: only letters, digits, '-' and '_' at {name}")
    return problems


def request_problems(req: CreateRequest, host: Host = OPENAI_HOST) -> list[str]:
    """What the host cannot express in a request (for spec validation); empty when fine."""
    name, problems = host.provider, []
    if req.method not in _METHOD_TYPE or req.method not in host.methods:
        can = " and ".join(host.methods)
        problems.append(f"method: {name} supports {can}, not {req.method!r}")
    problems += _hyperparameter_problems(req, host)
    if host.lora is None and (isinstance(req.lora, dict) or req.lora is False):
        what = "full fine-tuning (lora: false)" if req.lora is False else "LoRA settings"
        problems.append(
            f"lora: {what} cannot be chosen at {name}, which decides how it trains; "
            "remove the lora field"
        )
    if req.dpo and req.method != "dpo":
        problems.append("dpo: only with method: dpo")
    for key, value in (req.dpo or {}).items():
        if key not in DPO_KEYS and value is not None:
            problems.append(f"dpo.{key}: no equivalent at {name} (only beta)")
    beta = (req.dpo or {}).get("beta")
    if beta is not None and not (isinstance(beta, int | float) and 0 < beta <= MAX_BETA):
        problems.append(f"dpo.beta: {name} accepts a value in (0, 2], not {beta!r}")
    problems += _suffix_problems(req, host)
    for key in host.reserved():
        if key in req.options:
            problems.append(f"options.{key}: set by reconciler, use the spec field instead")
    override = req.options.get("method")
    kind = override.get("type") if isinstance(override, Mapping) else None
    if req.method == "dpo" and kind not in (None, "dpo"):
        problems.append(f"options.method.type: {kind!r} contradicts method: dpo")
    elif req.method == "sft" and kind == "dpo":
        problems.append("options.method.type: use method: dpo in the spec instead")
    if host.problems is not None:
        problems += host.problems(req)
    wandb = _unexpressed(req, name, _WANDB, ("project",))
    return problems + _metadata_problems(req, host) + wandb


def progress_from_metrics(metrics: Mapping[str, Any]) -> str | None:
    """``step 30/100`` (or ``step 30``) from a metrics event's ``data`` or a checkpoint."""
    step = _int(metrics.get("step"))
    if step is None:
        step = _int(metrics.get("step_number"))
    if step is None:
        return None
    total = _int(metrics.get("total_steps"))
    return f"step {step}/{total}" if total else f"step {step}"


def _progress(d: Mapping[str, Any], status: str, host: Host) -> str | None:
    if status == "paused":
        return "paused"
    # Nebius counts steps on the job itself
    done, total = _int(d.get("trained_steps")), _int(d.get("total_steps"))
    if done is not None and total and host.phase_for(status).active:
        return f"step {done}/{total}"
    # the documented job object carries no metrics; read them when a server embeds some
    for key, inner in (("events", "data"), ("checkpoints", "metrics")):
        items = d.get(key)
        for item in items if isinstance(items, list) else []:  # newest first, as listed
            if isinstance(item, Mapping) and isinstance(item.get(inner), Mapping):
                found = progress_from_metrics({**item, **item[inner]})
                if found:
                    return found
    finish = _number(d.get("estimated_finish"))
    if finish and host.phase_for(status).active:
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


def job_from_wire(d: Mapping[str, Any], host: Host = OPENAI_HOST) -> RemoteJob:
    """A job object as a RemoteJob; tolerant of missing and unknown fields."""
    status = str(d.get("status") or "")
    phase = host.phase_for(status)
    metadata = d.get("metadata")
    tag = _str(metadata.get(TAG_KEY)) if isinstance(metadata, Mapping) else None
    if tag is None and host.tag_in_suffix:
        # Azure echoes the suffix as user_provided_suffix, Nebius as suffix
        suffix = _str(d.get("user_provided_suffix")) or _str(d.get("suffix"))
        tag = tag_from_suffix(suffix)
    error, retryable = _error(d, status) if phase is Phase.FAILED else (None, False)
    created = _number(d.get("created_at"))
    return RemoteJob(
        id=str(d.get("id") or ""),
        phase=phase,
        status=status,
        tag=tag,
        fine_tuned_model=_str(d.get("fine_tuned_model")),
        progress=_progress(d, status.strip().lower(), host),
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


def model_problems(
    model: str, models: list[Mapping[str, Any]], host: Host = OPENAI_HOST
) -> list[str]:
    """The spec's model against ``GET /models``. That list says nothing of which models
    can be fine-tuned, so only a model the key cannot see at all is a problem."""
    if any(m.get("id") == model for m in models):
        return []
    title = "OpenAI" if host is OPENAI_HOST else host.provider
    return [f"model: {model!r} is not a model {title} lists for this key (GET /models)"]
