"""What differs between the hosts of OpenAI's fine-tuning API the emulator serves
(OpenAI, Azure OpenAI, Nebius): URL prefixes, the key header, the job's phases and
models, the fields a create takes, metadata and its list filter, pause, the Uploads API.
Every module of this package takes a ``Host``; ``OPENAI`` is OpenAI's own."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import Response

from ..lifecycle import JobKind
from ..schema import Node, Problem
from ..wire import envelope_error
from .dialect import problem_error

Phases = tuple[tuple[str, float], ...]


def openai_kind(provider: str, *, paused: str | None = "paused") -> JobKind:
    """OpenAI's shape of a life: bad files fail the job as it would be queued, cancel is
    immediate, a paused job says ``paused`` (None: a host without pause)."""
    return JobKind(
        provider=provider,
        run_status="running",
        failed="failed",
        failed_permanent="failed",
        permanent_at="queued",
        cancelled="cancelled",
        paused=paused,
    )


def openai_model_name(model: str, suffix: str | None, digest: str) -> str:
    """``ft:<base>:<org>:<suffix>:<id>``: the name OpenAI gives the result."""
    return f"ft:{model}:personal:{suffix or ''}:{digest}"


@dataclass(frozen=True)
class Host:
    name: str  # the URL head and the store's provider column
    prefix: str  # "/openai/v1"
    kind: JobKind
    phases: Phases  # the last is the success status; "running" is the training phase
    models: tuple[str, ...]
    completion_models: tuple[str, ...] = ()  # prompt/completion data only
    rft_models: tuple[str, ...] = ()
    key_header: str | None = None  # a header holding the bare key (Azure's api-key)
    dated_prefix: str | None = None  # "/azure/openai": the ?api-version= surface
    max_suffix: int = 64
    metadata: bool = True  # jobs carry metadata (and the list filters on it)
    metadata_filter: bool = True
    pause: bool = True
    uploads: bool = True  # the Uploads API (parts)
    model_routes: bool = True
    methods: tuple[str, ...] = ("supervised", "dpo", "reinforcement")
    sft_formats: tuple[str, ...] = ("CONVERSATION",)
    leading_bom: bool = True  # reads past a UTF-8 byte-order mark at the start
    extra_hyperparameters: Node = field(default_factory=dict)  # beyond OpenAI's three
    dated_fields: Node = field(default_factory=dict)  # create fields only the dated URL takes
    extra_fields: Node = field(default_factory=dict)  # create fields beyond OpenAI's
    # the job object as the host shows it: (OpenAI's view, the stored job, steps trained)
    job_fields: Callable[[dict[str, Any], dict[str, Any], int], dict[str, Any]] | None = None
    model_name: Callable[[str, str | None, str], str] = openai_model_name
    error: Callable[..., Response] = envelope_error
    problem_error: Callable[[Problem], Response] = problem_error  # a schema problem, its words
    auth_message: str | None = None  # its 401 words, where not OpenAI's

    @property
    def HOLDABLE(self) -> tuple[str, ...]:
        return tuple(status for status, _ in self.phases[:-1])
