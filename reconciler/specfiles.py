"""Which files of a specs tree are spec files (``discover``). Standard library only: a
replayed plan (``planmemo``) finds the tree's files again before anything heavier is
imported."""

from __future__ import annotations

import os
from pathlib import Path

SPEC_SUFFIXES = (".yaml", ".yml")  # in any case
PROJECT_FILE = "reconciler.yaml"  # at the specs root: not a spec (project.py reads it)


def discover(root: Path) -> list[Path]:
    """Every spec file under ``root``, sorted; hidden folders and the project file at the
    root are skipped."""
    return [Path(path) for path in spec_files(root)]


def spec_files(root: Path) -> list[str]:
    """``discover``'s files, as strings."""
    if root.is_file():
        return [str(root)]
    found: list[tuple[tuple[str, ...], str]] = []
    top = str(root)
    # os.walk with pruning: rglob plus a per-file stat costs a second over 10,000 specs;
    # sorted as Paths sort (by parts), without making a Path per file to sort it
    for folder, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        parts = tuple(Path(folder).parts)
        found.extend(
            ((*parts, name), os.path.join(folder, name))
            for name in files
            if name.lower().endswith(SPEC_SUFFIXES)  # .yaml, .yml, .YAML, .Yml ...
            and not name.startswith(".")
            and not (folder == top and _is_project_file(Path(folder), name))
        )
    found.sort()
    return [path for _, path in found]


def _is_project_file(root: Path, name: str) -> bool:
    """The project file, also as a case-insensitive file system may spell it (elsewhere
    ``Reconciler.yaml`` is no project file, and is read as a spec rather than ignored)."""
    if name.lower() != PROJECT_FILE:
        return False
    try:
        return name == PROJECT_FILE or os.path.samefile(root / name, root / PROJECT_FILE)
    except OSError:
        return False
