"""The provider catalog: an explicit registry of every provider reconciler knows.

Importing this package is cheap and pure (no httpx): each ``entry`` module holds data
and the pure request rules. Drivers, which speak HTTP, are imported only when a
provider is first used (``pool.DriverPool``).
"""

from __future__ import annotations

from collections.abc import Mapping

from ..catalog import ProviderInfo
from .mistral.entry import MISTRAL
from .openai.entry import OPENAI
from .together.entry import TOGETHER

CATALOG: Mapping[str, ProviderInfo] = {p.name: p for p in (TOGETHER, OPENAI, MISTRAL)}


def names() -> list[str]:
    """Every provider name a spec may use, sorted."""
    return sorted(CATALOG)


def entry(name: str) -> ProviderInfo:
    """The catalog entry of ``name``; a ConfigError naming the choices when unknown."""
    info = CATALOG.get(name)
    if info is None:
        from ..errors import ConfigError

        raise ConfigError(f"unknown provider {name!r} (known: {', '.join(names())})")
    return info
