"""Tolerant readers for provider JSON: every driver reads answers whose fields may be
missing, null, or of another type than documented (DESIGN: tolerate unknown fields)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def text(value: Any) -> str | None:
    """A non-empty string, else None."""
    return value if isinstance(value, str) and value else None


def integer(value: Any) -> int | None:
    """An int (or a float holding one), never a bool."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def number(value: Any) -> float | None:
    """A float from an int or float, never a bool."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok else None


def dicts(value: Any) -> list[Mapping[str, Any]]:
    """The mappings in a list (anything else dropped)."""
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def items(body: Any) -> list[Mapping[str, Any]]:
    """The objects of a list answer: ``{"data": [...]}`` or a bare list."""
    return dicts(body.get("data") if isinstance(body, Mapping) else body)


def merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Options over a payload: ``extra`` wins on conflict; nested dicts merge, so an
    option can add one sub-key without restating the rest."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


# no list is followed further than this many pages: an answer that always has more (a
# huge or wrong ``total``, a cursor that never ends) must not page for ever
MAX_PAGES = 200
