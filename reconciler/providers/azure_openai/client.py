"""Azure OpenAI's driver: OpenAI's, with Azure's ``Host``. The key goes in ``api-key``
and a dated ``api-version`` in the query (both ``http.make_http_client``'s, from the
catalog ``Endpoint``); a create with ``trainingType`` goes to the preview URL, the rest
stays on the configured surface (the job ids are the same on both).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..openai.client import OpenAIDriver
from .mapping import AZURE, PROVIDER, TRAINING_TYPE_API_VERSION, create_needs_dated_api


class AzureOpenAIDriver(OpenAIDriver):
    """The Driver for an Azure OpenAI resource (``…/openai/v1/`` or ``…/openai/`` +
    ``?api-version=``)."""

    provider = PROVIDER
    host = AZURE

    def _create_target(self, payload: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
        version = self.api.http.params.get("api-version")
        if not create_needs_dated_api(dict(payload), version):
            return "fine_tuning/jobs", {}
        base = str(self.api.http.base_url)
        # …/openai/v1/ → …/openai/fine_tuning/jobs?api-version=<preview>
        root = base.removesuffix("/").removesuffix("/v1")
        return f"{root}/fine_tuning/jobs", {"api-version": TRAINING_TYPE_API_VERSION}
