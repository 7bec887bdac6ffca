"""OpenAI under ``/openai/v1`` (providers.md §2): files and uploads (``openai_files``),
fine-tuning jobs and models (``openai_routes``), job wire views (``openai_jobs``)."""

from __future__ import annotations

from typing import Any

from starlette.routing import BaseRoute

from . import openai_jobs as oj
from .core import Emulator, job_snapshot
from .openai_files import file_routes, upload_routes
from .openai_jobs import error
from .openai_routes import job_routes, model_routes
from .store import Row

NAME = "openai"
KIND = oj.KIND
__all__ = ["KIND", "NAME", "error", "job_summary", "routes"]


def routes(emu: Emulator) -> list[BaseRoute]:
    return [*file_routes(emu), *upload_routes(emu), *job_routes(emu), *model_routes(emu)]


def job_summary(emu: Emulator, row: Row) -> dict[str, Any]:
    snap = job_snapshot(emu, KIND, row)
    return {
        "status": snap.status,
        "model": row.data["model"],
        "suffix": row.data.get("suffix"),
        "metadata": row.data.get("metadata"),
        "training_file": row.data["training_file"],
        "fine_tuned_model": row.data["fine_tuned_model"],
    }
