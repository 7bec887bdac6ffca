"""The providers' official OpenAPI extracts (../shared/provider-specs) as validators.

One place for the rewrites every test needs: OpenAPI 3.0 ``nullable`` left in these 3.1
documents, and Together's self-contradicting scheduler ``oneOf``. Tests skip with a
clear reason when the extracts are not beside the project.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

SPECS = Path(__file__).resolve().parents[2] / "shared" / "provider-specs"
SKIP_REASON = (
    "../shared/provider-specs not present: wire-format check needs the official OpenAPI extract"
)


def require_specs(provider: str | None = None) -> None:
    path = SPECS / f"{provider}.yaml" if provider else SPECS
    if not path.exists():
        pytest.skip(SKIP_REASON)


def _nullable(node: Any) -> Any:
    """``nullable: true`` (OpenAPI 3.0) → null or the schema (JSON Schema 2020-12)."""
    if isinstance(node, list):
        return [_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _nullable(value) for key, value in node.items()}
    if node.pop("nullable", None) is True:
        return {"anyOf": [{"type": "null"}, node]}
    return node


@functools.cache
def document(provider: str) -> dict[str, Any]:
    doc: dict[str, Any] = _nullable(
        yaml.safe_load((SPECS / f"{provider}.yaml").read_text(encoding="utf-8"))
    )
    if provider == "together":
        # LinearLRSchedulerArgs has no required keys and allows extra ones, so every cosine
        # args object also matches it and the spec's oneOf rejects exactly what the SDK
        # sends; anyOf keeps both checks without that contradiction
        schemas = doc["components"]["schemas"]
        scheduler = schemas["LRScheduler"]["properties"]["lr_scheduler_args"]
        scheduler["anyOf"] = scheduler.pop("oneOf")
    return doc


def validator(provider: str, pointer: str, *, formats: bool = False) -> Callable[[Any], None]:
    """A function raising ``ValidationError`` unless an instance fits the schema at
    ``pointer`` (a JSON pointer into the provider's document); skips when it is absent."""
    require_specs(provider)
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    uri = f"urn:{provider}-openapi"
    resource = Resource.from_contents(
        copy.deepcopy(document(provider)), default_specification=DRAFT202012
    )
    registry: Registry[Any] = Registry().with_resource(uri, resource)
    checker = Draft202012Validator.FORMAT_CHECKER if formats else None
    validate: Callable[[Any], None] = Draft202012Validator(
        {"$ref": f"{uri}#{pointer}"}, registry=registry, format_checker=checker
    ).validate
    return validate
