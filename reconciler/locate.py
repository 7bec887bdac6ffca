"""Problems the spec model finds, put back at the line of the YAML key they concern:
a pydantic ``loc`` followed through the node tree, unions folded to the member that got
furthest, an unknown key answered with the closest allowed one."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from .errors import SpecError
from .yamlstrict import node_line


def _locate(
    node: yaml.Node, loc: Iterable[str | int], name_missing: bool = True
) -> tuple[int, str]:
    """Follow a pydantic ``loc`` through the node tree: (line, dotted field path).

    Elements that are not keys in the data (pydantic's union member names) are
    skipped; with ``name_missing`` a last key absent from the data is still named.
    """
    line = node_line(node)
    parts: list[str] = []
    loc = list(loc)
    for i, elem in enumerate(loc):
        if isinstance(node, yaml.MappingNode):
            hit = next(
                (
                    (k, v)
                    for k, v in node.value
                    if isinstance(k, yaml.ScalarNode) and k.value == elem
                ),
                None,
            )
            if hit is not None:
                parts.append(str(elem))
                line, node = node_line(hit[0]), hit[1]
                continue
            if name_missing and i == len(loc) - 1 and isinstance(elem, str):
                parts.append(elem)  # a missing or unknown key: name it, at its parent's line
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(elem, int)
            and 0 <= elem < len(node.value)
        ):
            parts[-1:] = [f"{parts[-1]}[{elem}]"] if parts else [f"[{elem}]"]
            node = node.value[elem]
            line = node_line(node)
            continue
    return line, ".".join(parts)


def _allowed_keys(model: type[BaseModel], loc: tuple[str | int, ...]) -> list[str]:
    """The keys allowed where ``loc`` points, for 'did you mean' hints."""
    current: Any = model
    for elem in loc[:-1]:
        fields = getattr(current, "model_fields", None)
        if fields is None:
            return []
        match = next((f for n, f in fields.items() if (f.alias or n) == elem), None)
        if match is None:
            continue
        ann = match.annotation
        candidates = [ann, *getattr(ann, "__args__", ())]
        current = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
        if current is None:
            return []
    fields = getattr(current, "model_fields", {})
    return [f.alias or n for n, f in fields.items()]


def pydantic_errors(
    exc: ValidationError, node: yaml.MappingNode, file: Path, model: type[BaseModel]
) -> list[SpecError]:
    errors: list[SpecError] = []
    located = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        line, path = _locate(node, loc, err["type"] in ("missing", "extra_forbidden"))
        located.append((line, path, err, loc))
    paths = {path for _, path, _, _ in located}
    seen: set[str] = set()
    for line, path, err, loc in located:
        # a union reports every member: keep the member that got furthest into the data
        if path in seen or any(p.startswith(path + ".") for p in paths if path):
            continue
        seen.add(path)
        msg = str(err["msg"])
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, loc)
            hint = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            msg = "unknown key" + (f", did you mean {hint[0]!r}?" if hint else "")
            if allowed and not hint:
                msg += f" (allowed: {', '.join(allowed)})"
        elif err["type"] == "missing":
            msg = "required key is missing"
        elif msg.startswith("Value error, "):
            msg = msg.removeprefix("Value error, ")
        errors.append(SpecError(msg, file, line, path or None))
    return errors
