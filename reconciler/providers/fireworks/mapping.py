"""Fireworks AI's wire format (providers-next.md §1), pure: resource names, the job ids
derived from our tag, create payloads for SFT and DPO, state mapping, datasets. No I/O.

Fireworks lets the client name its jobs (``?supervisedFineTuningJobId=`` /
``?dpoJobId=``). Every attempt of a spec at one fingerprint shares one tag, so the job
of the n-th create under a tag is ``<tag>`` (n = 1) or ``<tag>-<n>``: the ids a tag can
have are known in advance, and a lost answer is resolved by reading them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ... import tags
from ...model import CreateRequest, Phase, RemoteEvent, RemoteJob, unexpressed
from ...redact import scrub
from ..wire import integer as _int
from ..wire import merge as _merge
from ..wire import text as _str

PROVIDER = "fireworks"
SFT = "supervisedFineTuningJobs"
DPO = "dpoJobs"
COLLECTIONS = (SFT, DPO)  # where a tag's jobs may live, in the order they are read
ID_PARAM = {SFT: "supervisedFineTuningJobId", DPO: "dpoJobId"}
LIST_KEY = {SFT: "supervisedFineTuningJobs", DPO: "dpoJobs"}
BASE_ACCOUNT = "fireworks"  # where Fireworks keeps its base models
MAX_ID = 63  # ids: 1–63 characters of a-z, 0-9 and '-', starting with a letter (§1.1)
MAX_SLOTS = 100  # creates under one tag (policy.max_attempts is at most 100)
MAX_DISPLAY = 60
SMALL_UPLOAD = 150 * 1000 * 1000  # :upload takes up to 150 MB; larger: signed URLs
MAX_LORA_RANK = 32  # "power of 2 up to 32" for managed SFT (§1.3)
DPO_BETA = 0.1  # sent when the spec gives none: the spec contradicts itself on defaults

_ID = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
_FRACTION = re.compile(r"(\.\d+)")
_TAG_ID = re.compile(rf"^({tags.PATTERN})(?:-(\d{{1,3}}))?$")

STATE_TO_PHASE: dict[str, Phase] = {
    "JOB_STATE_UNSPECIFIED": Phase.QUEUED,
    "JOB_STATE_PENDING": Phase.QUEUED,
    "JOB_STATE_CREATING": Phase.QUEUED,
    "JOB_STATE_RE_QUEUEING": Phase.QUEUED,
    "JOB_STATE_IDLE": Phase.QUEUED,
    "JOB_STATE_VALIDATING": Phase.VALIDATING,
    "JOB_STATE_CREATING_INPUT_DATASET": Phase.VALIDATING,
    "JOB_STATE_RUNNING": Phase.RUNNING,
    "JOB_STATE_WRITING_RESULTS": Phase.RUNNING,
    "JOB_STATE_PAUSED": Phase.RUNNING,  # non-terminal: account suspension, manual hold
    "JOB_STATE_CANCELLING": Phase.CANCELLING,
    "JOB_STATE_COMPLETED": Phase.SUCCEEDED,
    "JOB_STATE_EARLY_STOPPED": Phase.SUCCEEDED,  # stopped early, with a model
    "JOB_STATE_FAILED": Phase.FAILED,
    "JOB_STATE_EXPIRED": Phase.FAILED,
    "JOB_STATE_CANCELLED": Phase.CANCELLED,
    # removed outside reconciler: reported like a cancel by someone else (drift)
    "JOB_STATE_DELETING": Phase.CANCELLED,
    "JOB_STATE_DELETING_CLEANING_UP": Phase.CANCELLED,
    "JOB_STATE_DELETED": Phase.CANCELLED,
    "JOB_STATE_ARCHIVED": Phase.CANCELLED,
}
GONE = frozenset({"JOB_STATE_DELETING", "JOB_STATE_DELETING_CLEANING_UP"})
GONE |= {"JOB_STATE_DELETED", "JOB_STATE_ARCHIVED"}
# google.rpc codes of a failure worth another attempt (the platform's side)
RETRYABLE_CODES = frozenset(
    {"UNKNOWN", "INTERNAL", "UNAVAILABLE", "DEADLINE_EXCEEDED", "ABORTED", "RESOURCE_EXHAUSTED"}
)

# the project's hyperparameters → the SFT job's fields (DPO: inside trainingConfig)
_HP_TO_WIRE: dict[str, str] = {
    "epochs": "epochs",
    "learning_rate": "learningRate",
    "batch_size": "batchSizeSamples",
    "max_seq_length": "maxContextLength",
    "weight_decay": "optimizerWeightDecay",
}
HYPERPARAMETERS: tuple[str, ...] = (*_HP_TO_WIRE, "lr_scheduler", "min_lr_ratio")
LR_SCHEDULERS = ("linear", "cosine")
SFT_LORA_KEYS = ("r",)  # SFT has no alpha, dropout or target modules (§1.3)
DPO_LORA_KEYS = ("r", "alpha", "dropout", "trainable_modules")
DPO_KEYS = ("beta",)
# body fields reconciler sets itself: an option must not move them
RESERVED_OPTIONS: tuple[str, ...] = (
    "dataset",
    "baseModel",
    "warmStartFrom",
    "outputModel",
    "evaluationDataset",
    "trainingConfig.baseModel",
    "trainingConfig.outputModel",
)


# ---------------------------------------------------------------- names and ids


def collection_for(method: str) -> str:
    if method == "sft":
        return SFT
    if method == "dpo":
        return DPO
    raise ValueError(f"fireworks: unsupported method {method!r} (sft or dpo)")


def is_id(text: str) -> bool:
    """A valid Fireworks resource id (§1.1)."""
    return bool(_ID.match(text))


def job_id_for(tag: str, slot: int = 1) -> str:
    """The client-chosen id of the ``slot``-th create under ``tag``: deterministic."""
    if not tags.is_tag(tag):
        raise ValueError(f"fireworks: {tag!r} is not a reconciler tag")
    if not 1 <= slot <= MAX_SLOTS:
        raise ValueError(f"fireworks: slot {slot} out of 1..{MAX_SLOTS}")
    job_id = tag if slot == 1 else f"{tag}-{slot}"
    assert is_id(job_id), job_id  # a tag is lower-case letters, digits and '-'
    return job_id


def tag_of_id(job_id: str | None) -> tuple[str, int] | None:
    """(tag, slot) from a job id (or full name) that ``job_id_for`` made, else None."""
    if not job_id:
        return None
    match = _TAG_ID.match(job_id.rsplit("/", 1)[-1])
    if match is None:
        return None
    slot = int(match.group(2)) if match.group(2) else 1
    return (match.group(1), slot) if 2 <= slot <= MAX_SLOTS or not match.group(2) else None


def dataset_id_for(sha256: str) -> str:
    """The dataset of a content: its id is the content hash (starting with a letter)."""
    return f"rc-{sha256[:32].lower()}"


def job_name(account: str, collection: str, job_id: str) -> str:
    return f"accounts/{account}/{collection}/{job_id}"


def dataset_name(account: str, dataset_id: str) -> str:
    return f"accounts/{account}/datasets/{dataset_id}"


def model_name(model: str, account: str = BASE_ACCOUNT) -> str:
    """A model's full name: ``qwen3-8b`` → ``accounts/fireworks/models/qwen3-8b``."""
    return model if model.startswith("accounts/") else f"accounts/{account}/models/{model}"


