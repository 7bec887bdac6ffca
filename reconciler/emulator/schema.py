"""A small JSON-Schema subset for checking request bodies, answering the first problem.

The emulator cannot lean on ``provider-specs/`` at run time (it ships without them), so
each provider module writes the part of its request schema it enforces in this form:

    {"type": "object", "required": [...], "properties": {...}, "extra": False}

Keys understood: ``type`` (a name or a list of names), ``enum``, ``properties``,
``required``, ``extra`` (allow unknown keys; default: only when no ``properties``),
``items``, ``anyOf``, ``minimum``, ``maximum``, ``exclusiveMinimum``, ``minLength``,
``maxLength``, ``maxItems``, ``maxProperties``, ``values`` (schema of every value of a map),
and ``discriminator`` + ``cases`` (an object checked by the case its discriminator names).
Each provider turns a ``Problem`` into its own error body.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Node = dict[str, Any]


@dataclass(frozen=True)
class Problem:
    """What is wrong and where; ``kind`` is one of missing, extra, type, enum, too_long,
    too_short, too_small, too_big, too_many."""

    loc: tuple[str | int, ...]
    kind: str
    message: str
    expected: str = ""
    value: Any = None
    limit: Any = None

    @property
    def param(self) -> str:
        """The location in dotted form (``hyperparameters.n_epochs``, ``training_files.0``)."""
        return ".".join(str(part) for part in self.loc)


def type_name(value: Any) -> str:
    """The JSON name of a value's type, as error messages say it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _is(value: Any, name: str) -> bool:
    actual = type_name(value)
    if name == "number":
        return actual in ("integer", "number")
    if name == "integer" and actual == "number":
        return float(value).is_integer()  # 3.0 is an integer in JSON
    return actual == name


def check(value: Any, node: Node, loc: tuple[str | int, ...] = ()) -> Problem | None:
    """The first problem of ``value`` against ``node``, or None."""
    if "anyOf" in node:
        problems: list[Problem] = []
        for option in node["anyOf"]:
            problem = check(value, option, loc)
            if problem is None:
                return None
            problems.append(problem)
        if all(p.kind == "type" and p.loc == loc for p in problems):
            expected = " or ".join(p.expected for p in problems)
            return Problem(loc, "type", f"expected {expected}", expected, value)
        # the alternative the value's type fits says the most ("lora_r is required" beats
        # "expected null", "must be <= 50" beats "must be 'auto'"); then the deepest
        rank = {"type": 0, "enum": 1}
        return max(problems, key=lambda p: (rank.get(p.kind, 2), len(p.loc)))
    if "discriminator" in node and isinstance(value, dict):
        key = node["discriminator"]
        if key not in value:
            return Problem((*loc, key), "missing", "is required")
        cases: dict[str, Node] = node["cases"]
        if value[key] not in cases:
            allowed = ", ".join(repr(v) for v in cases)
            return Problem(
                (*loc, key), "enum", f"must be one of {allowed}", allowed, value[key], list(cases)
            )
        return check(value, cases[value[key]], loc)
    types = node.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else list(types)
        if not any(_is(value, name) for name in names):
            expected = " or ".join(names)
            return Problem(loc, "type", f"expected {expected}", expected, value)
    if "enum" in node and value not in node["enum"]:
        allowed = ", ".join(repr(v) for v in node["enum"])
        return Problem(loc, "enum", f"must be one of {allowed}", allowed, value, node["enum"])
    if isinstance(value, str):
        return _check_string(value, node, loc)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _check_number(value, node, loc)
    if isinstance(value, list):
        if "maxItems" in node and len(value) > node["maxItems"]:
            limit = node["maxItems"]
            return Problem(loc, "too_many", f"at most {limit} items", value=value, limit=limit)
        if "items" in node:
            for i, item in enumerate(value):
                if problem := check(item, node["items"], (*loc, i)):
                    return problem
    if isinstance(value, dict):
        return _check_object(value, node, loc)
    return None


def _check_string(value: str, node: Node, loc: tuple[str | int, ...]) -> Problem | None:
    if "maxLength" in node and len(value) > node["maxLength"]:
        limit = node["maxLength"]
        return Problem(loc, "too_long", f"at most {limit} characters", value=value, limit=limit)
    if "minLength" in node and len(value) < node["minLength"]:
        limit = node["minLength"]
        return Problem(loc, "too_short", f"at least {limit} characters", value=value, limit=limit)
    return None


def _check_number(value: float, node: Node, loc: tuple[str | int, ...]) -> Problem | None:
    if "minimum" in node and value < node["minimum"]:
        limit = node["minimum"]
        return Problem(loc, "too_small", f"must be >= {limit}", value=value, limit=limit)
    if "exclusiveMinimum" in node and value <= node["exclusiveMinimum"]:
        limit = node["exclusiveMinimum"]
        return Problem(loc, "too_small", f"must be > {limit}", value=value, limit=limit)
    if "maximum" in node and value > node["maximum"]:
        limit = node["maximum"]
        return Problem(loc, "too_big", f"must be <= {limit}", value=value, limit=limit)
    return None


def _check_object(value: dict[str, Any], node: Node, loc: tuple[str | int, ...]) -> Problem | None:
    props: dict[str, Node] = node.get("properties", {})
    for key in node.get("required", ()):
        if key not in value:
            return Problem((*loc, key), "missing", "is required")
    if not node.get("extra", not props):
        for key in value:
            if key not in props:
                return Problem((*loc, key), "extra", "is not a known field", value=value[key])
    if "maxProperties" in node and len(value) > node["maxProperties"]:
        limit = node["maxProperties"]
        return Problem(loc, "too_many", f"at most {limit} entries", value=value, limit=limit)
    for key, item in value.items():
        sub = props.get(key, node.get("values"))
        if sub is not None and (problem := check(item, sub, (*loc, key))):
            return problem
    return None


# shorthands for the provider schemas
STR: Node = {"type": "string"}
INT: Node = {"type": "integer"}
NUM: Node = {"type": "number"}
BOOL: Node = {"type": "boolean"}
ANY: Node = {}


def nullable(node: Node) -> Node:
    return {"anyOf": [{"type": "null"}, node]}
