"""The first phase of loading a spec file, before the spec model: its bytes read (one
read, size-capped), its YAML composed under the strict rules (``yamlstrict``) and built
into plain data, each document with its place in the file and its start line.

Pure and picklable: ``fanout`` runs it on every core, ``speccache`` keeps its results
by content. Nothing here knows the spec format; a change here changes the cache's
fingerprint (``speccache.code_fingerprint``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from .errors import SpecError
from .yamlstrict import Builder, Loader, check_flow_depth, node_line

MAX_SPEC_BYTES = 1 << 20  # a spec is a page of YAML; 1 MiB is generous


def read_text(path: Path, shown: Path) -> tuple[str | None, bytes, SpecError | None]:
    """A spec file's text (and its bytes), or its problem: too big, unreadable, not
    UTF-8, binary. One read of the size the file has (a buffered read of the limit
    would allocate a megabyte per file, and a tree may hold a hundred thousand)."""
    try:
        raw = _read_capped(path, MAX_SPEC_BYTES)
    except OSError as exc:
        return None, b"", SpecError(f"cannot read: {exc.strerror or exc}", shown)
    if len(raw) > MAX_SPEC_BYTES:
        size = max(len(raw), path.stat().st_size)
        return None, b"", SpecError(f"file is {size} bytes, over the {MAX_SPEC_BYTES} limit", shown)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, raw, SpecError("not valid UTF-8", shown, raw.count(b"\n", 0, exc.start) + 1)
    if "\x00" in text:
        at = text[: text.index("\x00")].count("\n") + 1
        return None, raw, SpecError("binary content (NUL byte)", shown, at)
    return text, raw, None


def _read_capped(path: Path, cap: int) -> bytes:
    """The bytes of a file, at most ``cap + 1`` of them (enough to tell it is too big)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        size = os.fstat(fd).st_size
        if size > cap:
            return b"\0" * (cap + 1)  # too big: its bytes are never looked at
        raw = os.read(fd, size + 1)
        if len(raw) <= size:
            return raw
        parts = [raw]  # it grew since fstat (or a size the file system does not know)
        total = len(raw)
        while total <= cap and (chunk := os.read(fd, 1 << 16)):
            parts.append(chunk)
            total += len(chunk)
        return b"".join(parts)
    finally:
        os.close(fd)


def compose(text: str, shown: Path) -> tuple[list[yaml.Node], list[SpecError]]:
    """The YAML documents of a text, composed under the strict rules, or its problem."""
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


def read_documents(path: Path, shown: Path) -> tuple[list[yaml.Node], list[SpecError]]:
    """The YAML documents of one file, composed under the strict rules, or its problem."""
    text, _, problem = read_text(path, shown)
    if problem is not None or text is None:
        return [], [problem] if problem is not None else []
    return compose(text, shown)


# What the first phase makes of one file, before the spec model: per document in
# order, (index among the file's documents, plain data, start line) or its problem.
# Plain values only, so it crosses a process boundary and a cache as JSON.
Parsed = list["tuple[int, Any, int] | SpecError"]


def parse_text(text: str, shown: Path) -> Parsed:
    """Phase one: the documents of a spec file's text as plain data, under the strict
    YAML rules. Pure: no file system, no spec model."""
    nodes, errors = compose(text, shown)
    if errors:
        return list(errors)
    out: Parsed = []
    for index, node in enumerate(nodes):
        if not isinstance(node, yaml.MappingNode):
            message = "a spec document must be a mapping (apiVersion, kind, metadata, spec)"
            out.append(SpecError(message, shown, node_line(node)))
            continue
        try:
            out.append((index, Builder(shown).build(node), node_line(node)))
        except SpecError as exc:
            out.append(exc)
    return out


def parse_document_text(item: tuple[str, Path]) -> Parsed:
    """Phase one for a file's text (``(text, shown)``, one argument: ``fanout`` maps it)."""
    text, shown = item
    parsed = parse_text(text, shown)
    if not parsed and not text.encode("utf-8").strip():
        # an editor's truncate-and-write, seen mid-save, or a file emptied by mistake: never
        # taken as "these specs were removed" (a file of comments only is a removal)
        return [SpecError("empty file (delete the file to remove its specs)", shown, 1)]
    return parsed


def parse_file(path: Path, shown: Path) -> tuple[str | None, bytes, Parsed]:
    """Phase one for a file: its text, its bytes and what its documents parse to."""
    text, raw, problem = read_text(path, shown)
    if problem is not None or text is None:
        return None, raw, [problem] if problem is not None else []
    return text, raw, parse_document_text((text, shown))


def document(text: str, index: int) -> yaml.Node | None:
    """Document ``index`` of ``text``, composed again (for a problem's line)."""
    nodes, _ = compose(text, Path("-"))
    return nodes[index] if 0 <= index < len(nodes) else None
