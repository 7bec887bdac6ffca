"""Nebius Token Factory's driver: OpenAI's, with Nebius' ``Host`` (Bearer key, the tag
in the suffix, no pause, no Uploads API, no models preflight)."""

from __future__ import annotations

from ..openai.client import OpenAIDriver
from .mapping import NEBIUS, PROVIDER


class NebiusDriver(OpenAIDriver):
    """The Driver for Nebius over an ``ApiClient`` whose base URL ends in ``/v1/``."""

    provider = PROVIDER
    host = NEBIUS
