"""An in-memory provider that implements the ``Driver`` protocol, with failure injection.

It keeps the provider's truth (files, jobs, tags) apart from the reconciler, so a test
can kill the reconciler at any step and then ask what really exists.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from reconciler.errors import ErrorKind, ProviderError
from reconciler.model import (
    CreateRequest,
    Phase,
    RemoteEvent,
    RemoteFile,
    RemoteJob,
    upload_filename,
)


class Crash(BaseException):
    """The process dies here (BaseException: no ``except Exception`` catches it)."""


@dataclass
class FakeProvider:
    """The provider's side: survives the reconciler's crashes."""

    name: str = "together"
    files: dict[str, RemoteFile] = field(default_factory=dict)  # id → file
    jobs: dict[str, RemoteJob] = field(default_factory=dict)
    requests: dict[str, CreateRequest] = field(default_factory=dict)
    list_lag: set[str] = field(default_factory=set)  # job ids hidden from list()
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    clock: float = 1_000.0

    def jobs_with_tag(self, tag: str) -> list[RemoteJob]:
        return [j for j in self.jobs.values() if j.tag == tag]

    def set_phase(self, job_id: str, phase: Phase, **over: Any) -> None:
        status = {Phase.SUCCEEDED: "completed", Phase.FAILED: "error"}.get(phase, phase.value)
        self.jobs[job_id] = replace(self.jobs[job_id], phase=phase, status=status, **over)

    def finish_all(self) -> None:
        for job_id, job in list(self.jobs.items()):
            if job.phase.active:
                self.set_phase(job_id, Phase.SUCCEEDED, fine_tuned_model=f"acct/{job_id}-model")


Hook = Callable[[str, str], None]  # (method, moment "before"/"after") → may raise


class FakeApi:
    """What the core reads of a driver's client: the provider's clock (a fake has none)."""

    server_time: float | None = None

    def counts(self) -> tuple[int, int]:
        return 0, 0


class FakeDriver:
    """The reconciler's side: a driver talking to a ``FakeProvider``."""

    def __init__(self, provider: FakeProvider, hook: Hook | None = None) -> None:
        self.provider = provider.name
        self.api = FakeApi()
        self.world = provider
        self.hook = hook or (lambda method, moment: None)
        self.calls: list[str] = []

    def _call(self, method: str) -> None:
        self.calls.append(method)
        self.hook(method, "before")

    def upload_file(self, path: Path, sha256: str) -> RemoteFile:
        self._call("upload_file")
        name = upload_filename(sha256, path)
        existing = next((f for f in self.world.files.values() if f.filename == name), None)
        f = existing or RemoteFile(f"file-{next(self.world.ids)}", name, path.stat().st_size)
        self.world.files[f.id] = f
        self.hook("upload_file", "after")
        return f

    def find_file(self, sha256: str) -> RemoteFile | None:
        self._call("find_file")
        prefix = f"rc-{sha256[:16]}-"
        return next((f for f in self.world.files.values() if f.filename.startswith(prefix)), None)

    def create_job(self, request: CreateRequest) -> RemoteJob:
        self._call("create_job")
        job_id = f"ft-{next(self.world.ids)}"
        self.world.clock += 1
        job = RemoteJob(
            job_id, Phase.QUEUED, "pending", tag=request.tag, created_at=self.world.clock
        )
        self.world.jobs[job_id] = job
        self.world.requests[job_id] = request
        self.hook("create_job", "after")  # the job exists; the answer may still be lost
        return job

    def get_job(self, job_id: str) -> RemoteJob:
        self._call("get_job")
        if job_id not in self.world.jobs:
            raise ProviderError(self.provider, "not found", kind=ErrorKind.NOT_FOUND, status=404)
        return self.world.jobs[job_id]

    def list_jobs(self) -> Iterator[RemoteJob]:
        self._call("list_jobs")
        return iter([j for j in self.world.jobs.values() if j.id not in self.world.list_lag])

    def find_jobs_by_tag(self, tag: str) -> list[RemoteJob]:
        return [j for j in self.list_jobs() if j.tag == tag]

    def cancel_job(self, job_id: str) -> RemoteJob:
        self._call("cancel_job")
        job = self.world.jobs[job_id]
        if job.phase.active:
            self.world.set_phase(job_id, Phase.CANCELLING)
        self.hook("cancel_job", "after")
        return self.world.jobs[job_id]

    def job_events(self, job_id: str) -> list[RemoteEvent]:
        self._call("job_events")
        return [RemoteEvent(None, "info", f"{job_id} is {self.world.jobs[job_id].status}")]

    def close(self) -> None:
        pass


class FakePool:
    """Stands in for ``DriverPool``: every provider name maps to one fake driver."""

    def __init__(self, driver: FakeDriver, env: dict[str, str] | None = None) -> None:
        self.driver = driver
        self.env = env or {}

    def get(self, provider: str) -> FakeDriver:
        return self.driver

    def close(self) -> None:
        pass
