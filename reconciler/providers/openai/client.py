"""OpenAI's driver (providers.md §2): a thin client over ``ApiClient``. Our tag rides in
the job's ``metadata``, which the list endpoint filters on server-side, so a crash is
resolved with one call; files over 512 MB go through the Uploads API.

Other hosts of the same API subclass it with their own ``host`` (``mapping.Host``):
where the list cannot filter on metadata the tag ends the suffix and a crash is
resolved by listing every job.
"""

from __future__ import annotations

import contextlib
import hashlib
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
    RemoteEvent,
    RemoteFile,
    RemoteJob,
    upload_filename,
)
from ..base import DriverBase, preflight_request
from ..http import ApiClient, classify, error_message
from ..wire import MAX_PAGES
from ..wire import items as _items
from ..wire import number as _number
from ..wire import text as _str
from .mapping import (
    CLOSED_MESSAGE,
    CLOSED_PATTERN,
    OPENAI_HOST,
    PROVIDER,
    TAG_KEY,
    Host,
    checkpoint_from_wire,
    create_payload,
    event_from_wire,
    job_from_wire,
    model_problems,
    progress_from_metrics,
    remote_file,
)


class OpenAIDriver(DriverBase):
    """The Driver for OpenAI over an ``ApiClient`` whose base URL ends in ``/v1/``."""

    provider = PROVIDER
    host: Host = OPENAI_HOST

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
        super().__init__(api, sleep=sleep)
        self.page_size = page_size
        self.files_page_size = files_page_size
        self.upload_threshold = upload_threshold  # POST /files takes at most 512 MB
        self.part_size = part_size  # an Uploads part holds at most 64 MB
        self._models: list[Mapping[str, Any]] | None = None  # GET /models, read once

    def _pages(
        self, path: str, params: Mapping[str, Any], limit: int
    ) -> Iterator[Mapping[str, Any]]:
        """Items of a cursor-paginated list (``after`` = last id seen), fetched lazily."""
        after: str | None = None
        for _ in range(MAX_PAGES):
            query = {**params, "limit": limit, **({"after": after} if after else {})}
            body = self.api.json("GET", path, params=query)
            items = _items(body)
            yield from items
            last = _str(items[-1].get("id")) if items else None
            more = isinstance(body, Mapping) and body.get("has_more") is True
            if not more or not last or last == after:  # a repeated cursor would loop forever
                return
            after = last
        raise self._fail(f"GET {path} still had more after {MAX_PAGES} pages; stopped")

    # files

    def find_file(self, sha256: str) -> RemoteFile | None:
        """A file we uploaded earlier with this content (by the name's hash prefix)."""
        prefix = f"rc-{sha256[:16]}-"
        for item in self._pages("files", {"purpose": "fine-tune"}, self.files_page_size):
            name = _str(item.get("filename")) or ""
            # status is deprecated, but "error" still says the file is unusable
            if name.startswith(prefix) and item.get("id") and item.get("status") != "error":
                return remote_file(item, name)
        return None

    def upload_file(self, path: Path, sha256: str) -> RemoteFile:
        """``POST /files`` up to the threshold, the Uploads API above it. No processing wait."""
        name = upload_filename(sha256, path)
        size = path.stat().st_size
        if size > self.upload_threshold and self.host.uploads:
            return self._upload_in_parts(path, name, size)
        with path.open("rb") as fh:
            # OpenAI keeps every upload, duplicates included: posted once (a 429 alone is
            # re-posted); a lost answer is resolved by looking the name up, never by posting
            body = self.api.json(
                "POST",
                "files",
                files={"file": (name, fh, "application/jsonl")},
                data={"purpose": "fine-tune"},
                create=True,
            )
        if not isinstance(body, Mapping) or not body.get("id"):
            raise self._fail(f"upload of {name} answered without a file id", ErrorKind.RETRYABLE)
        return remote_file(body, name)

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
            return remote_file(file, name)
        except BaseException:
            # an abandoned upload would linger for an hour; the next pass starts afresh
            with contextlib.suppress(ProviderError):
                self.api.request("POST", f"uploads/{upload_id}/cancel", retry=False)
            raise

    # jobs

    def _create_target(self, payload: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
        """Where a create is posted: the path (or URL) and any query parameters."""
        return "fine_tuning/jobs", {}

    def create_job(self, request: CreateRequest) -> RemoteJob:
        """Post once (DESIGN §4): only a 429 is re-posted; anything ambiguous raises."""
        payload = create_payload(request, self.host)
        path, params = self._create_target(payload)
        response = self.api.request(
            "POST", path, json=payload, params=params, create=True, ok=(400, 403)
        )
        if response.status_code in (400, 403):
            self.api.errors += 1
            said = error_message(response)
            if self.host.closes and CLOSED_PATTERN.search(said):
                raise ProviderError(
                    self.provider,
                    f"{CLOSED_MESSAGE} (OpenAI said: {said})",
                    kind=ErrorKind.PERMANENT,
                    status=response.status_code,
                )
            raise classify(self.provider, response)
        try:
            body = response.json()
        except ValueError:
            body = None
        job = job_from_wire(body if isinstance(body, Mapping) else {}, self.host)
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
            yield job_from_wire(item, self.host)

    def find_jobs_by_tag(self, tag: str) -> list[RemoteJob]:
        """Jobs carrying our tag: the server filters on metadata, so normally one call;
        a host without that filter is listed whole and matched on the suffix."""
        if self.host.tag_in_suffix:
            return [job for job in self.list_jobs() if job.tag == tag]
        items = self._pages("fine_tuning/jobs", {f"metadata[{TAG_KEY}]": tag}, self.page_size)
        # filtered again here, in case a server ignores the metadata filter
        return [job for job in (job_from_wire(i, self.host) for i in items) if job.tag == tag]

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
        if not self.host.pausable:
            raise self._lacks("pause jobs")
        return self._job("POST", f"fine_tuning/jobs/{job_id}/pause")

    def resume_job(self, job_id: str) -> RemoteJob:
        if not self.host.pausable:
            raise self._lacks("resume jobs")
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

    def preflight(self, job: DesiredJob) -> list[str]:
        """The spec's model against the models this key sees (see ``Driver.preflight``)."""
        if not self.host.lists_models:
            return []
        if self._models is None:
            self._models = _items(self.api.json("GET", "models"))
        return model_problems(preflight_request(job).model, self._models, self.host)

    def checkpoints(self, job_id: str) -> list[Checkpoint]:
        """The job's checkpoints, by step ascending."""
        items = self._pages(f"fine_tuning/jobs/{job_id}/checkpoints", {}, self.page_size)
        found = [checkpoint_from_wire(item) for item in items]
        return sorted(found, key=lambda c: (c.step is None, c.step or 0))

    def _job(self, method: str, path: str) -> RemoteJob:
        body = self.api.json(method, path)
        return job_from_wire(body if isinstance(body, Mapping) else {}, self.host)

    def _fail(self, message: str, kind: ErrorKind = ErrorKind.PERMANENT) -> ProviderError:
        return ProviderError(self.provider, message, kind=kind)
