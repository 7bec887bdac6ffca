"""Provider drivers, by name: an explicit registry, no import-time magic.

``DriverPool`` builds a driver the first time a provider is actually needed, so a
missing API key is reported only for a provider the run uses.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Mapping

import httpx

from ..redact import register
from .base import Driver
from .http import ENDPOINTS, ApiClient, make_http_client

# provider → (module, class); imported lazily to keep `reconciler --help` fast
REGISTRY: dict[str, tuple[str, str]] = {
    "together": ("reconciler.providers.together", "TogetherDriver"),
    "openai": ("reconciler.providers.openai", "OpenAIDriver"),
    "mistral": ("reconciler.providers.mistral", "MistralDriver"),
}


def supported() -> list[str]:
    return sorted(REGISTRY)


class DriverPool:
    """One driver per provider, built on first use from the environment."""

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.env = env
        self.sleep = sleep
        self.transport = transport
        self.timeout = timeout
        self._drivers: dict[str, Driver] = {}
        # every key the environment holds is scrubbed from output, used or not
        for endpoint in ENDPOINTS.values():
            register((env.get(endpoint.key_var) or "").strip())

    def get(self, provider: str) -> Driver:
        driver = self._drivers.get(provider)
        if driver is None:
            if provider not in REGISTRY:
                from ..errors import ConfigError

                raise ConfigError(
                    f"provider {provider!r} has no driver yet (available: {', '.join(supported())})"
                )
            module, cls_name = REGISTRY[provider]
            cls = getattr(importlib.import_module(module), cls_name)
            http = make_http_client(
                provider, self.env, timeout=self.timeout, transport=self.transport
            )
            driver = cls(ApiClient(provider, http, sleep=self.sleep), sleep=self.sleep)
            self._drivers[provider] = driver
        return driver

    def calls(self) -> dict[str, int]:
        """Provider calls made so far, by provider (for metrics and benchmarks)."""
        return {p: c for p, (c, _) in self.call_totals().items()}

    def call_totals(self) -> dict[str, tuple[int, int]]:
        """(calls, errors) so far, by provider."""
        return {
            p: (d.api.calls, d.api.errors) for p, d in self._drivers.items() if hasattr(d, "api")
        }

    def close(self) -> None:
        for driver in self._drivers.values():
            driver.close()
        self._drivers.clear()
