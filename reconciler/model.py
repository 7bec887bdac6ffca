"""The domain model: phases, what a provider reports, what a spec asks for, and what the
ledger knows. Values only.

Pure module: it imports nothing that does I/O (no httpx, sqlite, structlog, watchfiles),
so the planner, the fingerprint, the cost estimate and the catalog can all lean on it.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .spec import JobSpec


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


# -- what a provider reports --------------------------------------------------------


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
class Checkpoint:
    """A saved step of a job; ``model``, where set, is usable like a fine-tuned model."""

    id: str
    step: int | None
    model: str | None
    created_at: float | None
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RemoteEvent:
    """One line of a job's event log."""

    created_at: float | None
    level: str
    message: str


# -- what a spec asks for -----------------------------------------------------------


@dataclass(frozen=True)
class CreateRequest:
    """Everything a driver needs to create one job; built from a spec by ``create_request``.

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
    from_step: int | None = None  # `from: {job: X, step: N}`: that saved step, not the end
    train_on_inputs: bool | str | None = None  # sft: True, False or "auto"
    train_vision: bool | None = None
    # keys of the spec's blocks; a secret in them is an {env: NAME} mapping until
    # envrefs.resolve_request, at the moment of the call
    wandb: dict[str, Any] | None = None  # project, name, entity, base_url, api_key
    huggingface: dict[str, Any] | None = None  # model, revision, output_repo, token


# the tag a request carries where only its shape matters (validation, price estimates)
PLACEHOLDER_TAG = "rc0000-00000000000"


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
        from_step=spec.from_.step if spec.from_ else None,
        train_on_inputs=spec.train_on_inputs,
        train_vision=spec.train_vision,
        wandb=spec.wandb.model_dump(exclude_none=True) if spec.wandb else None,
        huggingface=spec.huggingface.model_dump(exclude_none=True) if spec.huggingface else None,
    )


def unexpressed(
    req: CreateRequest, provider: str, wandb_fields: tuple[str, ...], wandb_needs: tuple[str, ...]
) -> list[str]:
    """``field: message`` for what ``req`` sets that a provider's create cannot say: W&B
    settings outside ``wandb_fields`` or missing from ``wandb_needs``, and the keys only
    Together's create takes (how a job starts, what it trains on)."""
    wandb = req.wandb or {}
    out = [f"wandb.{k}: no equivalent at {provider}" for k in wandb if k not in wandb_fields]
    out += [f"wandb.{k}: required at {provider}" for k in wandb_needs if wandb and k not in wandb]
    if wandb and "integrations" in req.options:
        out.append("options.integrations: use the spec key wandb instead")
    start: dict[str, Any] = {"from.step": req.from_step, "huggingface": req.huggingface}
    start |= {"train_on_inputs": req.train_on_inputs, "train_vision": req.train_vision}
    return out + [f"{k}: no equivalent at {provider}" for k, v in start.items() if v is not None]


def model_on_disk(model: str, spec_file: str | Path) -> Path | None:
    """A ``model:`` written as a path (``./``, ``../``, ``/`` or ``~``) as an absolute
    path, a relative one against the spec file's folder, as data files are; None for a
    model id (``Qwen/Qwen2.5-0.5B``). The spec keeps what was written (the fingerprint
    does not depend on where the checkout is)."""
    if not model.startswith(("./", "../", "/", "~")):
        return None
    path = Path(model).expanduser()
    return Path(os.path.normpath(path if path.is_absolute() else Path(spec_file).parent / path))


def upload_filename(sha256: str, path: Path) -> str:
    """The name we upload a data file under: content hash first, so a crash is resolvable."""
    return f"rc-{sha256[:16]}-{path.name}"


@dataclass(frozen=True)
class DesiredJob:
    """A valid spec with its data files hashed: what the planner compares with the ledger."""

    name: str
    spec: JobSpec
    file: str
    training_sha256: str
    validation_sha256: str | None = None
    training_path: Path | None = None
    validation_path: Path | None = None
    estimated_cost_usd: float | None = None
    estimate_basis: str | None = None
    previous_names: tuple[str, ...] = ()  # metadata.previous_names: a rename keeps the job


# -- what the ledger knows ----------------------------------------------------------


@dataclass(frozen=True)
class AttemptView:
    """What the ledger knows of one attempt (refreshed from the provider when online)."""

    id: int
    name: str
    attempt: int
    fingerprint: str
    tag: str
    provider: str
    inputs: dict[str, Any]
    phase: Phase
    remote_id: str | None = None
    status: str | None = None
    error: str | None = None
    error_retryable: bool = False
    cancel_requested: bool = False
    paused: bool = False  # paused by reconciler for `suspend: true`
    on_delete: str = "cancel"
    posted: bool = False  # the create POST may have been sent (intent needs a look-up)
    created_at: float = 0.0
    finished_at: float | None = None
    fine_tuned_model: str | None = None
    progress: str | None = None
    git_commit: str | None = None  # the commit the spec came from (provenance)
    spec_path: str | None = None
    misses: int = 0  # looks in a row that found no job (evidence, before absence is concluded)
    first_miss_at: float | None = None


@dataclass(frozen=True)
class SpecRecord:
    """A spec name's live attempts (oldest first, the last is current)."""

    name: str
    attempts: tuple[AttemptView, ...]
    next_attempt: int  # one above every attempt number ever used, forgotten ones included

    @property
    def current(self) -> AttemptView | None:
        return self.attempts[-1] if self.attempts else None


Records = Mapping[str, SpecRecord]


@dataclass(frozen=True)
class LedgerView:
    """One consistent read of the ledger: the records, and what they were read at."""

    records: Mapping[str, SpecRecord] = field(default_factory=dict)
    lineage: str = ""  # fixed when the ledger is born ("" for a ledger not created yet)
    serial: int = 0  # bumped by every write

    def attempts(self) -> list[AttemptView]:
        return [a for r in self.records.values() for a in r.attempts]

    def with_records(self, records: Mapping[str, SpecRecord]) -> LedgerView:
        return LedgerView(records, self.lineage, self.serial)
