"""Helpers for the Mistral driver tests: realistic wire objects, a driver on a respx
router, and validators built from the official OpenAPI extract in ../shared/provider-specs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import respx
from openapi_check import document, require_specs, validator

from reconciler.providers import CATALOG
from reconciler.providers.http import ApiClient, make_http_client
from reconciler.providers.mistral.client import MistralDriver

BASE_URL = "https://api.mistral.test/v1/"
# long and unmistakable, so a leak into any message is easy to spot
KEY = "mistral-SENTINEL-4c3b2a19-0f8e7d6c5b4a-KEY"
ENV = {"MISTRAL_API_KEY": KEY, "MISTRAL_BASE_URL": "https://api.mistral.test"}
SHA = "0123456789abcdef" + "0" * 48
TAG = "rc-0123456789ab"
JOB_ID = "2813b7e6-c511-43ac-a16a-1a54a5b884b2"
TRAIN_ID = "66f96d02-8b51-4c76-a5ac-a78e28b2584f"
VAL_ID = "84482011-dfe9-4245-9103-d28b6aef30d4"
SPEC_PATH = Path(__file__).resolve().parents[2] / "shared" / "provider-specs" / "mistral.yaml"


def make_driver(
    router: respx.MockRouter, *, conflict_recheck: tuple[float, ...] = (1.0, 3.0)
) -> tuple[MistralDriver, list[float], list[float]]:
    """A driver whose HTTP goes to ``router``; returns it with the api and driver sleep logs."""
    http = make_http_client(CATALOG["mistral"], ENV, transport=httpx.MockTransport(router.handler))
    api_sleeps: list[float] = []
    driver_sleeps: list[float] = []
    api = ApiClient("mistral", http, sleep=api_sleeps.append)
    driver = MistralDriver(api, sleep=driver_sleeps.append, conflict_recheck=conflict_recheck)
    return driver, api_sleeps, driver_sleeps


def new_router() -> respx.MockRouter:
    return respx.MockRouter(base_url=BASE_URL, assert_all_called=False)


def job_id(n: int) -> str:
    """A distinct, valid UUID per number."""
    return f"00000000-0000-4000-8000-{n:012d}"


# ---------------------------------------------------------------- wire objects


def wire_event(
    status: str = "RUNNING", created_at: int = 1717172594, **over: Any
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "name": "status-updated",
        "data": {"status": status},
        "created_at": created_at,
    }
    event.update(over)
    return event


def wire_checkpoint(
    step: int, loss: float | None = 0.8, created_at: int = 1717173000
) -> dict[str, Any]:
    return {
        "metrics": {"train_loss": loss, "valid_loss": 0.82, "valid_mean_token_accuracy": 1.76},
        "step_number": step,
        "created_at": created_at,
    }


def wire_job(status: str = "RUNNING", *, detailed: bool = False, **over: Any) -> dict[str, Any]:
    """A completion job as list/create answer it, or (detailed) as get/start/cancel do."""
    job: dict[str, Any] = {
        "id": JOB_ID,
        "auto_start": False,
        "model": "open-mistral-7b",
        "status": status,
        "created_at": 1717172592,
        "modified_at": 1717173491,
        "training_files": [TRAIN_ID],
        "validation_files": [VAL_ID],
        "object": "job",
        "fine_tuned_model": None,
        "suffix": TAG,
        "integrations": [],
        "trained_tokens": None,
        "metadata": {
            "expected_duration_seconds": 120,
            "cost": 2.6214,
            "cost_currency": "USD",
            "train_tokens_per_step": 131072,
            "train_tokens": 1310720,
            "data_tokens": 305375,
            "estimated_start_time": None,
        },
        "job_type": "completion",
        "hyperparameters": {"training_steps": 100, "learning_rate": 0.0001},
        "repositories": [],
    }
    if status == "SUCCESS":
        job["fine_tuned_model"] = f"ft:open-mistral-7b:{TAG}:20240531:2813b7e6"
        job["trained_tokens"] = 1310720
    if detailed:
        job["events"] = [wire_event(status, 1717173491), wire_event("QUEUED", 1717172592)]
        job["checkpoints"] = []
    job.update(over)
    return job


def wire_file(
    file_id: str = TRAIN_ID, *, filename: str | None = None, **over: Any
) -> dict[str, Any]:
    """A file object as upload and list answer it."""
    f: dict[str, Any] = {
        "id": file_id,
        "object": "file",
        "bytes": 1234,
        "created_at": 1717164199,
        "filename": filename or f"rc-{SHA[:16]}-train.jsonl",
        "purpose": "fine-tune",
        "sample_type": "instruct",
        "num_lines": 2,
        "mimetype": "application/jsonl",
        "source": "upload",
        "signature": "d4821d2de1917341",
    }
    f.update(over)
    return f


def page(items: list[dict[str, Any]], total: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {"data": items, "object": "list"}
    if total is not None:
        body["total"] = total
    return body


# ---------------------------------------------------------------- the OpenAPI extract


def spec_document() -> dict[str, Any]:
    # OpenAPI 3.1: JSON Schema 2020-12 already; `discriminator` is an annotation
    return document("mistral")


def need_spec() -> None:
    require_specs("mistral")


def spec_validator(pointer: str) -> Callable[[Any], None]:
    """Raise unless an instance fits ``pointer`` in mistral.yaml; formats checked: file
    and job ids must be the UUIDs the spec asks for."""
    return validator("mistral", pointer, formats=True)


CREATE_BODY = "/paths/~1v1~1fine_tuning~1jobs/post/requestBody/content/application~1json/schema"
CREATE_ANSWER = "/paths/~1v1~1fine_tuning~1jobs/post/responses/200/content/application~1json/schema"
DETAILED_ANSWER = (
    "/paths/~1v1~1fine_tuning~1jobs~1{job_id}/get/responses/200/content/application~1json/schema"
)
JOB = "/components/schemas/CompletionJobOut"
DETAILED_JOB = "/components/schemas/CompletionDetailedJobOut"
JOBS = "/components/schemas/JobsOut"
EVENT = "/components/schemas/EventOut"
CHECKPOINT = "/components/schemas/CheckpointOut"
FILE = "/components/schemas/UploadFileOut"
FILES = "/components/schemas/ListFilesOut"
VALIDATION_ERROR = "/components/schemas/HTTPValidationError"
STATUS_ENUM = "/components/schemas/CompletionJobOut/properties/status"
