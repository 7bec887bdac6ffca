"""Fireworks AI under ``/fireworks/v1`` (providers-next.md §1): datasets (``files``), job
creation with client-chosen ids (``create``), lifecycle and wire views (``jobs``),
endpoints (``routes``), and how it words a refusal (``dialect``)."""

from __future__ import annotations

from .dialect import NAME, error
from .jobs import HOLDABLE, KIND, job_summary
from .routes import routes

__all__ = ["HOLDABLE", "KIND", "NAME", "error", "job_summary", "routes"]
