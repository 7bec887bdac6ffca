"""Secrets by reference only: ``wandb: {api_key: {env: WANDB_API_KEY}}``,
``huggingface: {token: {env: HF_TOKEN}}``, or one in options.

A spec, the ledger, a saved plan and every log hold the reference; the value is read from
the environment at the moment of the call and registered with ``redact``, so it is
scrubbed from anything printed. A literal value under a key that names a key, token,
secret or password is refused by ``validate``, with the environment form to use. Pure
apart from ``resolve``, which reads the environment it is given.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

from .errors import ConfigError
from .model import CreateRequest
from .redact import register

_SECRET_KEY = re.compile(r"(?:^|_|-)(?:api_?key|key|token|secret|password|passwd)(?:$|_|-)", re.I)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def is_ref(value: Any) -> bool:
    """``{env: NAME}``: a reference to an environment variable."""
    return (
        isinstance(value, Mapping)
        and set(value) == {"env"}
        and isinstance(value["env"], str)
        and bool(_ENV_NAME.match(value["env"]))
    )


@functools.lru_cache(maxsize=4096)  # a tree's specs repeat a few dozen key names
def names_a_secret(key: str) -> bool:
    return bool(_SECRET_KEY.search(key))


def literal_secrets(options: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(dotted path, key) of every literal value held under a key that names a secret."""
    for key, value in options.items():
        if isinstance(value, (dict, Mapping)):
            if "env" in value and len(value) == 1:
                continue  # a reference (a malformed one: bad_refs says so)
            yield from literal_secrets(value, f"{prefix}{key}.")
        elif value not in (None, "", False) and names_a_secret(str(key)):
            yield f"{prefix}{key}", str(key)


def bad_refs(options: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """Paths of ``{env: …}`` mappings whose variable name is not one."""
    for key, value in options.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            if "env" in value and not is_ref(value):
                yield path
            elif not is_ref(value):
                yield from bad_refs(value, path + ".")


def env_form(key: str) -> str:
    """The reference a user should write for a literal secret under ``key``."""
    return "{env: " + re.sub(r"[^A-Za-z0-9]+", "_", key).upper() + "}"


def resolve(
    options: Mapping[str, Any], env: Mapping[str, str], where: str = "options"
) -> dict[str, Any]:
    """The options with every reference replaced by its variable's value (registered as a
    secret); a variable that is not set is a ConfigError naming it and the field."""
    out: dict[str, Any] = {}
    for key, value in options.items():
        if is_ref(value):
            name = value["env"]
            secret = env.get(name)
            if secret is None or secret == "":
                raise ConfigError(f"{name} is not set: spec.{where}.{key} reads it")
            register(secret)
            out[key] = secret
        elif isinstance(value, Mapping):
            out[key] = resolve(value, env, f"{where}.{key}")
        else:
            out[key] = value
    return out


def resolve_request(request: CreateRequest, env: Mapping[str, str]) -> CreateRequest:
    """The request as it is sent: every reference in its options, its ``wandb`` and its
    ``huggingface`` block replaced by its variable's value (just before the create call)."""
    return replace(
        request,
        options=resolve(request.options, env),
        wandb=resolve(request.wandb, env, "wandb") if request.wandb else request.wandb,
        huggingface=(
            resolve(request.huggingface, env, "huggingface")
            if request.huggingface
            else request.huggingface
        ),
    )
