"""Where specs come from, and the provenance of each: the working tree, or a git ref.

``SpecSource`` is the one reader every command and the daemon use. With a ``git_ref``
only committed content is read (``gitref.export``), and a job's commit is that of the
snapshot; in the working tree it is ``HEAD`` of the spec's repository, ``-dirty`` when
the file was edited since. Unchanged files are not parsed or checked again between
two loads (a daemon's passes).
"""

from __future__ import annotations

import atexit
import subprocess
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from .errors import ConfigError, SpecError, SpecErrors
from .loader import SpecSet, load_tree
from .project import Project, load_project
from .providers import CATALOG
from .providers.local import estimate as local_estimate
from .speccache import SpecCache
from .validation import DesiredState, desired_state


@cache
def _rev_parse(folder: str, what: str) -> str | None:
    """``git rev-parse WHAT`` in ``folder`` (HEAD, --show-toplevel); None outside git."""
    try:
        out = subprocess.run(
            ["git", "-C", folder, "rev-parse", what],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _git_head(folder: str) -> str | None:
    return _rev_parse(folder, "HEAD")


def _git_top(folder: str) -> Path | None:
    """The top-level folder of the git work tree holding ``folder``; None outside git."""
    top = _rev_parse(folder, "--show-toplevel")
    return Path(top).resolve() if top else None


def repo_path(spec_path: str) -> str:
    """A spec's path as its repository names it (``specs/bot.yaml``); as given outside git."""
    path = Path(spec_path).resolve()
    top = _git_top(str(path.parent))
    if top is None:
        return spec_path
    try:
        return path.relative_to(top).as_posix()
    except ValueError:
        return spec_path


def git_commit(spec_path: str) -> str | None:
    """The commit a spec file comes from; ``-dirty`` when the file differs from it."""
    path = Path(spec_path)
    head = _git_head(str(path.parent.resolve()))
    if head is None:
        return None
    status = subprocess.run(
        ["git", "-C", str(path.parent.resolve()), "status", "--porcelain", "--", path.name],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return head + ("-dirty" if status.stdout.strip() else "")


def use_project(root: Path) -> tuple[Project, list[SpecError]]:
    """The project file at the specs root (or its problems); its provider profiles become
    names a spec, a ledger row or a command may use, for this run."""
    project, errors = load_project(root) if root.is_dir() else (Project(), [])
    CATALOG.use_profiles(project.profiles)
    local_estimate.configure(project.local.gpu_hour_usd)
    return project, errors


def not_a_specs_folder(specs: Path) -> ConfigError:
    """``--specs`` names no folder: absent, or a spec file given where the folder goes."""
    if specs.is_file():
        return ConfigError(
            f"--specs {specs} is a file; --specs takes the specs folder "
            f"(to check one file: reconciler validate {specs})"
        )
    return ConfigError(f"specs folder {specs} does not exist (set --specs or RECONCILER_SPECS)")


def _report_empty(specs: SpecSet, state: DesiredState, *, named: bool) -> None:
    """A folder without spec files: an error when the user named it (a typo or the
    wrong folder), a warning for the specs root (all specs removed is legitimate)."""
    for folder in specs.empty:
        if named:
            message = "no spec files in this folder (a spec file ends in .yaml or .yml)"
            state.errors.append(SpecError(message, folder))
        else:
            state.warnings.append(f"no spec files in {folder}/")


@dataclass
class SpecSource:
    """The specs tree of one invocation or daemon: read, checked, and traced to git."""

    specs: Path
    git_ref: str | None = None
    reuse: bool = False  # a daemon: keep what each file parsed to, for the next load
    # what spec files parsed to, kept between commands (speccache.py); None: not kept
    cache_dir: Path | None = None
    _snapshot: Any = None
    _registered: bool = False
    # unchanged spec files are not re-parsed, unchanged data files not re-checked
    _files: dict[Any, Any] = field(default_factory=dict)
    _data: dict[Any, Any] = field(default_factory=dict)

    @property
    def commit(self) -> str | None:
        """The commit being read with ``--git-ref`` (None for the working tree)."""
        return str(self._snapshot.commit) if self._snapshot is not None else None

    def snapshot(self, *, again: bool = False) -> Any:
        """The specs tree as committed at ``git_ref``, exported once (or ``again``: the
        ref may have moved)."""
        if self.git_ref is None:
            return None
        if self._snapshot is None or again:
            from .gitref import export

            self.close()
            self._snapshot = export(self.specs, self.git_ref)
            if not self._registered:
                atexit.register(self.close)
                self._registered = True
        return self._snapshot

    def load(self, paths: list[Path] | None = None, *, again: bool = False) -> DesiredState:
        """Every spec and data file checked; problems are collected in ``errors``."""
        return self.load_set(paths, again=again)[1]

    def load_set(
        self, paths: list[Path] | None = None, *, again: bool = False
    ) -> tuple[SpecSet, DesiredState]:
        snap = self.snapshot(again=again)
        if snap is not None:
            if paths:
                raise ConfigError("--git-ref reads the whole specs tree of a commit: give no PATH")
            project = self._project(snap.specs_dir)  # its profiles, before any spec
            store = self._store(whole=True)
            specs = load_tree([snap.specs_dir], cache=self._file_cache, store=store)
            checked = desired_state(specs, snap.specs_dir, cache=self._data_cache, store=store)
            self._save(store)
            state = self._with_project(checked, project)
            state.errors = [self._at_ref(err, snap) for err in state.errors]
            if specs.empty:
                state.warnings.append(f"no spec files in {self.specs}/ at {self.git_ref}")
            return specs, state
        if paths is None and not self.specs.is_dir():
            raise not_a_specs_folder(self.specs)
        project = self._project(self.specs)  # its profiles, before any spec
        store = self._store(whole=not paths)
        specs = load_tree(paths or [self.specs], cache=self._file_cache, store=store)
        root = self.specs if self.specs.is_dir() else (paths[0] if paths else self.specs)
        state = desired_state(specs, root, cache=self._data_cache, store=store)
        self._save(store)
        _report_empty(specs, state, named=bool(paths))
        return specs, self._with_project(state, project)

    def _store(self, *, whole: bool) -> SpecCache | None:
        """The spec cache for one load; a load of the whole tree that looks every file up
        in it (not a daemon's, which reads only files changed since its last pass) may
        prune it."""
        if self.cache_dir is None:
            return None
        return SpecCache(self.cache_dir, prune=whole and not self.reuse)

    @staticmethod
    def _save(store: SpecCache | None) -> None:
        if store is not None:
            store.save()

    @staticmethod
    def _project(root: Path) -> tuple[Project, list[SpecError]]:
        return use_project(root)

    @staticmethod
    def _with_project(state: DesiredState, loaded: tuple[Project, list[SpecError]]) -> DesiredState:
        """The namespace of the project file at the specs root, or its problems."""
        project, errors = loaded
        state.namespace, state.project_file = project.namespace, project.file
        state.errors = [*errors, *state.errors]
        return state

    @property
    def _file_cache(self) -> dict[Any, Any] | None:
        return self._files if self.reuse else None

    @property
    def _data_cache(self) -> dict[Any, Any] | None:
        return self._data if self.reuse else None

    def desired(self) -> DesiredState:
        """The desired state, or every problem raised at once (``SpecErrors``)."""
        state = self.load()
        if state.errors:
            raise SpecErrors(state.errors)
        return state

    def _at_ref(self, err: SpecError, snap: Any) -> SpecError:
        """A problem in an exported snapshot, named as ``REF:path`` rather than a temp path."""
        try:
            rel = Path(err.file).resolve().relative_to(Path(snap.root).resolve())
        except ValueError:
            return err
        return SpecError(err.message, f"{self.git_ref}:{rel}", err.line, err.field)

    def commit_of(self, spec_file: str) -> str | None:
        """Provenance: the commit being reconciled, or the working tree's (``-dirty``)."""
        if self._snapshot is not None:
            return str(self._snapshot.commit)
        return git_commit(spec_file)

    def spec_path_of(self, spec_file: str) -> str:
        """The spec's path as the repository names it (``specs/bot.yaml``), else as given."""
        if self._snapshot is None:
            return repo_path(spec_file)
        from .gitref import commit_of

        return commit_of(Path(spec_file), self._snapshot)[1]

    def close(self) -> None:
        if self._snapshot is not None:
            self._snapshot.close()
            self._snapshot = None
