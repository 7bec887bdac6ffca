"""What every provider driver speaks: the ``Driver`` protocol the reconcile core calls,
and ``DriverBase``, which answers the optional capabilities a provider lacks.

Which optional calls a provider supports is data in its catalog entry
(``catalog.Capabilities``); callers read that, never probe a driver for a method.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import ConfigError, ErrorKind, ProviderError
from ..model import (
    PLACEHOLDER_TAG,
    Checkpoint,
    CreateRequest,
    DesiredJob,
    RemoteEvent,
    RemoteFile,
    RemoteJob,
    create_request,
)

if TYPE_CHECKING:
    from .http import ApiClient


class Driver(Protocol):
    """The adapter for one provider API. Every method makes real calls.

    ``create_job`` posts exactly once (no HTTP-level retry, except after a 429,
    which proves the request was refused); everything else may retry retryable
    errors with the shared backoff schedule.
    """

    provider: str
    api: ApiClient

    def upload_file(self, path: Path, sha256: str) -> RemoteFile: ...

    def find_file(self, sha256: str) -> RemoteFile | None: ...

    def create_job(self, request: CreateRequest) -> RemoteJob: ...

    def get_job(self, job_id: str) -> RemoteJob: ...

    def list_jobs(self) -> Iterator[RemoteJob]: ...

    def find_jobs_by_tag(self, tag: str) -> list[RemoteJob]: ...

    def cancel_job(self, job_id: str) -> RemoteJob: ...

    def job_events(self, job_id: str) -> list[RemoteEvent]: ...

    def job_progress(self, job_id: str) -> str | None: ...

    def checkpoints(self, job_id: str) -> list[Checkpoint]: ...

    # capabilities: only called where the catalog entry says the provider has them
    def estimate_price(self, training_file_id: str, request: CreateRequest) -> float | None: ...

    def start_if_parked(self, job: RemoteJob) -> RemoteJob: ...

    def pause_job(self, job_id: str) -> RemoteJob: ...

    def resume_job(self, job_id: str) -> RemoteJob: ...

    def preflight(self, job: DesiredJob) -> list[str]:
        """What the provider says about the spec before anything is uploaded: one line per
        problem, each naming the spec field (``model: …``, ``lora.r: …``); empty when fine.

        Reads only (the provider's model list or limits), cached per driver. A provider
        that cannot be asked raises the usual ``ProviderError`` (transport, auth, 5xx after
        retries); the caller decides what to say instead.
        """
        ...

    def close(self) -> None: ...


class DriverBase:
    """What every driver shares: its ``ApiClient``, its sleep, closing; and the optional
    calls, for a provider that lacks them, each saying so plainly."""

    provider: str

    def __init__(self, api: ApiClient, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.api = api
        self._sleep = sleep

    def close(self) -> None:
        self.api.close()

    def _error(
        self, message: str, kind: ErrorKind = ErrorKind.PERMANENT, status: int | None = None
    ) -> ProviderError:
        return ProviderError(self.provider, message, kind=kind, status=status)

    def _await_ready(
        self,
        info: Any,
        *,
        refresh: Callable[[], Any],
        state_of: Callable[[Any], str],
        what: str,
        rejected: Callable[[Any], str],
        still: Callable[[Any], str],
        timeout: float,
    ) -> Any:
        """``info`` once the provider has checked the data it describes (state ``ready``),
        asked again by ``refresh`` on one schedule: 1 s, growing by half, at most 15 s,
        counted in sleeps so a fake clock bounds it too. A rejection is permanent, running
        out of ``timeout`` retryable."""
        waited, delay = 0.0, 1.0
        while True:
            state = state_of(info)
            if state == "ready":
                return info
            if state == "failed":
                raise self._error(f"{what} was rejected: {rejected(info)}")
            if waited >= timeout:
                raise self._error(
                    f"{what} still {still(info)} after {waited:.0f} s", ErrorKind.RETRYABLE
                )
            self._sleep(delay)
            waited += delay
            delay = min(delay * 1.5, 15.0)
            info = refresh()

    def _lacks(self, what: str) -> ConfigError:
        return ConfigError(f"{self.provider} cannot {what}")

    def checkpoints(self, job_id: str) -> list[Checkpoint]:
        """A job's checkpoints, oldest first; none where the provider lists none."""
        return []

    def estimate_price(self, training_file_id: str, request: CreateRequest) -> float | None:
        raise self._lacks("estimate a job's price")

    def start_if_parked(self, job: RemoteJob) -> RemoteJob:
        raise self._lacks("start a job parked after validation")

    def pause_job(self, job_id: str) -> RemoteJob:
        raise self._lacks("pause jobs")

    def resume_job(self, job_id: str) -> RemoteJob:
        raise self._lacks("resume jobs")

    def preflight(self, job: DesiredJob) -> list[str]:
        """No online checks for this provider: no problems (see ``Driver.preflight``)."""
        return []


def preflight_request(job: DesiredJob) -> CreateRequest:
    """The create request a spec would make, with placeholder file ids (nothing uploaded)."""
    spec = job.spec
    return create_request(
        job.name,
        spec,
        tag=PLACEHOLDER_TAG,
        training_file_id="file-preflight-training",
        validation_file_id="file-preflight-validation" if spec.validation_file else None,
    )