def job_path(name: str, account: str) -> str:
    """The path (under ``/v1/``) of a job given its full name or a bare SFT job id."""
    return name if name.startswith("accounts/") else job_name(account, SFT, name)


# ---------------------------------------------------------------- create


def _display_name(req: CreateRequest) -> str:
    room = MAX_DISPLAY - 1 - len(req.tag)
    return f"{(req.suffix or req.name)[:room]}-{req.tag}"


def _lr_scheduler(hp: Mapping[str, Any]) -> dict[str, Any] | None:
    kind, min_lr = hp.get("lr_scheduler"), hp.get("min_lr_ratio")
    if kind is None and min_lr is None:
        return None
    args = {"minLrRatio": min_lr} if min_lr is not None else {}
    return {str(kind or "cosine").lower(): args}


def _training_fields(req: CreateRequest, job_id: str) -> dict[str, Any]:
    """What SFT sets at the top of its body and DPO inside ``trainingConfig``."""
    hp = req.hyperparameters
    out: dict[str, Any] = {}
    if req.from_output:
        out["warmStartFrom"] = req.from_output
    else:
        out["baseModel"] = model_name(req.model)
    out["outputModel"] = job_id
    for ours, theirs in _HP_TO_WIRE.items():
        if hp.get(ours) is not None:
            out[theirs] = hp[ours]
    if isinstance(req.lora, dict) and req.lora.get("r") is not None:
        out["loraRank"] = req.lora["r"]
    return out


