"""``DriverPool``: one driver per provider, built the first time the provider is needed,
so a missing API key is reported only for a provider the run actually uses."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from ..clock import steady_sleep
from ..redact import register
from . import CATALOG, entry
from .base import Driver

if TYPE_CHECKING:  # httpx is imported with the first driver: an offline plan needs none
    import httpx


class DriverPool:
    """The drivers of one run, by provider name, over clients built from the environment."""

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        sleep: Callable[[float], None] = steady_sleep,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.env = env
        self.sleep = sleep
        self.transport = transport
        self.timeout = timeout
        self._drivers: dict[str, Driver] = {}
        # every key the environment holds is scrubbed from output, used or not
        for info in CATALOG.values():
            register((env.get(info.endpoint.key_var) or "").strip())

    def get(self, provider: str) -> Driver:
        driver = self._drivers.get(provider)
        if driver is None:
            from .http import ApiClient, make_http_client

            info = entry(provider)
            module, _, cls_name = info.driver.partition(":")
            cls = getattr(importlib.import_module(module), cls_name)
            http = make_http_client(info, self.env, timeout=self.timeout, transport=self.transport)
            extra = {"env": self.env} if info.driver_env else {}
            driver = cls(ApiClient(provider, http, sleep=self.sleep), sleep=self.sleep, **extra)
            self._drivers[provider] = driver
        return driver

    def calls(self) -> dict[str, int]:
        """Provider calls made so far, by provider (for metrics and benchmarks)."""
        return {p: c for p, (c, _) in self.call_totals().items()}

    def call_totals(self) -> dict[str, tuple[int, int]]:
        """(calls, errors) so far, by provider."""
        return {p: d.api.counts() for p, d in self._drivers.items()}

    def close(self) -> None:
        for driver in self._drivers.values():
            driver.close()
        self._drivers.clear()
