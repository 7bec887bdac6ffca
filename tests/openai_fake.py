"""OpenAI's answers for the driver tests: a fine_tuning.job carrying our metadata tag,
events, checkpoints, files and the Uploads API objects, and the cursor page that wraps
lists; plus the component schemas of openai.yaml they are checked against.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from driver_fixtures import NAME, TAG, UPLOAD_NAME, file_object
from openapi_check import document, require_specs, validator

# ---------------------------------------------------------------- wire objects


def wire_job(status: str = "running", **over: Any) -> dict[str, Any]:
    """A FineTuningJob with every field the spec marks required, carrying our tag."""
    job: dict[str, Any] = {
        "object": "fine_tuning.job",
        "id": "ftjob-abc123",
        "model": "gpt-4.1-mini-2025-04-14",
        "created_at": 1747500000,
        "finished_at": None,
        "fine_tuned_model": None,
        "organization_id": "org-123",
        "result_files": [],
        "status": status,
        "validation_file": None,
        "training_file": "file-train",
        "hyperparameters": {"n_epochs": 3, "batch_size": "auto", "learning_rate_multiplier": 2},
        "method": {
            "type": "supervised",
            "supervised": {
                "hyperparameters": {
                    "n_epochs": 3,
                    "batch_size": "auto",
                    "learning_rate_multiplier": 2,
                }
            },
        },
        "trained_tokens": None,
        "error": None,
        "seed": 42,
        "estimated_finish": None,
        "integrations": [],
        "metadata": {"reconciler_tag": TAG, "reconciler_name": NAME},
    }
    job.update(over)
    return job


def wire_event(message: str = "Fine-tuning job started", **over: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "object": "fine_tuning.job.event",
        "id": "ftevent-1",
        "created_at": 1747500100,
        "level": "info",
        "message": message,
        "type": "message",
        "data": {},
    }
    event.update(over)
    return event


def wire_checkpoint(step: int = 100, **over: Any) -> dict[str, Any]:
    ckpt: dict[str, Any] = {
        "object": "fine_tuning.job.checkpoint",
        "id": f"ftckpt_{step}",
        "created_at": 1747500000 + step,
        "fine_tuned_model_checkpoint": (
            f"ft:gpt-4.1-mini-2025-04-14:org::7q8mpxmy:ckpt-step-{step}"
        ),
        "step_number": step,
        "fine_tuning_job_id": "ftjob-abc123",
        "metrics": {"step": step, "train_loss": 0.5, "full_valid_loss": 0.134},
    }
    ckpt.update(over)
    return ckpt


def wire_file(
    file_id: str = "file-abc", *, filename: str | None = None, **over: Any
) -> dict[str, Any]:
    """A file once OpenAI has processed it (the deprecated status field still sent)."""
    return {**file_object(file_id, filename, created_at=1747500000), "status": "processed", **over}


def wire_upload(status: str = "pending", *, file: dict[str, Any] | None = None) -> dict[str, Any]:
    upload: dict[str, Any] = {
        "id": "upload_abc",
        "object": "upload",
        "created_at": 1747500000,
        "expires_at": 1747503600,
        "filename": UPLOAD_NAME,
        "bytes": 1234,
        "purpose": "fine-tune",
        "status": status,
    }
    if file is not None:
        upload["file"] = file
    return upload


def wire_part(part_id: str = "part_1") -> dict[str, Any]:
    return {
        "id": part_id,
        "object": "upload.part",
        "created_at": 1747500000,
        "upload_id": "upload_abc",
    }


def page(items: list[dict[str, Any]], has_more: bool = False) -> dict[str, Any]:
    return {"object": "list", "data": items, "has_more": has_more}


# ---------------------------------------------------------------- the OpenAPI extract


def spec_document() -> dict[str, Any]:
    return document("openai")


def spec_validator(pointer: str) -> Callable[[Any], None]:
    """Raise unless an instance fits the schema at ``pointer`` in openai.yaml."""
    return validator("openai", pointer)


def schema(name: str) -> dict[str, Any]:
    """A component schema (for its property names); skips when the spec is absent."""
    require_specs("openai")
    found: dict[str, Any] = spec_document()["components"]["schemas"][name]
    return found


CREATE_BODY = "/components/schemas/CreateFineTuningJobRequest"
JOB = "/components/schemas/FineTuningJob"
JOB_LIST = "/components/schemas/ListPaginatedFineTuningJobsResponse"
EVENT_LIST = "/components/schemas/ListFineTuningJobEventsResponse"
CHECKPOINT_LIST = "/components/schemas/ListFineTuningJobCheckpointsResponse"
FILE = "/components/schemas/OpenAIFile"
UPLOAD = "/components/schemas/Upload"
UPLOAD_PART = "/components/schemas/UploadPart"
CREATE_UPLOAD = "/components/schemas/CreateUploadRequest"
COMPLETE_UPLOAD = "/components/schemas/CompleteUploadRequest"
