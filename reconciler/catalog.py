"""What a provider is and can do, as one record: the catalog entry.

Each provider has one ``ProviderInfo`` in ``providers/<name>/entry.py``, listed in the
explicit registry ``providers.CATALOG``. Everything outside a driver that depends on
the provider (environment variables, data-file rules, prices, default epochs, the
field carrying the tag, what the API can do) reads it from here; nothing probes a
driver for a method. Pure module.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .datarules import ProviderRules
    from .model import CreateRequest
    from .spec import JobSpec

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*[bB](?![a-zA-Z])")


def model_size_b(model: str) -> float | None:
    """Parameters in billions read from a model name (``Meta-Llama-3.1-8B`` → 8)."""
    sizes = [float(m) for m in _SIZE.findall(model)]
    return max(sizes) if sizes else None


@dataclass(frozen=True)
class Endpoint:
    """Where a provider is reached, and with which key: both from the environment."""

    key_var: str
    url_var: str
    default_url: str  # ends in /v1; "" where every account has its own host (Azure)
    # how the key is presented: "Authorization: Bearer <key>", or a header of its own
    # holding the bare key (auth_scheme "", Azure's "api-key: <key>")
    auth_header: str = "Authorization"
    auth_scheme: str = "Bearer"
    # a variable that, when set, picks a dated API version: the base URL loses its "/v1"
    # and every call carries "?api-version=<value>" (Azure's authoring surface)
    version_var: str | None = None
    # the path both shapes share below the host ("/openai" at Azure), added when missing
    root: str = ""
    # what to say when key_var is unset, where it is a switch rather than a key (local)
    missing: str = ""


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
    # the job list filters on our tag server-side (OpenAI's metadata[...]); False: the tag
    # rides in a field the list cannot filter on, so a crash is resolved by a full listing
    filters_by_tag: bool = False
    methods: tuple[str, ...] = ("sft", "dpo")  # the spec's `method:` values it can train
    # `model:` may be a folder on this machine (``model.model_on_disk``): the create gets
    # the absolute path, a relative one taken from the spec file's folder
    models_on_disk: bool = False


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
    # set where a trained model is not callable until deployed or registered (Azure's ARM
    # deployment, Nebius' /v0/models): `reconciler output` prints it beside the model
    deploy_note: str | None = None
    # a profile of reconciler.yaml: the built-in provider it is an account of ("" for a
    # built-in entry itself); everything else (rules, prices, the driver) is that kind's
    kind: str = ""
    # the driver reads settings of its own from the environment beyond its key and URL
    # (Fireworks' account id, the local runs folder): the pool hands it the run's env
    driver_env: bool = False
    # an estimate of its own in place of list prices: (US dollars, tokens, one line of
    # basis) from the spec and its data's tokens (local training: device, dtype, time)
    # (the last argument: the spec file, against which a model path is resolved)
    estimator: Callable[[JobSpec, int, int | None, str], tuple[float, int, str]] | None = None

    @property
    def base(self) -> str:
        """The built-in provider this entry is (its own name, or a profile's kind)."""
        return self.kind or self.name
