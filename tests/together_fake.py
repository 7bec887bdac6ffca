"""Together's answers as the driver tests need them: a job in full (GET) or truncated
(list, create, cancel), its events with every field the spec requires, and a file with
the SDK's processing state; plus the pointers into together.yaml to validate them by.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from driver_fixtures import TAG, file_object
from openapi_check import validator

# ---------------------------------------------------------------- wire objects


def wire_event(message: str = "Training started", **over: Any) -> dict[str, Any]:
    """A FineTuneEvent with every field the spec marks required."""
    event: dict[str, Any] = {
        "object": "fine-tune-event",
        "created_at": "2026-05-17T17:40:00.000Z",
        "level": "info",
        "message": message,
        "type": "training_start",
        "param_count": 0,
        "token_count": 0,
        "total_steps": 0,
        "wandb_url": "",
        "step": 0,
        "checkpoint_path": "",
        "model_path": "",
        "training_offset": 0,
        "hash": "",
    }
    event.update(over)
    return event


def wire_job(status: str = "running", *, truncated: bool = False, **over: Any) -> dict[str, Any]:
    """A job as GET /fine-tunes/{id} (or, truncated, as list/create/cancel) answers it."""
    job: dict[str, Any] = {
        "id": "ft-3b5a1c2d-0000-4e8f-9a1b-1234567890ab",
        "status": status,
        "created_at": "2026-05-17T17:35:45.123Z",
        "updated_at": "2026-05-17T18:46:23.456Z",
        "user_id": "user_01234567890123456789",
        "owner_address": "user@example.com",
        "total_price": 1500,
        "token_count": 850000,
        "events": [],
        "training_file": "file-train",
        "model": "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
        "model_output_name": (
            f"someone/Meta-Llama-3.1-8B-Instruct-Reference-support-v3-{TAG}-4224205a"
        ),
        "suffix": f"support-v3-{TAG}",
        "n_epochs": 3,
        "n_evals": 0,
        "n_checkpoints": 1,
        "batch_size": 8,
        "learning_rate": 1e-5,
        "training_method": {"method": "sft", "train_on_inputs": "auto"},
        "training_type": {"type": "Lora", "lora_r": 16, "lora_alpha": 32},
        "wandb_project_name": "together",
    }
    if not truncated:
        job.update(epochs_completed=1, trainingfile_numlines=100, queue_depth=0)
    job.update(over)
    return job


def wire_file(
    file_id: str = "file-abc", *, filename: str | None = None, **over: Any
) -> dict[str, Any]:
    """A file object: the spec's fields plus the SDK's processing_status."""
    state = {"FileType": "jsonl", "Processed": True, "processing_status": "COMPLETED"}
    return {**file_object(file_id, filename, created_at=1747500000), **state, **over}


# ---------------------------------------------------------------- the OpenAPI extract


def spec_validator(pointer: str) -> Callable[[Any], None]:
    """Raise unless an instance fits the schema at ``pointer`` in together.yaml."""
    return validator("together", pointer)


CREATE_BODY = "/paths/~1fine-tunes/post/requestBody/content/application~1json/schema"
ESTIMATE_BODY = (
    "/paths/~1fine-tunes~1estimate-price/post/requestBody/content/application~1json/schema"
)
JOB = "/components/schemas/FinetuneResponse"
JOB_TRUNCATED = "/components/schemas/FinetuneResponseTruncated"
EVENT = "/components/schemas/FineTuneEvent"
FILE = "/components/schemas/FileResponse"
