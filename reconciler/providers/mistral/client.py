"""Mistral's driver (providers.md §4): a thin client over ``ApiClient``.

Mistral's fine-tuning service is deprecated and its SDK dropped the jobs client after
2.5.1, so this speaks REST directly. Jobs are created parked (``auto_start: false``) so
the cost can be read at ``VALIDATED``; ``start_if_parked`` then starts them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from ...errors import ErrorKind, ProviderError
from ...model import (
    Checkpoint,
    CreateRequest,
    DesiredJob,
    Phase,
    RemoteEvent,
    RemoteFile,
    RemoteJob,
    upload_filename,
)
from ..base import DriverBase, preflight_request
from ..http import ApiClient, error_message
from ..wire import MAX_PAGES
from ..wire import integer as _int
from ..wire import items as _items
from ..wire import text as _str
from .mapping import (
    PAGE_SIZE,
    PARKED,
    PROVIDER,
    checkpoints_from_wire,
    create_payload,
    events_from_wire,
    job_from_wire,
    model_problems,
)


class MistralDriver(DriverBase):
    """The Driver for Mistral over an ``ApiClient`` whose base URL ends in ``/v1/``."""

    provider = PROVIDER

    def __init__(
        self,
        api: ApiClient,
        *,
        sleep: Callable[[float], None] = time.sleep,
        conflict_recheck: tuple[float, ...] = (1.0, 3.0),
    ) -> None:
        super().__init__(api, sleep=sleep)
        # waits before looking our tag up again after a 409: the list may lag a new job
        self.conflict_recheck = conflict_recheck
        self._models: list[Mapping[str, Any]] | None = None  # GET /v1/models, read once

    # files

    def _pages(self, path: str, params: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
        """Items of a ``page``/``page_size`` list, fetched lazily until ``total`` is reached
        (and never past ``MAX_PAGES``, whatever ``total`` says)."""
        seen, previous = 0, None
        for page in range(MAX_PAGES):
            body = self.api.json(
                "GET", path, params={**params, "page": page, "page_size": PAGE_SIZE}
            )
            items = _items(body)
            ids = [item.get("id") for item in items]
            if items and ids == previous:
                raise self._error(
                    f"GET {path} answered page {page} with the items of page {page - 1}; "
                    "stopped paging",
                    ErrorKind.RETRYABLE,
                )
            previous = ids
            yield from items
            seen += len(items)
            total = _int(body.get("total")) if isinstance(body, Mapping) else None
            # no total: a short page is the last one
            done = seen >= total if total is not None else len(items) < PAGE_SIZE
            if not items or done:
                return
        raise self._error(
            f"GET {path} still had more after {MAX_PAGES} pages of {PAGE_SIZE}; stopped",
            ErrorKind.RETRYABLE,
        )

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

    def checkpoints(self, job_id: str) -> list[Checkpoint]:
        """The detailed job's inline checkpoints, oldest first (no checkpoints endpoint)."""
        body = self.api.json("GET", f"fine_tuning/jobs/{job_id}")
        return checkpoints_from_wire(
            job_id, body.get("checkpoints") if isinstance(body, Mapping) else None
        )

    def _job(self, body: Any) -> RemoteJob:
        return job_from_wire(body if isinstance(body, Mapping) else {})

    def preflight(self, job: DesiredJob) -> list[str]:
        """The spec's model against Mistral's model cards (see ``Driver.preflight``)."""
        if self._models is None:
            self._models = _items(self.api.json("GET", "models"))
        return model_problems(preflight_request(job).model, self._models)
