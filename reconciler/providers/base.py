"""What every provider driver speaks: the common phases, the values drivers return,
and the ``Driver`` protocol the apply loop calls.

Pure module: no httpx, no sqlite. Drivers map their wire format onto these types.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..spec import JobSpec


class Phase(enum.StrEnum):
    """A job's phase, common to all providers (DESIGN §3 columns)."""

    PENDING = "pending"  # intent written, no remote id known yet
    QUEUED = "queued"
    VALIDATING = "validating"
    RUNNING = "running"
    CANCELLING = "cancelling"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"  # a status string we do not know: treated as active, never terminal

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_PHASES

    @property
    def active(self) -> bool:
        return self in ACTIVE_PHASES


TERMINAL_PHASES = frozenset({Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELLED})
ACTIVE_PHASES = frozenset(
    {Phase.QUEUED, Phase.VALIDATING, Phase.RUNNING, Phase.CANCELLING, Phase.UNKNOWN}
)


@dataclass(frozen=True)
class RemoteFile:
    """A data file as the provider knows it."""

    id: str
    filename: str
    bytes: int | None = None


@dataclass(frozen=True)
class RemoteJob:
    """A provider's fine-tune job, mapped onto the common vocabulary."""

    id: str
    phase: Phase
    status: str  # the provider's own status string, verbatim
    tag: str | None = None  # our tag, when the job carries one we can read back
    fine_tuned_model: str | None = None
    progress: str | None = None  # human text: "step 30/100", "epoch 1/3", "45%"
    error: str | None = None
    error_retryable: bool = False  # a failure worth a new attempt (infrastructure, not data)
    trained_tokens: int | None = None
    created_at: float | None = None  # Unix seconds
    cost_usd: float | None = None  # what the provider says the job costs, when it says


@dataclass(frozen=True)
class RemoteEvent:
    """One line of a job's event log."""

    created_at: float | None
    level: str
    message: str


@dataclass(frozen=True)
class CreateRequest:
    """Everything a driver needs to create one job; built by apply from a spec.

    ``lora`` is None for the provider's default LoRA, False for a full fine-tune,
    else the spec's LoRA settings (keys r, alpha, dropout, trainable_modules).
    ``hyperparameters`` and ``dpo`` use the project's own names (DESIGN §2); the
    driver maps them. ``options`` are passed through verbatim and win on conflict.
    """

    name: str
    tag: str
    model: str
    method: str  # "sft" | "dpo"
    training_file_id: str
    validation_file_id: str | None = None
    lora: dict[str, Any] | bool | None = None
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    dpo: dict[str, Any] | None = None
    suffix: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    from_output: str | None = None  # the upstream job's result, for `from: {job: X}`


class Driver(Protocol):
    """The adapter for one provider API. Every method makes real calls.

    ``create_job`` posts exactly once (no HTTP-level retry, except after a 429,
    which proves the request was refused); everything else may retry retryable
    errors with the shared backoff schedule.
    """

    provider: str

    def upload_file(self, path: Path, sha256: str) -> RemoteFile: ...

    def find_file(self, sha256: str) -> RemoteFile | None: ...

    def create_job(self, request: CreateRequest) -> RemoteJob: ...

    def get_job(self, job_id: str) -> RemoteJob: ...

    def list_jobs(self) -> Iterator[RemoteJob]: ...

    def find_jobs_by_tag(self, tag: str) -> list[RemoteJob]: ...

    def cancel_job(self, job_id: str) -> RemoteJob: ...

    def job_events(self, job_id: str) -> list[RemoteEvent]: ...

    def job_progress(self, job_id: str) -> str | None: ...

    def close(self) -> None: ...


def upload_filename(sha256: str, path: Path) -> str:
    """The name we upload a data file under: content hash first, so a crash is resolvable."""
    return f"rc-{sha256[:16]}-{path.name}"


def create_request(
    name: str,
    spec: JobSpec,
    *,
    tag: str,
    training_file_id: str,
    validation_file_id: str | None = None,
    from_output: str | None = None,
) -> CreateRequest:
    """The create request a spec asks for, in the project's own vocabulary."""
    lora: dict[str, Any] | bool | None
    if spec.lora is True:
        lora = None
    elif spec.lora is False:
        lora = False
    else:
        lora = spec.lora.model_dump(exclude_none=True) or None
    return CreateRequest(
        name=name,
        tag=tag,
        model=spec.model,
        method=spec.method,
        training_file_id=training_file_id,
        validation_file_id=validation_file_id,
        lora=lora,
        hyperparameters=spec.hyperparameters.model_dump(exclude_none=True),
        dpo=spec.dpo.model_dump(exclude_none=True) if spec.dpo else None,
        suffix=spec.suffix,
        options=dict(spec.options),
        from_output=from_output,
    )
