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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from .errors import SpecError
from .spec import FineTuneJob
from .yamlstrict import (
    Builder,
    Loader,
    check_flow_depth,
    key_lines,
    node_line,
)

MAX_SPEC_BYTES = 1 << 20  # a spec is a page of YAML; 1 MiB is generous
SPEC_SUFFIXES = (".yaml", ".yml")  # in any case
PROJECT_FILE = "reconciler.yaml"  # at the specs root: not a spec (project.py reads it)


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


def display_path(path: Path, cwd: Path | None = None) -> Path:
    """A path as a user wants to read it: relative to the working directory when inside it."""
    try:
        return path.resolve().relative_to(cwd or Path.cwd().resolve())
    except ValueError:
        return path


def discover(root: Path) -> list[Path]:
    """Every spec file under ``root``, sorted; hidden folders and the project file at the
    root are skipped."""
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
            if name.lower().endswith(SPEC_SUFFIXES)  # .yaml, .yml, .YAML, .Yml ...
            and not name.startswith(".")
            and not (folder == str(root) and _is_project_file(base, name))
        )
    return sorted(found)


def _is_project_file(root: Path, name: str) -> bool:
    """The project file, also as a case-insensitive file system may spell it (elsewhere
    ``Reconciler.yaml`` is no project file, and is read as a spec rather than ignored)."""
    if name.lower() != PROJECT_FILE:
        return False
    try:
        return name == PROJECT_FILE or os.path.samefile(root / name, root / PROJECT_FILE)
    except OSError:
        return False


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


def _pydantic_errors(
    exc: ValidationError, node: yaml.MappingNode, file: Path, model: type[BaseModel] = FineTuneJob
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


def read_documents(path: Path, shown: Path) -> tuple[list[yaml.Node], list[SpecError]]:
    """The YAML documents of one file, composed under the strict rules, or its problem."""
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
    try:
        check_flow_depth(text, shown)
        return [n for n in yaml.compose_all(text, Loader=Loader) if n is not None], []
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


def _blank(path: Path) -> bool:
    try:
        return not path.read_bytes().strip()
    except OSError:
        return False


M = TypeVar("M", bound=BaseModel)


def load_model(
    path: Path, model: type[M], what: str
) -> tuple[M | None, dict[tuple[str, ...], int], list[SpecError]]:
    """One document of ``model`` in ``path`` (a project file): the value, its key lines,
    and every problem, each at its line."""
    shown = display_path(path)
    nodes, errors = read_documents(path, shown)
    if errors:
        return None, {}, errors
    if len(nodes) != 1 or not isinstance(nodes[0], yaml.MappingNode):
        return None, {}, [SpecError(f"must hold exactly one mapping: {what}", shown, 1)]
    node = nodes[0]
    try:
        value = model.model_validate(Builder(shown).build(node))
    except SpecError as exc:
        return None, {}, [exc]
    except ValidationError as exc:
        return None, {}, _pydantic_errors(exc, node, shown, model)
    return value, key_lines(node), []


def load_file(path: Path, shown: Path | None = None) -> tuple[list[LoadedSpec], list[SpecError]]:
    """Every spec document in one file, and every problem found in it."""
    shown = shown or display_path(path)
    nodes, errors = read_documents(path, shown)
    if errors:
        return [], errors
    specs: list[LoadedSpec] = []
    if not nodes and _blank(path):
        # an editor's truncate-and-write, seen mid-save, or a file emptied by mistake: never
        # taken as "these specs were removed" (a file of comments only is a removal)
        return [], [SpecError("empty file (delete the file to remove its specs)", shown, 1)]
    for node in nodes:
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
            node_line(node),
        )
    data = Builder(file).build(node)
    job = FineTuneJob.model_validate(data)
    return LoadedSpec(job=job, file=file, line=node_line(node), lines=key_lines(node))


@dataclass
class SpecSet:
    """The specs of a tree, by name, and every problem met while loading them."""

    specs: dict[str, LoadedSpec] = field(default_factory=dict)
    errors: list[SpecError] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    empty: list[Path] = field(default_factory=list)  # folders given that hold no spec file

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
        found = discover(root)
        if not found:
            result.empty.append(shown_root)
        for path in found:
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
