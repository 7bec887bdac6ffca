"""``--target`` and ``--exclude``: which specs a plan acts on (Terraform's ``-target``,
OpenTofu's ``-exclude``). Names or shell-style globs; a target brings the specs it
starts ``from`` along, since it cannot run without them. Pure module."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from .errors import ConfigError
from .model import DesiredJob


@dataclass(frozen=True)
class Selection:
    targets: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    replace: tuple[str, ...] = ()

    @property
    def everything(self) -> bool:
        return not (self.targets or self.excludes)

    def as_json(self) -> dict[str, list[str]]:
        return {
            "target": list(self.targets),
            "exclude": list(self.excludes),
            "replace": list(self.replace),
        }


def _matches(patterns: Iterable[str], name: str) -> bool:
    return any(fnmatchcase(name, p) for p in patterns)


def chooser(
    selection: Selection, desired: Sequence[DesiredJob], tracked: Iterable[str]
) -> Callable[[str], bool]:
    """A predicate over spec names for ``selection``; a pattern that matches nothing
    (neither a spec nor a job the ledger tracks) is an error, as a typo would be."""
    known = {d.name for d in desired} | set(tracked)
    for option, patterns in (("--target", selection.targets), ("--exclude", selection.excludes)):
        for p in patterns:
            if not any(fnmatchcase(n, p) for n in known):
                raise ConfigError(f"{option} {p!r} matches no spec and no tracked job")
    for name in selection.replace:
        if name not in {d.name for d in desired}:
            raise ConfigError(f"--replace {name!r}: no spec of that name")
    if selection.everything:
        return lambda name: True
    chosen = {n for n in known if not selection.targets or _matches(selection.targets, n)}
    upstream = {d.name: d.spec.from_.job for d in desired if d.spec.from_ is not None}
    for name in list(chosen):  # what a target starts from comes along
        seen = name
        while seen in upstream and upstream[seen] not in chosen:
            seen = upstream[seen]
            chosen.add(seen)
    chosen = {n for n in chosen if not _matches(selection.excludes, n)}
    return chosen.__contains__
