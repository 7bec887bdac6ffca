"""The strict YAML reader under the spec loader: PyYAML's C parser (when present) composes
nodes, and values are built here, where the rules live: no duplicate keys, no unknown
tags, bounded nesting (the C parser segfaults on very deep flow nesting, DESIGN §10)
and bounded alias expansion (alias bombs)."""

from __future__ import annotations

import operator
import re
from pathlib import Path
from typing import Any

import yaml

from .errors import SpecError

MAX_DEPTH = 64
MAX_NODES = 10_000  # per document, alias expansions included

_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
# plain words with a meaning (YAML 1.1 booleans and null), looked up before any regex
_WORDS = {
    w: "tag:yaml.org,2002:bool"
    for w in [
        "yes",
        "Yes",
        "YES",
        "no",
        "No",
        "NO",
        "true",
        "True",
        "TRUE",
        "false",
        "False",
        "FALSE",
        "on",
        "On",
        "ON",
        "off",
        "Off",
        "OFF",
    ]
} | {w: "tag:yaml.org,2002:null" for w in ("~", "null", "Null", "NULL", "")}


class Loader(_BaseLoader):  # type: ignore[valid-type,misc]
    """Safe loader that reads YAML 1.2 floats such as ``1e-5`` as numbers, with a fast
    tag resolver: the stock one runs its path machinery and regexes on every scalar,
    which costs more than the C parser itself on a large tree."""

    # path resolvers (yaml.add_path_resolver) are not used: the C parser calls these two
    # around every node, so they are C functions that do nothing (not Python no-ops)
    descend_resolver = staticmethod(operator.is_)  # (parent, index) -> ignored
    ascend_resolver = staticmethod(tuple)  # () -> ignored

    def resolve(self, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is yaml.ScalarNode:
            if not implicit[0]:
                return _STR
            tag = _WORDS.get(value)
            if tag is not None:
                return tag
            if value[0] in "0123456789+-.<=":
                for tag, regexp in self.yaml_implicit_resolvers.get(value[0], ()):
                    if regexp.match(value):
                        return str(tag)
            return _STR
        return _SEQ if kind is yaml.SequenceNode else _MAP


Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+(?:\.\d*)?|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)

_CONSTRUCTOR = yaml.constructor.SafeConstructor()
_SCALAR_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:timestamp",
}
_MERGE = "tag:yaml.org,2002:merge"


def key_lines(
    node: yaml.Node, prefix: tuple[str, ...] = (), depth: int = 3
) -> dict[tuple[str, ...], int]:
    out: dict[tuple[str, ...], int] = {}
    if not isinstance(node, yaml.MappingNode) or depth == 0:
        return out
    for key, value in node.value:
        if isinstance(key, yaml.ScalarNode):
            path = (*prefix, str(key.value))
            out[path] = key.start_mark.line + 1
            if depth > 1 and isinstance(value, yaml.MappingNode):
                out.update(key_lines(value, path, depth - 1))
    return out


def node_line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def check_flow_depth(text: str, file: Path) -> None:
    # Guard before parsing: the C parser recurses once per '[' / '{' level.
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return
    depth = 0
    for match in re.finditer(r"[\[\]{}]", text):
        depth += 1 if match.group() in "[{" else -1
        if depth > MAX_DEPTH:
            line = text.count("\n", 0, match.start()) + 1
            raise SpecError(f"nesting deeper than {MAX_DEPTH} levels", file, line)


# one object per distinct text value over a bulk load (ten thousand specs name the same
# provider, model and data files): the loader clears it when a load ends
SHARED: dict[str, str] = {}


class Builder:
    """Turns a node tree into plain Python values, enforcing the strict rules."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self.count = 0

    def build(self, node: yaml.Node, depth: int = 0) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise SpecError(
                f"document expands to more than {MAX_NODES} values (an alias bomb?)",
                self.file,
                node_line(node),
            )
        if depth > MAX_DEPTH:
            raise SpecError(f"nesting deeper than {MAX_DEPTH} levels", self.file, node_line(node))
        if isinstance(node, yaml.ScalarNode):
            tag = node.tag
            if tag == _STR:  # the common cases first, without the constructor's machinery
                value = node.value
                return SHARED.setdefault(value, value) if len(value) <= 256 else value
            if tag == _INT and node.value.isdigit():
                return int(node.value)
            if node.tag not in _SCALAR_TAGS:
                raise SpecError(f"unsupported YAML tag {node.tag}", self.file, node_line(node))
            if node.tag == "tag:yaml.org,2002:timestamp":
                return str(node.value)  # dates stay text: they are names, not instants, here
            return _CONSTRUCTOR.yaml_constructors[node.tag](_CONSTRUCTOR, node)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != "tag:yaml.org,2002:seq":
                raise SpecError(f"unsupported YAML tag {node.tag}", self.file, node_line(node))
            return [self.build(item, depth + 1) for item in node.value]
        if isinstance(node, yaml.MappingNode):
            if node.tag != "tag:yaml.org,2002:map":
                raise SpecError(f"unsupported YAML tag {node.tag}", self.file, node_line(node))
            return self._mapping(node, depth)
        raise SpecError("unsupported YAML node", self.file, node_line(node))  # pragma: no cover

    def _mapping(self, node: yaml.MappingNode, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        merged: dict[str, Any] = {}
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                for src in self._merge_sources(value_node, depth):
                    for k, v in src.items():
                        merged.setdefault(k, v)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise SpecError(
                    "mapping keys must be plain strings", self.file, node_line(key_node)
                )
            key = str(self.build(key_node, depth + 1))
            if key in seen:
                raise SpecError(
                    f"duplicate key {key!r} (first at line {seen[key]})",
                    self.file,
                    node_line(key_node),
                )
            seen[key] = node_line(key_node)
            result[key] = self.build(value_node, depth + 1)
        for k, v in merged.items():
            result.setdefault(k, v)
        return result

    def _merge_sources(self, node: yaml.Node, depth: int) -> list[dict[str, Any]]:
        items = node.value if isinstance(node, yaml.SequenceNode) else [node]
        out = []
        for item in items:
            value = self.build(item, depth + 1)
            if not isinstance(value, dict):
                raise SpecError("a merge key (<<) needs a mapping", self.file, node_line(item))
            out.append(value)
        return out
