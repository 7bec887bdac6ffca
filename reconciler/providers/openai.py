"""OpenAI driver (providers.md §2): pure payload and status mapping, then a thin client.

The pure half (``phase_for``, ``create_payload``, ``request_problems``, ``job_from_wire``,
``event_from_wire``) has no I/O. ``OpenAIDriver`` only sends requests through
``ApiClient`` and maps the answers. Our tag rides in the job's ``metadata``, which the
list endpoint filters on server-side, so a crash is resolved with one call.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import ErrorKind, ProviderError
from ..redact import scrub
from .base import CreateRequest, Phase, RemoteEvent, RemoteFile, RemoteJob, upload_filename
from .http import ApiClient, classify, error_message
from .wire import integer as _int
from .wire import items as _items
from .wire import merge as _merge
from .wire import number as _number
from .wire import text as _str

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
_CLOSED = re.compile(
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


@dataclass(frozen=True)
class Checkpoint:
    """A saved step of a job; ``model`` is usable for inference like a fine-tuned model."""

    id: str
    step: int | None
    model: str | None
    created_at: float | None
    metrics: dict[str, float] = field(default_factory=dict)


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


def _remote_file(d: Mapping[str, Any], name: str) -> RemoteFile:
    return RemoteFile(
        id=str(d["id"]), filename=_str(d.get("filename")) or name, bytes=_int(d.get("bytes"))
    )


# ---------------------------------------------------------------- the client


class OpenAIDriver:
    """The Driver for OpenAI over an ``ApiClient`` whose base URL ends in ``/v1/``."""

    provider = PROVIDER

    def __init__(
        self,
        api: ApiClient,
        *,
        sleep: Callable[[float], None] = time.sleep,
        page_size: int = 100,
        files_page_size: int = 10_000,
        upload_threshold: int = 512 * 1024 * 1024,
        part_size: int = 64 * 1024 * 1024,
    ) -> None:
        self.api = api
        self._sleep = sleep  # unused: OpenAI validates files inside the job, nothing to poll
        self.page_size = page_size
        self.files_page_size = files_page_size
        self.upload_threshold = upload_threshold  # POST /files takes at most 512 MB
        self.part_size = part_size  # an Uploads part holds at most 64 MB

    def _pages(
        self, path: str, params: Mapping[str, Any], limit: int
    ) -> Iterator[Mapping[str, Any]]:
        """Items of a cursor-paginated list (``after`` = last id seen), fetched lazily."""
        after: str | None = None
        while True:
            query = {**params, "limit": limit, **({"after": after} if after else {})}
            body = self.api.json("GET", path, params=query)
            items = _items(body)
            yield from items
            last = _str(items[-1].get("id")) if items else None
            more = isinstance(body, Mapping) and body.get("has_more") is True
            if not more or not last or last == after:  # a repeated cursor would loop forever
                return
            after = last

    # files

    def find_file(self, sha256: str) -> RemoteFile | None:
        """A file we uploaded earlier with this content (by the name's hash prefix)."""
        prefix = f"rc-{sha256[:16]}-"
        for item in self._pages("files", {"purpose": "fine-tune"}, self.files_page_size):
            name = _str(item.get("filename")) or ""
            # status is deprecated, but "error" still says the file is unusable
            if name.startswith(prefix) and item.get("id") and item.get("status") != "error":
                return _remote_file(item, name)
        return None

    def upload_file(self, path: Path, sha256: str) -> RemoteFile:
        """``POST /files`` up to the threshold, the Uploads API above it. No processing wait."""
        name = upload_filename(sha256, path)
        size = path.stat().st_size
        if size > self.upload_threshold:
            return self._upload_in_parts(path, name, size)
        with path.open("rb") as fh:  # httpx rewinds the handle if a retry re-sends it
            body = self.api.json(
                "POST",
                "files",
                files={"file": (name, fh, "application/jsonl")},
                data={"purpose": "fine-tune"},
            )
        if not isinstance(body, Mapping) or not body.get("id"):
            raise self._fail(f"upload of {name} answered without a file id", ErrorKind.RETRYABLE)
        return _remote_file(body, name)

    def _upload_in_parts(self, path: Path, name: str, size: int) -> RemoteFile:
        meta = {"filename": name, "purpose": "fine-tune", "bytes": size, "mime_type": "text/jsonl"}
        upload = self.api.json("POST", "uploads", json=meta)
        upload_id = _str(upload.get("id")) if isinstance(upload, Mapping) else None
        if not upload_id:
            raise self._fail(f"upload of {name}: no upload id", ErrorKind.RETRYABLE)
        try:
            part_ids: list[str] = []
            md5 = hashlib.md5(usedforsecurity=False)
            with path.open("rb") as fh:
                while chunk := fh.read(self.part_size):
                    md5.update(chunk)
                    part = self.api.json(
                        "POST", f"uploads/{upload_id}/parts", files={"data": (name, chunk)}
                    )
                    if not isinstance(part, Mapping) or not _str(part.get("id")):
                        raise self._fail(f"upload of {name}: a part got no id", ErrorKind.RETRYABLE)
                    part_ids.append(str(part["id"]))
            done = self.api.json(
                "POST",
                f"uploads/{upload_id}/complete",
                json={"part_ids": part_ids, "md5": md5.hexdigest()},
            )
            file = done.get("file") if isinstance(done, Mapping) else None
            if not isinstance(file, Mapping) or not file.get("id"):
                raise self._fail(f"upload of {name}: completed without a file", ErrorKind.RETRYABLE)
            return _remote_file(file, name)
        except BaseException:
            # an abandoned upload would linger for an hour; the next pass starts afresh
            with contextlib.suppress(ProviderError):
                self.api.request("POST", f"uploads/{upload_id}/cancel", retry=False)
            raise

    # jobs

    def create_job(self, request: CreateRequest) -> RemoteJob:
        """Post once (DESIGN §4): only a 429 is re-posted; anything ambiguous raises."""
        response = self.api.request(
            "POST", "fine_tuning/jobs", json=create_payload(request), create=True, ok=(400, 403)
        )
        if response.status_code in (400, 403):
            self.api.errors += 1
            said = error_message(response)
            if _CLOSED.search(said):
                raise ProviderError(
                    PROVIDER,
                    f"{CLOSED_MESSAGE} (OpenAI said: {said})",
                    kind=ErrorKind.PERMANENT,
                    status=response.status_code,
                )
            raise classify(PROVIDER, response)
        try:
            body = response.json()
        except ValueError:
            body = None
        job = job_from_wire(body if isinstance(body, Mapping) else {})
        if not job.id:
            # it may exist all the same: the caller resolves this by tag, never by reposting
            err = self._fail("create answered without a job id", ErrorKind.RETRYABLE)
            err.ambiguous = True
            raise err
        return job if job.tag else replace(job, tag=request.tag)

    def get_job(self, job_id: str) -> RemoteJob:
        return self._job("GET", f"fine_tuning/jobs/{job_id}")

    def list_jobs(self) -> Iterator[RemoteJob]:
        """All jobs, newest first, one page at a time as the consumer asks for them."""
        for item in self._pages("fine_tuning/jobs", {}, self.page_size):
            yield job_from_wire(item)

    def find_jobs_by_tag(self, tag: str) -> list[RemoteJob]:
        """Jobs carrying our tag: the server filters on metadata, so normally one call."""
        items = self._pages("fine_tuning/jobs", {f"metadata[{TAG_KEY}]": tag}, self.page_size)
        # filtered again here, in case a server ignores the metadata filter
        return [job for job in map(job_from_wire, items) if job.tag == tag]

    def cancel_job(self, job_id: str) -> RemoteJob:
        """Cancel (immediate at OpenAI); a job that already ended is returned as is."""
        try:
            return self._job("POST", f"fine_tuning/jobs/{job_id}/cancel")
        except ProviderError as exc:
            if exc.kind is not ErrorKind.PERMANENT:
                raise
            job = self.get_job(job_id)  # a 400 for a finished job is not a failure
            if job.phase.terminal:
                return job
            raise

    def pause_job(self, job_id: str) -> RemoteJob:
        return self._job("POST", f"fine_tuning/jobs/{job_id}/pause")

    def resume_job(self, job_id: str) -> RemoteJob:
        return self._job("POST", f"fine_tuning/jobs/{job_id}/resume")

    def job_events(self, job_id: str, *, newest: int | None = None) -> list[RemoteEvent]:
        """The job's events, oldest first (the API lists newest first); ``newest`` caps it."""
        pages = self._pages(f"fine_tuning/jobs/{job_id}/events", {}, self.page_size)
        events: list[RemoteEvent] = []
        for item in pages:
            events.append(event_from_wire(item))
            if newest is not None and len(events) >= newest:
                break
        return events[::-1]

    def job_progress(self, job_id: str) -> str | None:
        """Progress from the newest metrics event (one page of events): "step 30/100, loss 0.41"."""
        for item in self._pages(f"fine_tuning/jobs/{job_id}/events", {}, 20):
            data = item.get("data") if isinstance(item, Mapping) else None
            if isinstance(data, Mapping) and (found := progress_from_metrics(data)):
                loss = _number(data.get("train_loss"))
                return f"{found}, loss {loss:.3f}" if loss is not None else found
        return self.get_job(job_id).progress

    def checkpoints(self, job_id: str) -> list[Checkpoint]:
        """The job's checkpoints, by step ascending."""
        items = self._pages(f"fine_tuning/jobs/{job_id}/checkpoints", {}, self.page_size)
        found = [checkpoint_from_wire(item) for item in items]
        return sorted(found, key=lambda c: (c.step is None, c.step or 0))

    def close(self) -> None:
        self.api.close()

    def _job(self, method: str, path: str) -> RemoteJob:
        body = self.api.json(method, path)
        return job_from_wire(body if isinstance(body, Mapping) else {})

    def _fail(self, message: str, kind: ErrorKind = ErrorKind.PERMANENT) -> ProviderError:
        return ProviderError(self.provider, message, kind=kind)