def create_payload(req: CreateRequest, job_id: str) -> dict[str, Any]:
    """The JSON body of ``POST …/supervisedFineTuningJobs`` or ``…/dpoJobs`` (§1.3, §1.7)."""
    collection = collection_for(req.method)
    training = _training_fields(req, job_id)
    body: dict[str, Any] = {"dataset": req.training_file_id, "displayName": _display_name(req)}
    if collection == SFT:
        body.update(training)
        if req.validation_file_id:
            body["evaluationDataset"] = req.validation_file_id
        if (scheduler := _lr_scheduler(req.hyperparameters)) is not None:
            body["lrScheduler"] = scheduler  # v5.10.0 field, absent from the 4.259.0 document
    else:
        lora = req.lora if isinstance(req.lora, dict) else {}
        if isinstance(lora.get("alpha"), int | float):
            training["loraAlpha"] = int(lora["alpha"])  # an int32 on the wire
        if lora.get("dropout") is not None:
            training["loraDropout"] = lora["dropout"]
        modules = lora.get("trainable_modules")
        if isinstance(modules, str) and modules != "all-linear":
            training["loraTargetModules"] = [m.strip() for m in modules.split(",") if m.strip()]
        body["trainingConfig"] = training
        beta = (req.dpo or {}).get("beta")
        body["lossConfig"] = {"method": "DPO", "dpo": {"beta": DPO_BETA if beta is None else beta}}
    if req.wandb:  # gatewayWandbConfig; the key is resolved from the environment by now
        theirs = {"project": "project", "entity": "entity", "name": "runId", "api_key": "apiKey"}
        body["wandbConfig"] = {"enabled": True} | {
            theirs[k]: v for k, v in req.wandb.items() if k in theirs
        }
    return _merge(body, req.options)


def estimate_payload(training_file_id: str, req: CreateRequest) -> dict[str, Any]:
    """The body of ``:estimateCost``: the SFT create body with the dataset given."""
    body = create_payload(req, job_id_for(req.tag) if tags.is_tag(req.tag) else "estimate")
    body["dataset"] = training_file_id
    body.pop("wandbConfig", None)  # reporting is not priced, and its key is not sent twice
    return body


def request_problems(req: CreateRequest) -> list[str]:
    """What Fireworks cannot express in a request (for spec validation); empty when fine."""
    problems: list[str] = []
    if req.method not in ("sft", "dpo"):
        problems.append(f"method: fireworks supports sft and dpo, not {req.method!r}")
    for key in req.hyperparameters:
        if key not in HYPERPARAMETERS:
            why = " (it takes learning_rate)" if key == "learning_rate_multiplier" else ""
            problems.append(f"hyperparameters.{key}: no equivalent at fireworks{why}")
    hp = req.hyperparameters
    if req.method == "dpo":
        for key in ("lr_scheduler", "min_lr_ratio"):
            if hp.get(key) is not None:
                problems.append(f"hyperparameters.{key}: fireworks DPO jobs take no scheduler")
    batch = hp.get("batch_size")
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int)):
        problems.append("hyperparameters.batch_size: an integer (samples per step) at fireworks")
    if req.lora is False:
        problems.append("lora: fireworks trains LoRA adapters only (no full fine-tune)")
    elif isinstance(req.lora, dict):
        allowed = SFT_LORA_KEYS if req.method == "sft" else DPO_LORA_KEYS
        for key in req.lora:
            if key not in allowed:
                problems.append(f"lora.{key}: no equivalent at fireworks for {req.method}")
        r = req.lora.get("r")
        if isinstance(r, int) and (r > MAX_LORA_RANK or r & (r - 1)):
            problems.append(f"lora.r: a power of 2 up to {MAX_LORA_RANK} at fireworks")
        alpha = req.lora.get("alpha")
        if req.method == "dpo" and isinstance(alpha, float) and not alpha.is_integer():
            problems.append("lora.alpha: a whole number at fireworks")
    if req.dpo and req.method != "dpo":
        problems.append("dpo: only with method: dpo")
    for key in req.dpo or {}:
        if key not in DPO_KEYS:
            problems.append(f"dpo.{key}: no equivalent at fireworks")
    if req.method == "dpo" and req.validation_file_id:
        problems.append("validation_file: fireworks DPO jobs take no evaluation dataset")
    for key in RESERVED_OPTIONS:
        head, _, sub = key.partition(".")
        holder = req.options.get(head)
        if (sub and isinstance(holder, Mapping) and sub in holder) or (not sub and holder):
            problems.append(f"options.{key}: set by reconciler, use the spec field instead")
    for key in ("supervisedFineTuningJobId", "dpoJobId"):
        if key in req.options:
            problems.append(f"options.{key}: the job id is derived from the tag")
    # W&B as gatewayWandbConfig (no base URL); the Together-only keys have no equivalent
    problems += unexpressed(req, "fireworks", ("project", "name", "entity", "api_key"), ())
    if req.wandb and "wandbConfig" in req.options:
        problems.append("options.wandbConfig: use the spec key wandb instead")
    return problems


# ---------------------------------------------------------------- answers


