"""Read spec files into ``FineTuneJob`` models, with a file and line for every problem.

YAML is composed into nodes by PyYAML's C parser (when present) and constructed
here, which is where the strict rules live: no duplicate keys, no unknown tags,
bounded nesting (the C parser segfaults on very deep flow nesting, DESIGN §10) and
bounded alias expansion (alias bombs), files no larger than ``MAX_SPEC_BYTES``.
A pydantic error is mapped back to the line of the offending key.
"""

from __future__ import annotations

import contextlib
import difflib
import gc
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from .errors import SpecError
from .spec import FineTuneJob

MAX_SPEC_BYTES = 1 << 20  # a spec is a page of YAML; 1 MiB is generous
MAX_DEPTH = 64
MAX_NODES = 10_000  # per document, alias expansions included
SPEC_SUFFIXES = (".yaml", ".yml")

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


class _Loader(_BaseLoader):  # type: ignore[valid-type,misc]
    """Safe loader that reads YAML 1.2 floats such as ``1e-5`` as numbers, with a fast
    tag resolver: the stock one runs its path machinery and regexes on every scalar,
    which costs more than the C parser itself on a large tree."""

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


_Loader.add_implicit_resolver(
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


@dataclass(frozen=True)
class LoadedSpec:
    """One valid spec document and where it came from."""

    job: FineTuneJob
    file: Path  # as the user named it (relative when under the working directory)
    line: int  # 1-based line of the document start
    # the line of each key down to three levels (spec.from.job); the node tree itself is
    # not kept: ten thousand of them cost 150 MB and a slow garbage collector
    lines: dict[tuple[str, ...], int] = field(repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.job.metadata.name

    def line_of(self, *path: str) -> int:
        """The line of the key at ``path`` (or of its nearest present parent)."""
        for end in range(len(path), 0, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return self.line


def _key_lines(
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
                out.update(_key_lines(value, path, depth - 1))
    return out


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def display_path(path: Path, cwd: Path | None = None) -> Path:
    """A path as a user wants to read it: relative to the working directory when inside it."""
    try:
        return path.resolve().relative_to(cwd or Path.cwd().resolve())
    except ValueError:
        return path


def discover(root: Path) -> list[Path]:
    """Every spec file under ``root``, sorted; hidden folders are skipped."""
    if root.is_file():
        return [root]
    found: list[Path] = []
    # os.walk with pruning: rglob plus a per-file stat costs a second over 10,000 specs
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        base = Path(folder)
        found.extend(
            base / name
            for name in files
            if name.endswith(SPEC_SUFFIXES) and not name.startswith(".")
        )
    return sorted(found)


def _check_flow_depth(text: str, file: Path) -> None:
    # Guard before parsing: the C parser recurses once per '[' / '{' level.
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return
    depth = 0
    for match in re.finditer(r"[\[\]{}]", text):
        depth += 1 if match.group() in "[{" else -1
        if depth > MAX_DEPTH:
            line = text.count("\n", 0, match.start()) + 1
            raise SpecError(f"nesting deeper than {MAX_DEPTH} levels", file, line)


class _Builder:
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
                _line(node),
            )
        if depth > MAX_DEPTH:
            raise SpecError(f"nesting deeper than {MAX_DEPTH} levels", self.file, _line(node))
        if isinstance(node, yaml.ScalarNode):
            tag = node.tag
            if tag == _STR:  # the common cases first, without the constructor's machinery
                return node.value
            if tag == _INT and node.value.isdigit():
                return int(node.value)
            if node.tag not in _SCALAR_TAGS:
                raise SpecError(f"unsupported YAML tag {node.tag}", self.file, _line(node))
            if node.tag == "tag:yaml.org,2002:timestamp":
                return str(node.value)  # dates stay text: they are names, not instants, here
            return _CONSTRUCTOR.yaml_constructors[node.tag](_CONSTRUCTOR, node)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != "tag:yaml.org,2002:seq":
                raise SpecError(f"unsupported YAML tag {node.tag}", self.file, _line(node))
            return [self.build(item, depth + 1) for item in node.value]
        if isinstance(node, yaml.MappingNode):
            if node.tag != "tag:yaml.org,2002:map":
                raise SpecError(f"unsupported YAML tag {node.tag}", self.file, _line(node))
            return self._mapping(node, depth)
        raise SpecError("unsupported YAML node", self.file, _line(node))  # pragma: no cover

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
                raise SpecError("mapping keys must be plain strings", self.file, _line(key_node))
            key = str(self.build(key_node, depth + 1))
            if key in seen:
                raise SpecError(
                    f"duplicate key {key!r} (first at line {seen[key]})", self.file, _line(key_node)
                )
            seen[key] = _line(key_node)
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
                raise SpecError("a merge key (<<) needs a mapping", self.file, _line(item))
            out.append(value)
        return out


def _locate(
    node: yaml.Node, loc: Iterable[str | int], name_missing: bool = True
) -> tuple[int, str]:
    """Follow a pydantic ``loc`` through the node tree: (line, dotted field path).

    Elements that are not keys in the data (pydantic's union member names) are
    skipped; with ``name_missing`` a last key absent from the data is still named.
    """
    line = _line(node)
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
                line, node = _line(hit[0]), hit[1]
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
            line = _line(node)
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


def _pydantic_errors(exc: ValidationError, node: yaml.MappingNode, file: Path) -> list[SpecError]:
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
            allowed = _allowed_keys(FineTuneJob, loc)
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


def load_file(path: Path, shown: Path | None = None) -> tuple[list[LoadedSpec], list[SpecError]]:
    """Every spec document in one file, and every problem found in it."""
    shown = shown or display_path(path)
    try:
        size = path.stat().st_size
        if size > MAX_SPEC_BYTES:
            return [], [SpecError(f"file is {size} bytes, over the {MAX_SPEC_BYTES} limit", shown)]
        raw = path.read_bytes()
    except OSError as exc:
        return [], [SpecError(f"cannot read: {exc.strerror or exc}", shown)]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [], [SpecError("not valid UTF-8", shown, raw.count(b"\n", 0, exc.start) + 1)]
    if "\x00" in text:
        return [], [
            SpecError(
                "binary content (NUL byte)", shown, text[: text.index("\x00")].count("\n") + 1
            )
        ]
    specs: list[LoadedSpec] = []
    errors: list[SpecError] = []
    try:
        _check_flow_depth(text, shown)
        nodes = list(yaml.compose_all(text, Loader=_Loader))
    except SpecError as exc:
        return [], [exc]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        return [], [SpecError(f"invalid YAML: {problem}", shown, line)]
    except yaml.reader.ReaderError as exc:
        at = text.count("\n", 0, exc.position) + 1
        return [], [SpecError(f"invalid YAML: unacceptable character {exc.character!r}", shown, at)]
    except yaml.YAMLError as exc:
        return [], [SpecError(f"invalid YAML: {exc}", shown)]
    for node in nodes:
        if node is None:
            continue
        try:
            spec = _load_document(node, shown)
        except SpecError as exc:
            errors.append(exc)
            continue
        except ValidationError as exc:
            assert isinstance(node, yaml.MappingNode)  # only mappings reach pydantic
            errors.extend(_pydantic_errors(exc, node, shown))
            continue
        specs.append(spec)
    return specs, errors


def _load_document(node: yaml.Node, file: Path) -> LoadedSpec:
    if not isinstance(node, yaml.MappingNode):
        raise SpecError(
            "a spec document must be a mapping (apiVersion, kind, metadata, spec)",
            file,
            _line(node),
        )
    data = _Builder(file).build(node)
    job = FineTuneJob.model_validate(data)
    return LoadedSpec(job=job, file=file, line=_line(node), lines=_key_lines(node))


@dataclass
class SpecSet:
    """The specs of a tree, by name, and every problem met while loading them."""

    specs: dict[str, LoadedSpec] = field(default_factory=dict)
    errors: list[SpecError] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    def __iter__(self) -> Iterator[LoadedSpec]:
        return iter(self.specs.values())


# path → ((mtime_ns, size), specs, errors): a daemon re-reads only the files that changed
FileCache = dict[Path, tuple[tuple[int, int], list[LoadedSpec], list[SpecError]]]


def load_tree(paths: Iterable[Path], cache: FileCache | None = None) -> SpecSet:
    """Load every spec file under ``paths``; names must be unique across all of them."""
    result = SpecSet()
    with paused_gc():
        _load_into(result, paths, Path.cwd().resolve(), cache)
    return result


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection during a bulk load: it allocates millions of
    short-lived objects and no cycles worth chasing, and the collector would triple
    pydantic's time (DESIGN §10). Reference counting still frees everything."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def _load_cached(
    path: Path, shown: Path, cache: FileCache | None
) -> tuple[list[LoadedSpec], list[SpecError]]:
    if cache is None:
        return load_file(path, shown)
    try:
        st = path.stat()
        key = (st.st_mtime_ns, st.st_size)
    except OSError:
        return load_file(path, shown)
    hit = cache.get(path)
    if hit is not None and hit[0] == key:
        return hit[1], hit[2]
    specs, errors = load_file(path, shown)
    cache[path] = (key, specs, errors)
    return specs, errors


def _load_into(result: SpecSet, paths: Iterable[Path], cwd: Path, cache: FileCache | None) -> None:
    for root in paths:
        if not root.exists():
            result.errors.append(SpecError("no such file or directory", display_path(root, cwd)))
            continue
        # resolve the root once; files under it are shown relative to it (a resolve per
        # file is a dozen syscalls, and a tree may hold ten thousand specs)
        shown_root = display_path(root, cwd)
        is_dir = root.is_dir()
        for path in discover(root):
            result.files.append(path)
            shown = shown_root / path.relative_to(root) if is_dir else shown_root
            specs, errors = _load_cached(path, shown, cache)
            result.errors.extend(errors)
            for spec in specs:
                first = result.specs.get(spec.name)
                if first is not None:
                    result.errors.append(
                        SpecError(
                            f"duplicate job name {spec.name!r} (first defined at "
                            f"{first.file}:{first.line_of('metadata', 'name')})",
                            spec.file,
                            spec.line_of("metadata", "name"),
                            "metadata.name",
                        )
                    )
                    continue
                result.specs[spec.name] = spec
