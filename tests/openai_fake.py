"""Helpers for the OpenAI driver tests: realistic wire objects, a driver on a respx
router, and validators built from the official OpenAPI extract in ../shared/provider-specs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from openapi_check import document, validator

from reconciler.providers import CATALOG
from reconciler.providers.http import ApiClient, make_http_client
from reconciler.providers.openai.client import OpenAIDriver

BASE_URL = "https://api.openai.test/v1/"
# long and unmistakable, so a leak into any message is easy to spot
KEY = "sk-proj-SENTINEL-0a1b2c3d4e5f60718293-KEY"
ENV = {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": "https://api.openai.test/v1"}
SHA = "0123456789abcdef" + "0" * 48
TAG = "rc-0123456789ab"
NAME = "support-bot"
SPEC_PATH = Path(__file__).resolve().parents[2] / "shared" / "provider-specs" / "openai.yaml"


def make_driver(router: respx.MockRouter, **options: Any) -> tuple[OpenAIDriver, list[float]]:
    """A driver whose HTTP goes to ``router``; returns it with the api's sleep log."""
    http = make_http_client(CATALOG["openai"], ENV, transport=httpx.MockTransport(router.handler))
    api_sleeps: list[float] = []
    api = ApiClient("openai", http, sleep=api_sleeps.append)
    return OpenAIDriver(api, sleep=api_sleeps.append, **options), api_sleeps


def new_router() -> respx.MockRouter:
    return respx.MockRouter(base_url=BASE_URL, assert_all_called=False)


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
    f: dict[str, Any] = {
        "id": file_id,
        "object": "file",
        "bytes": 1234,
        "created_at": 1747500000,
        "filename": filename or f"rc-{SHA[:16]}-train.jsonl",
        "purpose": "fine-tune",
        "status": "processed",
    }
    f.update(over)
    return f


def wire_upload(status: str = "pending", *, file: dict[str, Any] | None = None) -> dict[str, Any]:
    upload: dict[str, Any] = {
        "id": "upload_abc",
        "object": "upload",
        "created_at": 1747500000,
        "expires_at": 1747503600,
        "filename": f"rc-{SHA[:16]}-train.jsonl",
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
    if not SPEC_PATH.exists():
        pytest.skip("../shared/provider-specs not present")
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