def phase_for(state: str) -> Phase:
    """The common phase of a ``JOB_STATE_*`` string; unknown states map to UNKNOWN."""
    return STATE_TO_PHASE.get(str(state).strip().upper(), Phase.UNKNOWN)


def _status(d: Mapping[str, Any]) -> tuple[str | None, str | None]:
    status = d.get("status")
    if not isinstance(status, Mapping):
        return None, None
    return _str(status.get("code")), _str(status.get("message"))


def _progress(d: Mapping[str, Any], epochs: int | None) -> str | None:
    progress = d.get("jobProgress")
    if not isinstance(progress, Mapping):
        return None
    percent, epoch = _int(progress.get("percent")), _int(progress.get("epoch"))
    if percent is None:
        return None
    if epoch is not None and epochs:
        return f"epoch {min(epoch + 1, epochs)}/{epochs}, {percent}%"  # epoch counts from 0
    return f"{percent}%"


def timestamp(value: Any) -> float | None:
    """Unix seconds from an RFC 3339 ``createTime`` (nanoseconds allowed); None otherwise."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = _FRACTION.sub(lambda m: m.group(1)[:7], value.strip().replace("Z", "+00:00"))
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def money(value: Any) -> float | None:
    """US dollars from a ``typeMoney`` (``units`` is an int64 string); None otherwise."""
    if not isinstance(value, Mapping) or str(value.get("currencyCode") or "USD") != "USD":
        return None
    try:
        units = int(str(value.get("units") or 0))
    except ValueError:
        return None
    nanos = _int(value.get("nanos")) or 0
    return units + nanos / 1e9


def job_from_wire(d: Mapping[str, Any]) -> RemoteJob:
    """A Fireworks SFT or DPO job object as a RemoteJob; tolerant of any field."""
    name = _str(d.get("name")) or ""
    state = str(d.get("state") or "JOB_STATE_UNSPECIFIED")
    phase = phase_for(state)
    config = d.get("trainingConfig")
    training: Mapping[str, Any] = config if isinstance(config, Mapping) else d
    account = name.split("/")[1] if name.startswith("accounts/") and name.count("/") >= 3 else ""
    output = _str(training.get("outputModel")) or (name.rsplit("/", 1)[-1] or None)
    model = model_name(output, account) if output and account else output
    code, message = _status(d)
    tagged = tag_of_id(name)
    failed = phase is Phase.FAILED
    if state in GONE:
        error: str | None = f"job was deleted outside reconciler ({state})"
    elif failed:
        error = scrub(message or f"job ended with state {state}")
    else:
        error = None
    return RemoteJob(
        id=name,
        phase=phase,
        status=state,
        tag=tagged[0] if tagged else None,
        fine_tuned_model=model if phase is Phase.SUCCEEDED else None,
        progress=_progress(d, _int(training.get("epochs"))),
        error=error,
        error_retryable=failed and (state == "JOB_STATE_EXPIRED" or code in RETRYABLE_CODES),
        created_at=timestamp(d.get("createTime")),
        cost_usd=money(d.get("estimatedCost")),
    )


def events_from_job(d: Mapping[str, Any]) -> list[RemoteEvent]:
    """Fireworks has no event log: the job's own milestones stand in for one."""
    job = job_from_wire(d)
    out = [RemoteEvent(timestamp(d.get("createTime")), "info", f"job {job.id} created")]
    if job.progress:
        out.append(RemoteEvent(timestamp(d.get("updateTime")), "info", f"progress {job.progress}"))
    when = timestamp(d.get("completedTime")) or timestamp(d.get("updateTime"))
    if job.phase.terminal:
        level = "error" if job.phase is Phase.FAILED else "info"
        text = f"{job.status}: {job.error}" if job.error else job.status
        if job.fine_tuned_model:
            text += f" → {job.fine_tuned_model}"
        out.append(RemoteEvent(when, level, text))
    elif job.phase is not Phase.QUEUED:
        out.append(RemoteEvent(timestamp(d.get("updateTime")), "info", job.status))
    return out


def dataset_format(first_line: Mapping[str, Any]) -> str | None:
    """The ``format`` a dataset is created with, from its first record."""
    if "messages" in first_line:
        return "CHAT"
    if "prompt" in first_line and "completion" in first_line:
        return "COMPLETION"
    return None  # preference data: left FORMAT_UNSPECIFIED


def dataset_state(d: Mapping[str, Any]) -> str:
    """``ready``, ``failed`` or ``pending`` for a Fireworks dataset."""
    code, _ = _status(d)
    if code not in (None, "OK"):
        return "failed"
    return "ready" if str(d.get("state") or "").upper() == "READY" else "pending"


def dataset_error(d: Mapping[str, Any]) -> str:
    code, message = _status(d)
    return scrub(message or f"dataset status {code}")
