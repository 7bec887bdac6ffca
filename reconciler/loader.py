"""Read spec files into ``FineTuneJob`` models, with a file and line for every problem.

YAML is composed into nodes by PyYAML's C parser (when present) and constructed
here, which is where the strict rules live: no duplicate keys, no unknown tags,
bounded nesting (the C parser segfaults on very deep flow nesting, DESIGN §10) and
bounded alias expansion (alias bombs), files no larger than ``MAX_SPEC_BYTES``.
A pydantic error is mapped back to the line of the offending key.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from . import yamlstrict
from .envrefs import literal_secrets
from .errors import SpecError
from .fanout import Batch, Pool
from .locate import pydantic_errors
from .spec import FineTuneJob
from .speccache import SpecCache, content_key, decode, encode
from .specfiles import discover
from .specparse import (
    Parsed,
    document,
    parse_document_text,
    parse_file,
    read_documents,
    read_text,
)
from .yamlstrict import (
    Builder,
    key_lines,
)


@dataclass(frozen=True)
class LoadedSpec:
    """One valid spec document and where it came from."""

    job: FineTuneJob
    file: Path  # as the user named it (relative when under the working directory)
    line: int  # 1-based line of the document start
    # the file's text and this document's place in it: the line of each key is found
    # only when a problem is reported (the node trees of ten thousand specs would cost
    # 150 MB and a slow garbage collector, their key lines 40 MB)
    text: str = field(default="", repr=False, compare=False)
    index: int = field(default=0, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.job.metadata.name

    @cached_property
    def lines(self) -> dict[tuple[str, ...], int]:
        """The line of each key down to three levels (``spec.from.job``)."""
        node = document(self.text, self.index)
        return key_lines(node) if node is not None else {}

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
        return None, {}, pydantic_errors(exc, node, shown, model)
    return value, key_lines(node), []


def validate(
    parsed: Parsed, text: str | None, shown: Path
) -> tuple[list[LoadedSpec], list[SpecError]]:
    """Phase two: each parsed document through the spec model. A document the model
    refuses is composed again from ``text``, to put each problem at its line."""
    specs: list[LoadedSpec] = []
    errors: list[SpecError] = []
    for item in parsed:
        if isinstance(item, SpecError):
            errors.append(item)
            continue
        index, data, line = item
        try:
            job = FineTuneJob.model_validate(data)
        except ValidationError as exc:
            node = document(text or "", index)
            if isinstance(node, yaml.MappingNode):
                errors.extend(pydantic_errors(exc, node, shown, FineTuneJob))
            else:  # pragma: no cover - the text parsed a moment ago
                errors.append(
                    SpecError(f"invalid spec: {exc.error_count()} problem(s)", shown, line)
                )
            continue
        share_parts(job.spec)
        specs.append(LoadedSpec(job=job, file=shown, line=line, text=text or "", index=index))
    return specs, errors


# the settings a tree's specs have in common, one instance each (see share_parts)
_PARTS: dict[Any, Any] = {}
_SHAREABLE = ("hyperparameters", "policy", "lora", "dpo")


def share_parts(spec: Any) -> None:
    """Specs with equal settings share one instance of them: the models are frozen, and
    ten thousand specs hold a few dozen distinct ``hyperparameters``, ``policy``, ``lora``
    and ``dpo`` settings (a model instance costs about a kilobyte)."""
    values = spec.__dict__
    for name in _SHAREABLE:
        part = values.get(name)
        if part is None or isinstance(part, bool):
            continue
        # equal means the same values of the same types (1, 1.0 and True are equal in
        # Python, not in a fingerprint) and the same fields set
        fields = part.__dict__.values()
        key = (
            type(part),
            tuple(fields),
            tuple(map(type, fields)),
            frozenset(part.__pydantic_fields_set__),
        )
        with contextlib.suppress(TypeError):  # an unhashable value (a list): kept as it is
            values[name] = _PARTS.setdefault(key, part)


def load_file(path: Path, shown: Path | None = None) -> tuple[list[LoadedSpec], list[SpecError]]:
    """Every spec document in one file, and every problem found in it."""
    shown = shown or display_path(path)
    text, _, parsed = parse_file(path, shown)
    return validate(parsed, text, shown)


@dataclass
class SpecSet:
    """The specs of a tree, by name, and every problem met while loading them."""

    specs: dict[str, LoadedSpec] = field(default_factory=dict)
    errors: list[SpecError] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    empty: list[Path] = field(default_factory=list)  # folders given that hold no spec file
    # the sha256 of the bytes each file was loaded from (not of a daemon's unchanged files)
    digests: dict[Path, str] = field(default_factory=dict)

    def __iter__(self) -> Iterator[LoadedSpec]:
        return iter(self.specs.values())


# path → ((mtime_ns, size), specs, errors): a daemon re-reads only the files that changed
FileCache = dict[Path, tuple[tuple[int, int], list[LoadedSpec], list[SpecError]]]


def load_tree(
    paths: Iterable[Path], cache: FileCache | None = None, store: SpecCache | None = None
) -> SpecSet:
    """Load every spec file under ``paths``; names must be unique across all of them.

    ``cache`` (a daemon's, by modification time) keeps the specs of files unchanged
    since its last load; ``store`` (``speccache``, by content) what files parsed to in
    an earlier command. The files left are parsed on every core (``fanout``).
    """
    result = SpecSet()
    try:
        with paused_gc():
            _load_into(result, paths, Path.cwd().resolve(), cache, store)
    finally:
        yamlstrict.SHARED.clear()
        _PARTS.clear()
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
            # what was loaded is kept: frozen, the collector never walks it again (without
            # this, the next young collections would walk a million objects, twice: 0.3 s
            # over 10,000 specs). A daemon unfreezes before each pass (watch.py).
            gc.freeze()
            gc.enable()


Loaded = tuple[list[LoadedSpec], list[SpecError]]
CHUNK = 1_000  # files read and parsed together: memory holds one chunk's texts and data


def _load_files(
    pairs: list[tuple[Path, Path]],
    cache: FileCache | None,
    store: SpecCache | None,
    digests: dict[Path, str],
) -> list[Loaded]:
    """The specs and problems of each ``(path, shown)``, in order."""
    out: list[Loaded | None] = [None] * len(pairs)
    stats: dict[int, tuple[int, int]] = {}
    todo: list[int] = []
    for i, (path, _) in enumerate(pairs):
        if cache is not None:
            try:
                st = path.stat()
                stats[i] = (st.st_mtime_ns, st.st_size)
            except OSError:
                pass
            hit = cache.get(path)
            if hit is not None and i in stats and hit[0] == stats[i]:
                out[i] = (hit[1], hit[2])
                continue
        todo.append(i)
    with Pool() as pool:  # forked once, at the first chunk worth sharing
        # a chunk's texts and data at a time; the next chunk's parsing is under way on
        # the other cores while this process checks the last one against the spec model
        under_way: _Chunk | None = None
        for start in range(0, len(todo), CHUNK):
            chunk = _Chunk.start(todo[start : start + CHUNK], pairs, store, digests, pool)
            if under_way is not None:
                under_way.finish(pairs, out, stats, cache, store)
            under_way = chunk
        if under_way is not None:
            under_way.finish(pairs, out, stats, cache, store)
    return [x for x in out if x is not None]


@dataclass
class _Chunk:
    """Files read, looked up in the cache, and their parsing sent to the other cores."""

    todo: list[int]
    reads: dict[int, tuple[str | None, bytes, SpecError | None]]
    keys: dict[int, str]
    known: dict[str, str]
    parse: list[int]
    batch: Batch[tuple[str, Path], tuple[Parsed, str | None]]
    step: Any

    OWN = 0.6  # this process's share of the parsing: it validates the chunk before too

    @classmethod
    def start(
        cls,
        todo: list[int],
        pairs: list[tuple[Path, Path]],
        store: SpecCache | None,
        digests: dict[Path, str],
        pool: Pool,
    ) -> _Chunk:
        reads = {i: read_text(*pairs[i]) for i in todo}
        keys = {i: content_key(raw) for i, (text, raw, _) in reads.items() if text is not None}
        digests.update((pairs[i][0], key) for i, key in keys.items())
        known = store.get_many(keys.values()) if store is not None else {}
        parse = [i for i in keys if keys[i] not in known]
        texts = [(reads[i][0] or "", pairs[i][1]) for i in parse]
        step = parse_for_cache if store is not None else parse_without_cache
        return cls(todo, reads, keys, known, parse, pool.submit(step, texts, own=cls.OWN), step)

    def finish(
        self,
        pairs: list[tuple[Path, Path]],
        out: list[Loaded | None],
        stats: dict[int, tuple[int, int]],
        cache: FileCache | None,
        store: SpecCache | None,
    ) -> None:
        parsed = dict(zip(self.parse, self.batch.result(), strict=True))
        for i in self.todo:
            text, _, problem = self.reads[i]
            shown = pairs[i][1]
            if problem is not None or text is None:
                loaded: Loaded = ([], [problem] if problem is not None else [])
            else:
                kept = self.known.get(self.keys[i])
                found = decode(kept) if kept is not None else None
                entry = None
                if found is None:  # parsed now (or a kept entry this code cannot read)
                    found, entry = parsed.pop(i) if i in parsed else self.step((text, shown))
                loaded = validate(found, text, shown)
                if entry is not None and store is not None and not loaded[1]:  # loaded cleanly
                    store.put_encoded(self.keys[i], entry)
            if cache is not None and i in stats:
                cache[pairs[i][0]] = (stats[i], *loaded)
            out[i] = loaded


def parse_for_cache(item: tuple[str, Path]) -> tuple[Parsed, str | None]:
    """Phase one, and the cache's entry for it (encoded where the parsing ran: on
    another core, under ``fanout``). No entry for a file with a YAML problem (a problem
    is reported afresh), nor for one with a value sitting literally under a key that
    names a secret (validate refuses it; the cache must not keep a second copy of it)."""
    parsed = parse_document_text(item)
    keep = not any(
        isinstance(doc, SpecError) or next(literal_secrets(doc[1]), None) is not None
        for doc in parsed
    )
    return parsed, encode(parsed) if keep else None


def parse_without_cache(item: tuple[str, Path]) -> tuple[Parsed, str | None]:
    return parse_document_text(item), None


def _load_into(
    result: SpecSet,
    paths: Iterable[Path],
    cwd: Path,
    cache: FileCache | None,
    store: SpecCache | None,
) -> None:
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
        result.files.extend(found)
        if not is_dir:
            pairs = [(path, shown_root) for path in found]
        elif shown_root == root:  # named as the user would read it: each path as found
            pairs = [(path, path) for path in found]
        else:
            pairs = [(path, shown_root / path.relative_to(root)) for path in found]
        for specs, errors in _load_files(pairs, cache, store, result.digests):
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
