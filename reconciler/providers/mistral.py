"""Mistral AI driver (providers.md §4): pure payload and status mapping, then a thin client.

Mistral's fine-tuning service is deprecated and its SDK dropped the jobs client after
2.5.1, so this speaks REST directly. Jobs are created parked (``auto_start: false``) so
the cost can be read at ``VALIDATED``; ``start_if_parked`` then starts them: apply calls
it after a create and on every refresh of a job it tracks.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import ErrorKind, ProviderError
from ..redact import scrub
from .base import CreateRequest, Phase, RemoteEvent, RemoteFile, RemoteJob, upload_filename
from .http import ApiClient, error_message
from .wire import dicts as _dicts
from .wire import integer as _int
from .wire import items as _items
from .wire import merge as _merge
from .wire import number as _number
from .wire import text as _str

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

MAX_SUFFIX = 18  # JobIn.suffix maxLength; our tag "rc-" + 12 hex is 15
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
# JobIn's fields: Mistral rejects unknown body fields with 422 (providers.md §4.7), so an
# option outside these would only fail at create time; validation says so up front.
REQUEST_FIELDS = frozenset(
    {"model", "training_files", "validation_files", "suffix", "integrations", "auto_start"}
    | {"invalid_sample_skip_percentage", "job_type", "hyperparameters", "repositories"}
    | {"classifier_targets"}
)
WIRE_HYPERPARAMETERS = frozenset({*_HP_TO_WIRE.values(), "training_steps", "fim_ratio"})
_TAG = re.compile(r"^rc-[0-9a-f]{12}$")
# fine-tuned model names are "ft:[classifier:]<base>:<suffix or short id>:<date>:<hash>"
_TAG_IN_MODEL = re.compile(r"(?:^|:)(rc-[0-9a-f]{12})(?::|$)")
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
    return problems


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


# ---------------------------------------------------------------- the client


class MistralDriver:
    """The Driver for Mistral over an ``ApiClient`` whose base URL ends in ``/v1/``."""

    provider = PROVIDER

    def __init__(
        self,
        api: ApiClient,
        *,
        sleep: Callable[[float], None] = time.sleep,
        conflict_recheck: tuple[float, ...] = (1.0, 3.0),
    ) -> None:
        self.api = api
        self._sleep = sleep
        # waits before looking our tag up again after a 409: the list may lag a new job
        self.conflict_recheck = conflict_recheck

    # files

    def _pages(self, path: str, params: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
        """Items of a ``page``/``page_size`` list, fetched lazily until ``total`` is reached."""
        page, seen = 0, 0
        while True:
            body = self.api.json(
                "GET", path, params={**params, "page": page, "page_size": PAGE_SIZE}
            )
            items = _items(body)
            yield from items
            seen += len(items)
            total = _int(body.get("total")) if isinstance(body, Mapping) else None
            # no total: a short page is the last one
            done = seen >= total if total is not None else len(items) < PAGE_SIZE
            if not items or done:
                return
            page += 1

    def find_file(self, sha256: str) -> RemoteFile | None:
        """A file we uploaded earlier with this content (by the name's hash prefix)."""
        prefix = f"rc-{sha256[:16]}-"
        for item in self._pages("files", {"purpose": "fine-tune", "include_total": "true"}):
            name = _str(item.get("filename")) or ""
            if name.startswith(prefix) and item.get("id"):
                return RemoteFile(str(item["id"]), name, _int(item.get("bytes")))
        return None

    def upload_file(self, path: Path, sha256: str) -> RemoteFile:
        """Multipart upload; Mistral validates at upload, so the file is ready when it answers.

        Retries are safe: the same name and content return the existing file.
        """
        name = upload_filename(sha256, path)
        content = path.read_bytes()
        try:
            body = self.api.json(
                "POST",
                "files",
                files={"file": (name, content, "application/jsonl")},
                data={"purpose": "fine-tune"},
            )
        except ProviderError as exc:
            if exc.status != 413:
                raise
            raise self._error(
                f"{name} is larger than mistral's upload limit (512 MB): split it", status=413
            ) from exc
        if not isinstance(body, Mapping) or not body.get("id"):
            raise self._error(f"upload of {name} answered without a file id", ErrorKind.RETRYABLE)
        size = _int(body.get("bytes"))
        return RemoteFile(str(body["id"]), _str(body.get("filename")) or name, size or len(content))

    # jobs

    def create_job(self, request: CreateRequest) -> RemoteJob:
        """Post once (DESIGN §4); a 409 "similar job exists" is resolved by our tag.

        The job comes back parked or validating: ``start_if_parked`` starts it later.
        """
        response = self.api.request(
            "POST", "fine_tuning/jobs", json=create_payload(request), create=True, ok=(409,)
        )
        if response.status_code == 409:
            return self._adopt_conflict(request.tag, error_message(response))
        try:
            body = response.json()
        except ValueError:
            body = None
        job = job_from_wire(body if isinstance(body, Mapping) else {})
        if not job.id:
            # a 2xx without an id may still have created the job: resolve by looking
            raise ProviderError(
                PROVIDER,
                "create answered without a job id",
                kind=ErrorKind.RETRYABLE,
                status=response.status_code,
                ambiguous=True,
            )
        return job if job.tag else replace(job, tag=request.tag)

    def _adopt_conflict(self, tag: str, message: str) -> RemoteJob:
        """The job behind a 409 when it carries our tag (an earlier post of this very
        attempt went through); else the conflict is someone else's and permanent."""
        for delay in (0.0, *self.conflict_recheck):
            if delay:
                self._sleep(delay)
            mine = self.find_jobs_by_tag(tag)
            if mine:
                active = [j for j in mine if not j.phase.terminal]
                return (active or mine)[0]
        raise self._error(
            f"a similar job is already queued, validated or running and none carries "
            f"our tag {tag}: {message}",
            status=409,
        )

    def start_job(self, job_id: str) -> RemoteJob:
        """``POST …/start`` for a job parked at VALIDATED; returns the detailed job."""
        return self._job(self.api.json("POST", f"fine_tuning/jobs/{job_id}/start"))

    def start_if_parked(self, job: RemoteJob) -> RemoteJob:
        """Start ``job`` when it waits at VALIDATED, else return it unchanged.

        Apply calls this after a create and on each refresh (reads stay pure); check
        ``job.cost_usd`` against the budget first. A start that lost a race is fine.
        """
        if job.status.strip().upper() != PARKED:
            return job
        try:
            return self.start_job(job.id)
        except ProviderError as exc:
            if exc.kind is not ErrorKind.PERMANENT:
                raise
            now = self.get_job(job.id)  # started (or cancelled) meanwhile: not a failure
            if now.status.strip().upper() == PARKED:
                raise
            return now

    def estimate_cost(self, job_id: str) -> float | None:
        """The provider's cost estimate in US dollars, once validated (None otherwise)."""
        return self.get_job(job_id).cost_usd

    def get_job(self, job_id: str) -> RemoteJob:
        """The detailed job: events and checkpoints inline, so progress is filled in."""
        return self._job(self.api.json("GET", f"fine_tuning/jobs/{job_id}"))

    def list_jobs(self) -> Iterator[RemoteJob]:
        """All jobs, page by page as the consumer reads (list objects carry no progress)."""
        for item in self._pages("fine_tuning/jobs", {}):
            yield job_from_wire(item)

    def find_jobs_by_tag(self, tag: str) -> list[RemoteJob]:
        """One call with the server-side ``suffix`` filter, checked again client-side."""
        body = self.api.json(
            "GET", "fine_tuning/jobs", params={"suffix": tag, "page": 0, "page_size": PAGE_SIZE}
        )
        return [job for job in map(job_from_wire, _items(body)) if job.tag == tag]

    def cancel_job(self, job_id: str) -> RemoteJob:
        """Request cancellation (asynchronous: CANCELLATION_REQUESTED); an ended job is returned."""
        try:
            return self._job(self.api.json("POST", f"fine_tuning/jobs/{job_id}/cancel"))
        except ProviderError as exc:
            if exc.kind is not ErrorKind.PERMANENT:
                raise
            job = self.get_job(job_id)
            if job.phase.terminal or job.phase is Phase.CANCELLING:
                return job
            raise

    def job_progress(self, job_id: str) -> str | None:
        """Progress from the full job (list answers carry none)."""
        return self.get_job(job_id).progress

    def job_events(self, job_id: str) -> list[RemoteEvent]:
        """The detailed job's inline events, oldest first (Mistral has no events endpoint)."""
        body = self.api.json("GET", f"fine_tuning/jobs/{job_id}")
        return events_from_wire(body.get("events") if isinstance(body, Mapping) else None)

    def close(self) -> None:
        self.api.close()

    def _job(self, body: Any) -> RemoteJob:
        return job_from_wire(body if isinstance(body, Mapping) else {})

    def _error(
        self, message: str, kind: ErrorKind = ErrorKind.PERMANENT, status: int | None = None
    ) -> ProviderError:
        return ProviderError(self.provider, message, kind=kind, status=status)
