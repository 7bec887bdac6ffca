"""What a provider is and can do, as one record: the catalog entry.

Each provider has one ``ProviderInfo`` in ``providers/<name>/entry.py``, listed in the
explicit registry ``providers.CATALOG``. Everything outside a driver that depends on
the provider (environment variables, data-file rules, prices, default epochs, the
field carrying the tag, what the API can do) reads it from here; nothing probes a
driver for a method. Pure module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .datarules import ProviderRules
    from .model import CreateRequest


@dataclass(frozen=True)
class Endpoint:
    """Where a provider is reached, and with which key: both from the environment."""

    key_var: str
    url_var: str
    default_url: str  # ends in /v1


@dataclass(frozen=True)
class Price:
    """One row of a provider's list prices for training (the first matching row wins)."""

    usd_per_million: float  # per training token (tokens × epochs)
    method: str = "sft"  # sft | dpo
    full: bool = False  # full fine-tune (True) or LoRA (False); ignored where not offered
    max_params_b: float | None = None  # priced by model size bracket (Together)
    model: str | None = None  # a model-name substring (OpenAI, Mistral)
    minimum_usd: float = 0.0
    source: str = ""


@dataclass(frozen=True)
class Capabilities:
    """What a provider's API can do beyond create, read, list and cancel."""

    pausable: bool = False  # pause_job / resume_job: `suspend: true` pauses a running job
    estimates_price: bool = False  # estimate_price: a dollar figure before the create
    parks_after_validation: bool = False  # start_if_parked: jobs wait after validating
    # `from: {job: X}`: a create can start from X's fine-tuned model (Together's
    # from_checkpoint, OpenAI's ft: model as the base); False: validate refuses `from`
    continues_from_job: bool = False


@dataclass(frozen=True)
class ProviderInfo:
    """One provider, everything reconciler knows about it outside the driver's code."""

    name: str  # the spec's `provider:` value
    title: str  # for people: "Together AI"
    endpoint: Endpoint
    driver: str  # "module:Class", imported the first time the provider is used
    tag_field: str  # the job field that carries our tag, for messages and docs
    data_rules: ProviderRules
    request_problems: Callable[[CreateRequest], list[str]]  # "field: message" per problem
    default_epochs: int  # what the provider runs when the spec leaves epochs unset
    prices: tuple[Price, ...] = ()
    prices_as_of: str = ""
    capabilities: Capabilities = field(default_factory=Capabilities)
    limits: Mapping[str, float] = field(default_factory=dict)  # documented numeric limits
