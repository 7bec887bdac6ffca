"""Mistral's answers for the driver tests, with the UUID ids its spec insists on: a
completion job (list form, or detailed with events and checkpoints), status events,
files and the page-with-total; plus the mistral.yaml pointers, checked with formats.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from driver_fixtures import ENDPOINTS, TAG, file_object
from openapi_check import document, validator

JOB_ID = "2813b7e6-c511-43ac-a16a-1a54a5b884b2"
TRAIN_ID = ENDPOINTS["mistral"].training_file_id
VAL_ID = "84482011-dfe9-4245-9103-d28b6aef30d4"


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
    extra = {"sample_type": "instruct", "num_lines": 2, "mimetype": "application/jsonl"}
    own = {**extra, "source": "upload", "signature": "d4821d2de1917341"}
    return {**file_object(file_id, filename, created_at=1717164199), **own, **over}


def page(items: list[dict[str, Any]], total: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {"data": items, "object": "list"}
    if total is not None:
        body["total"] = total
    return body


# ---------------------------------------------------------------- the OpenAPI extract


def spec_document() -> dict[str, Any]:
    # OpenAPI 3.1: JSON Schema 2020-12 already; `discriminator` is an annotation
    return document("mistral")


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
