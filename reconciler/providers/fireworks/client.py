"""Fireworks AI's driver (providers-next.md §1): a thin client over ``ApiClient``. Datasets
are named by their content hash and jobs by our tag (``mapping.job_id_for``), so every
crash is resolved by reading a name we chose, never by scanning a list.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx

from ...errors import ConfigError, ErrorKind, ProviderError
from ...model import (
    CreateRequest,
    Phase,
    RemoteEvent,
    RemoteFile,
    RemoteJob,
    upload_filename,
)
from ...redact import scrub
from ...retry import Failure, retrying
from ..base import DriverBase
from ..http import ApiClient
from ..wire import MAX_PAGES
from ..wire import dicts as _dicts
from ..wire import integer as _int
from ..wire import text as _str
from .entry import ACCOUNT_VAR
from .mapping import (
    COLLECTIONS,
    DPO,
    ID_PARAM,
    LIST_KEY,
    MAX_SLOTS,
    PROVIDER,
    SMALL_UPLOAD,
    collection_for,
    create_payload,
    dataset_error,
    dataset_format,
    dataset_id_for,
    dataset_name,
    dataset_state,
    estimate_payload,
    events_from_job,
    job_from_wire,
    job_id_for,
    job_name,
    job_path,
    money,
)

PAGE_SIZE = 200  # the largest page Fireworks serves (larger is coerced)


class FireworksDriver(DriverBase):
    """The Driver for Fireworks over an ``ApiClient`` whose base URL ends in ``/v1/``.

    The account (``accounts/<id>/…`` in every path) is ``account``, else the
    ``FIREWORKS_ACCOUNT_ID`` of ``env`` (the process environment when no ``env`` is given),
    read at the first call that needs it.
    """

    provider = PROVIDER

    def __init__(
        self,
        api: ApiClient,
        *,
        sleep: Callable[[float], None] = time.sleep,
        file_ready_timeout: float = 600.0,
        account: str | None = None,
        env: Mapping[str, str] | None = None,
        page_size: int = PAGE_SIZE,
    ) -> None:
        super().__init__(api, sleep=sleep)
        self.file_ready_timeout = file_ready_timeout
        self.page_size = page_size
        self._account = account
        self._env = env

    @property
    def account(self) -> str:
        if not self._account:
            env = os.environ if self._env is None else self._env
            value = (env.get(ACCOUNT_VAR) or "").strip()
            if not value:
                raise ConfigError(
                    f"{ACCOUNT_VAR} is not set: the fireworks provider needs the account id "
                    "(accounts/<id>/…) in the environment"
                )
            self._account = value.removeprefix("accounts/")
        return self._account

    # datasets

    def find_file(self, sha256: str) -> RemoteFile | None:
        """The ready dataset of this content (its id is derived from the hash)."""
        name = dataset_name(self.account, dataset_id_for(sha256))
        response = self.api.request("GET", name, ok=(404,))
        body = None if response.status_code == 404 else _json_or_none(response)
        if isinstance(body, Mapping) and dataset_state(body) == "ready":
            return _remote_file(body, name)
        return None  # absent, uploading or rejected: upload_file sorts it out

    def upload_file(self, path: Path, sha256: str) -> RemoteFile:
        """Create the dataset record (409: it exists), upload the bytes unless it is ready,
        then wait for ``READY`` (§1.2). Idempotent: every name is the content's."""
        dataset_id = dataset_id_for(sha256)
        name = dataset_name(self.account, dataset_id)
        data = path.read_bytes()
        lines = [line for line in data.splitlines() if line.strip()]
        dataset: dict[str, Any] = {
            "displayName": upload_filename(sha256, path),
            "exampleCount": str(len(lines)),  # an int64, as a string
            "userUploaded": {},
        }
        try:
            first = json.loads(lines[0]) if lines else {}
        except ValueError:
            first = {}
        if isinstance(first, Mapping) and (fmt := dataset_format(first)):
            dataset["format"] = fmt
        response = self.api.request(
            "POST",
            f"accounts/{self.account}/datasets",
            json={"datasetId": dataset_id, "dataset": dataset},
            ok=(409,),
        )
        info = _json_or_none(response) if response.status_code != 409 else None
        if response.status_code == 409 or not isinstance(info, Mapping):
            info = self.api.json("GET", name)
        if isinstance(info, Mapping) and dataset_state(info) != "pending":
            return self._wait_ready(info, name)  # ready already, or rejected
        filename = f"{dataset_id}.jsonl"
        if len(data) <= SMALL_UPLOAD:
            self.api.request(
                "POST", f"{name}:upload", files={"file": (filename, data, "application/jsonl")}
            )
        else:
            body = self.api.json(
                "POST",
                f"{name}:getUploadEndpoint",
                json={"filenameToSize": {filename: str(len(data))}},
            )
            urls = body.get("filenameToSignedUrls") if isinstance(body, Mapping) else None
            url = urls.get(filename) if isinstance(urls, Mapping) else None
            if not isinstance(url, str) or not url:
                raise self._error(f"upload of {filename}: no signed URL in the answer")
            self._put_signed(url, data, what=f"upload of {filename}")
            self.api.request("POST", f"{name}:validateUpload", json={})
        return self._wait_ready(self.api.json("GET", name), name)

    def _wait_ready(self, info: Any, name: str) -> RemoteFile:
        def known(i: Any) -> Mapping[str, Any]:
            return i if isinstance(i, Mapping) else {}

        ready = self._await_ready(
            info,
            refresh=lambda: self.api.json("GET", name),
            state_of=lambda i: dataset_state(known(i)),
            what=f"dataset {name}",
            rejected=lambda i: dataset_error(known(i)),
            still=lambda i: known(i).get("state") or "uploading",
            timeout=self.file_ready_timeout,
        )
        return _remote_file(known(ready), name)

    def _put_signed(self, url: str, data: bytes, *, what: str) -> None:
        """PUT to a signed storage URL with the two headers its signature covers, never
        with our key; retried like any idempotent call."""
        size = str(len(data))
        headers = {"Content-Type": "application/octet-stream"}
        headers["X-Goog-Content-Length-Range"] = f"{size},{size}"

        def once(_attempt: int) -> Failure[ProviderError] | None:
            request = self.api.http.build_request("PUT", url, content=data, headers=headers)
            request.headers.pop("Authorization", None)
            self.api.calls += 1
            try:
                response = self.api.http.send(request, follow_redirects=True)
            except httpx.TransportError as exc:
                err = self._error(f"{what} failed ({type(exc).__name__})", ErrorKind.RETRYABLE)
                return Failure(err, True)
            if response.is_success:
                return None
            status = response.status_code
            retryable = status in (408, 429) or status >= 500
            kind = ErrorKind.RETRYABLE if retryable else ErrorKind.PERMANENT
            text = scrub(response.text.strip()[:200])
            return Failure(self._error(f"{what} refused: {text}", kind, status), retryable)

        result: Failure[ProviderError] | None = retrying(
            once, self.api.backoff, sleep=self.api.sleep
        )
        if isinstance(result, Failure):
            raise result.error

    # jobs

    def _read(self, name: str) -> RemoteJob | None:
        response = self.api.request("GET", name, ok=(404,))
        if response.status_code == 404:
            return None
        body = _json_or_none(response)
        return job_from_wire(body) if isinstance(body, Mapping) else None

    def _slots(self, tag: str) -> tuple[list[RemoteJob], int]:
        """The jobs under ``tag`` (by the ids it can have, SFT and DPO) and the next free
        slot: creates fill slots in order, so the first id nobody holds ends the look."""
        found: list[RemoteJob] = []
        for slot in range(1, MAX_SLOTS + 1):
            job_id = job_id_for(tag, slot)
            jobs = [
                job
                for collection in COLLECTIONS
                if (job := self._read(job_name(self.account, collection, job_id))) is not None
            ]
            if not jobs:
                return found, slot
            found += jobs
        raise self._error(f"tag {tag}: all {MAX_SLOTS} job ids are used")

    def create_job(self, request: CreateRequest) -> RemoteJob:
        """Create under the next free id of the tag: posted once; a 409 (the id exists)
        adopts that job, and a lost answer is resolved by reading the id (§1.5)."""
        collection = collection_for(request.method)
        _, slot = self._slots(request.tag)
        job_id = job_id_for(request.tag, slot)
        name = job_name(self.account, collection, job_id)
        try:
            response = self.api.request(
                "POST",
                f"accounts/{self.account}/{collection}",
                params={ID_PARAM[collection]: job_id},
                json=create_payload(request, job_id),
                create=True,
                ok=(409,),
            )
        except ProviderError as exc:
            if exc.ambiguous and (job := self._quiet_read(name)) is not None:
                return job  # it was created: the answer was lost on the way
            raise
        if response.status_code == 409:
            job = self._read(name)
            if job is None:  # a deleted job's id stays taken (a tombstone)
                raise self._error(f"job id {job_id} is taken but cannot be read", status=409)
            return job
        body = _json_or_none(response)
        job = job_from_wire(body) if isinstance(body, Mapping) else None
        if job is None or not job.id:  # 2xx without a job: read the id we chose
            job = self._quiet_read(name)
            if job is None:
                err = self._error("create answered without a job", ErrorKind.RETRYABLE)
                err.ambiguous = True
                raise err
        return job

    def _quiet_read(self, name: str) -> RemoteJob | None:
        try:
            return self._read(name)
        except ProviderError:
            return None

    def get_job(self, job_id: str) -> RemoteJob:
        """A job by its full name (``accounts/…/supervisedFineTuningJobs/<id>``, as the
        ledger keeps it) or by a bare SFT job id (``import``)."""
        body = self.api.json("GET", job_path(job_id, self.account))
        return job_from_wire(body if isinstance(body, Mapping) else {})

    def list_jobs(self) -> Iterator[RemoteJob]:
        """Every SFT and DPO job of the account, page by page (``nextPageToken``)."""
        for collection in COLLECTIONS:
            token: str | None = None
            for _ in range(MAX_PAGES):
                params: dict[str, Any] = {"pageSize": self.page_size}
                if token:
                    params["pageToken"] = token
                body = self.api.json("GET", f"accounts/{self.account}/{collection}", params=params)
                body = body if isinstance(body, Mapping) else {}
                for item in _dicts(body.get(LIST_KEY[collection])):
                    yield job_from_wire(item)
                token = _str(body.get("nextPageToken"))
                if not token:
                    break

    def find_jobs_by_tag(self, tag: str) -> list[RemoteJob]:
        """The jobs carrying ``tag``: read by the ids it gives, no list (and no list lag)."""
        return self._slots(tag)[0]

    def cancel_job(self, job_id: str) -> RemoteJob:
        """``:cancel`` (answers ``{}``), then the job; one already ending is returned as is."""
        path = job_path(job_id, self.account)
        try:
            self.api.request("POST", f"{path}:cancel", json={})
        except ProviderError as exc:
            if exc.kind is not ErrorKind.PERMANENT:
                raise
            job = self.get_job(job_id)  # FAILED_PRECONDITION: it has ended or is ending
            if job.phase.terminal or job.phase is Phase.CANCELLING:
                return job
            raise
        return self.get_job(job_id)

    def resume_job(self, job_id: str) -> RemoteJob:
        """``:resume``: a failed or cancelled job carries on under its own id."""
        body = self.api.json("POST", f"{job_path(job_id, self.account)}:resume", json={})
        job = job_from_wire(body) if isinstance(body, Mapping) else None
        return job if job is not None and job.id else self.get_job(job_id)

    def job_progress(self, job_id: str) -> str | None:
        return self.get_job(job_id).progress

    def job_events(self, job_id: str) -> list[RemoteEvent]:
        """No event log at Fireworks: the job's milestones (created, progress, the end)."""
        body = self.api.json("GET", job_path(job_id, self.account))
        return events_from_job(body if isinstance(body, Mapping) else {})

    def estimate_price(self, training_file_id: str, req: CreateRequest) -> float | None:
        """``:estimateCost`` in US dollars (SFT only; DPO has no estimate endpoint)."""
        if collection_for(req.method) == DPO:
            return None
        body = self.api.json(
            "POST",
            f"accounts/{self.account}/supervisedFineTuningJobs:estimateCost",
            json=estimate_payload(training_file_id, req),
        )
        return money(body.get("estimatedCost")) if isinstance(body, Mapping) else None


def _remote_file(d: Mapping[str, Any], name: str) -> RemoteFile:
    return RemoteFile(
        id=_str(d.get("name")) or name,
        filename=_str(d.get("displayName")) or name.rsplit("/", 1)[-1],
        bytes=_int(d.get("bytes")),
    )


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
