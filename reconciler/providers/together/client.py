"""Together AI's driver (providers.md §3): a thin client over ``ApiClient``. It sends
requests built by ``mapping`` and maps the answers back; the signed-URL upload with
checksum dedupe lives here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

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
from ..wire import integer as _int
from ..wire import items as _items
from ..wire import text as _str
from .mapping import (
    PROVIDER,
    checkpoints_from_wire,
    event_from_wire,
    file_error,
    file_state,
    job_from_wire,
    limit_problems,
    violations,
)
from .payload import create_payload, estimate_payload


class TogetherDriver(DriverBase):
    """The Driver for Together AI over an ``ApiClient`` whose base URL ends in ``/v1/``."""

    provider = PROVIDER

    def __init__(
        self,
        api: ApiClient,
        *,
        sleep: Callable[[float], None] = time.sleep,
        file_ready_timeout: float = 600.0,
    ) -> None:
        super().__init__(api, sleep=sleep)
        self.file_ready_timeout = file_ready_timeout
        self._limits: dict[str, Mapping[str, Any] | None] = {}  # model → limits (None: 404)

    # files

    def find_file(self, sha256: str) -> RemoteFile | None:
        """A ready file we uploaded earlier with this content (by the name's hash prefix)."""
        prefix = f"rc-{sha256[:16]}-"
        for item in _items(self.api.json("GET", "files")):
            name = _str(item.get("filename")) or ""
            # a file still processing or rejected is left to upload_file (409 → wait/raise)
            if name.startswith(prefix) and item.get("id") and file_state(item) == "ready":
                return _remote_file(item, str(item["id"]), name)
        return None

    def upload_file(self, path: Path, sha256: str) -> RemoteFile:
        """The SDK's signed-URL upload with checksum dedupe, then wait until processed.

        The bytes are read into memory, as the SDK does below its 5 GB multipart threshold.
        """
        name = upload_filename(sha256, path)
        fields = {
            "purpose": "fine-tune",
            "file_name": name,
            "file_type": "jsonl",
            "checksum": sha256,
        }
        response = self.api.request(
            "POST", "files", files={k: (None, v) for k, v in fields.items()}, ok=(302, 409)
        )
        if response.status_code == 409:
            file_id = _conflict_file_id(response)
            info = self.api.json("GET", f"files/{file_id}")
            if (
                isinstance(info, Mapping)
                and str(info.get("processing_status", "")).upper() == "PENDING"
            ):
                # an earlier upload died between its PUT and preprocess: finish it now
                body = _json_or_none(self.api.request("POST", f"files/{file_id}/preprocess"))
                info = body if isinstance(body, Mapping) and body.get("id") else info
            return self._wait_ready(info, file_id, name)
        if response.status_code != 302:
            body = _json_or_none(response)
            if isinstance(body, Mapping) and body.get("id"):  # a server that took it directly
                return self._wait_ready(body, str(body["id"]), name)
            raise self._error(f"upload of {name}: unexpected HTTP {response.status_code}")
        location = response.headers.get("location")
        file_id = response.headers.get("x-together-file-id")
        if not location or not file_id:
            raise self._error(f"upload of {name}: redirect without Location or X-Together-File-Id")
        self.api.put_signed(
            str(response.url.join(location)), path.read_bytes(), what=f"upload of {name}"
        )
        body = _json_or_none(self.api.request("POST", f"files/{file_id}/preprocess"))
        if not isinstance(body, Mapping) or not body.get("id"):
            body = self.api.json("GET", f"files/{file_id}")
        return self._wait_ready(body, file_id, name)

    def _wait_ready(self, info: Mapping[str, Any], file_id: str, name: str) -> RemoteFile:
        ready = self._await_ready(
            info,
            refresh=lambda: self.api.json("GET", f"files/{file_id}"),
            state_of=file_state,
            what=f"file {name} ({file_id})",
            rejected=file_error,
            still=lambda _: "processing",
            timeout=self.file_ready_timeout,
        )
        return _remote_file(ready, file_id, name)

    # jobs

    def create_job(self, request: CreateRequest) -> RemoteJob:
        """Post once (DESIGN §4): only a 429 is re-posted; anything ambiguous raises."""
        response = self.api.request(
            "POST", "fine-tunes", json=create_payload(request), create=True, ok=(422,)
        )
        body = _json_or_none(response)
        if response.status_code == 422:
            raise self._refused(response, body)
        if body is None:  # a 2xx we cannot read may still have created the job
            err = self._error("POST fine-tunes: answer is not JSON", ErrorKind.RETRYABLE)
            err.ambiguous = True
            raise err
        job = job_from_wire(body if isinstance(body, Mapping) else {})
        if not job.id:  # it answered 2xx: a job may well exist, so look it up by tag
            err = self._error("create answered without a job id", ErrorKind.RETRYABLE)
            err.ambiguous = True
            raise err
        return job if job.tag else replace(job, tag=request.tag)

    def get_job(self, job_id: str) -> RemoteJob:
        body = self.api.json("GET", f"fine-tunes/{job_id}")
        return job_from_wire(body if isinstance(body, Mapping) else {})

    def list_jobs(self) -> Iterator[RemoteJob]:
        """All jobs: Together answers one unpaginated list (fetched before iterating)."""
        jobs = [job_from_wire(item) for item in _items(self.api.json("GET", "fine-tunes"))]
        return iter(jobs)

    def find_jobs_by_tag(self, tag: str) -> list[RemoteJob]:
        return [job for job in self.list_jobs() if job.tag == tag]

    def cancel_job(self, job_id: str) -> RemoteJob:
        """Cancel (idempotent, so retried); a job already ending or ended is returned as is."""
        try:
            body = self.api.json("POST", f"fine-tunes/{job_id}/cancel")
        except ProviderError as exc:
            if exc.kind is not ErrorKind.PERMANENT:
                raise
            # a 400 for a job that already finished or is being cancelled is not a failure
            job = self.get_job(job_id)
            if job.phase.terminal or job.phase is Phase.CANCELLING:
                return job
            raise
        return job_from_wire(body if isinstance(body, Mapping) else {})

    def job_progress(self, job_id: str) -> str | None:
        """Progress from the full job (list answers carry none)."""
        return self.get_job(job_id).progress

    def job_events(self, job_id: str) -> list[RemoteEvent]:
        return [
            event_from_wire(e) for e in _items(self.api.json("GET", f"fine-tunes/{job_id}/events"))
        ]

    def checkpoints(self, job_id: str) -> list[Checkpoint]:
        """The job's checkpoints, oldest first, by the ids ``from_checkpoint`` takes."""
        body = self.api.json("GET", f"fine-tunes/{job_id}/checkpoints")
        return checkpoints_from_wire(job_id, _items(body))

    def estimate_price(self, training_file_id: str, req: CreateRequest) -> float | None:
        """The provider's price estimate in US dollars, or None when it gives none."""
        body = self.api.json(
            "POST", "fine-tunes/estimate-price", json=estimate_payload(training_file_id, req)
        )
        price = body.get("estimated_total_price") if isinstance(body, Mapping) else None
        return (
            float(price) if isinstance(price, int | float) and not isinstance(price, bool) else None
        )

    def preflight(self, job: DesiredJob) -> list[str]:
        """The spec against ``GET /fine-tunes/models/limits`` for its model (see
        ``Driver.preflight``); a 404 means the model is not one Together fine-tunes."""
        request = preflight_request(job)
        return limit_problems(request, self.model_limits(request.model))

    def model_limits(self, model: str) -> Mapping[str, Any] | None:
        """The limits document of ``model``, None when Together does not fine-tune it;
        asked once per model per driver."""
        if model not in self._limits:
            response = self.api.request(
                "GET", "fine-tunes/models/limits", params={"model_name": model}, ok=(404,)
            )
            body = None if response.status_code == 404 else _json_or_none(response)
            if response.status_code != 404 and not isinstance(body, Mapping):
                raise self._error(
                    "model limits: the answer is not a JSON object", ErrorKind.RETRYABLE
                )
            self._limits[model] = body
        return self._limits[model]

    def _refused(self, response: httpx.Response, body: Any) -> ProviderError:
        """A 422 with each violation it lists (``field: message``), not only its summary."""
        self.api.errors += 1  # answered, but an error all the same (metrics)
        listed = violations(body)
        message = "; ".join(listed) if listed else error_message(response)
        return self._error(message, ErrorKind.PERMANENT, status=422)


def _remote_file(d: Mapping[str, Any], file_id: str, name: str) -> RemoteFile:
    return RemoteFile(
        id=file_id, filename=_str(d.get("filename")) or name, bytes=_int(d.get("bytes"))
    )


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _conflict_file_id(response: httpx.Response) -> str:
    body = _json_or_none(response)
    if isinstance(body, Mapping):
        for holder in (body, body.get("error")):
            if isinstance(holder, Mapping) and (file_id := _str(holder.get("file_id"))):
                return file_id
    raise ProviderError(
        PROVIDER,
        "upload answered 409 without the existing file_id",
        kind=ErrorKind.PERMANENT,
        status=409,
    )
