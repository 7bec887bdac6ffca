"""The provider catalog: an explicit registry of every provider reconciler knows.

Importing this package is cheap and pure (no httpx): each ``entry`` module holds data
and the pure request rules. Drivers, which speak HTTP, are imported only when a
provider is first used (``pool.DriverPool``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from ..catalog import ProviderInfo
from .azure_openai.entry import AZURE_OPENAI
from .fireworks.entry import FIREWORKS
from .local.entry import LOCAL
from .mistral.entry import MISTRAL
from .nebius.entry import NEBIUS
from .openai.entry import OPENAI
from .together.entry import TOGETHER

BUILTIN: tuple[ProviderInfo, ...] = (
    TOGETHER,
    OPENAI,
    MISTRAL,
    FIREWORKS,
    AZURE_OPENAI,
    NEBIUS,
    LOCAL,
)


class Catalog(Mapping[str, ProviderInfo]):
    """Every provider a spec may name: the built-in ones, and the profiles the project's
    ``reconciler.yaml`` declares (a second account at a host, or one host's settings),
    each resolved to its kind's entry with its own key variable and endpoint."""

    def __init__(self, builtin: tuple[ProviderInfo, ...]) -> None:
        self.builtin: Mapping[str, ProviderInfo] = {p.name: p for p in builtin}
        self._profiles: dict[str, ProviderInfo] = {}

    def __getitem__(self, name: str) -> ProviderInfo:
        found = self.builtin.get(name) or self._profiles.get(name)
        if found is None:
            raise KeyError(name)
        return found

    def __iter__(self) -> Iterator[str]:
        return iter([*self.builtin, *self._profiles])

    def __len__(self) -> int:
        return len(self.builtin) + len(self._profiles)

    @property
    def profiles(self) -> Mapping[str, ProviderInfo]:
        return self._profiles

    def use_profiles(self, profiles: Mapping[str, ProviderInfo]) -> None:
        """The profiles of the project being run (replacing any earlier project's)."""
        self._profiles = dict(profiles)


CATALOG = Catalog(BUILTIN)


def names() -> list[str]:
    """Every provider name a spec may use: built-in ones first, then profiles."""
    return sorted(CATALOG.builtin) + sorted(CATALOG.profiles)


def entry(name: str) -> ProviderInfo:
    """The catalog entry of ``name``; a ConfigError naming the choices when unknown."""
    info = CATALOG.get(name)
    if info is None:
        from ..errors import ConfigError

        raise ConfigError(f"unknown provider {name!r} (known: {', '.join(names())})")
    return info
