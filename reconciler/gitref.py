"""Specs from a git commit: resolve ``--git-ref``, export the specs tree at it, watch it move.

Only committed content is ever read: the specs folder's tree at the commit is streamed
out of ``git archive`` into a fresh temp folder (``Snapshot``), with the folder's path
relative to the repository top-level kept, so relative data paths resolve as they would
in a checkout. Uncommitted edits and untracked files never appear. Plain ``git``
subprocesses only. Caveat: ``git archive`` honours ``export-ignore`` attributes.
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import IO

from .errors import ConfigError

_TIMEOUT = 30.0


@dataclass(frozen=True)
class Snapshot:
    """The specs tree as committed at ``commit`` (what ``ref`` named), under ``root``."""

    ref: str
    commit: str  # full sha
    root: Path  # temp folder standing in for the repository top-level
    specs_dir: Path  # root / the specs folder's path relative to the top-level
    repo: Path  # the repository's working-tree top-level it was exported from

    @property
    def label(self) -> str:
        """``origin/main (0123456789ab)``, for messages and plan headers."""
        short = self.commit[:12]
        return short if self.ref in (self.commit, short) else f"{self.ref} ({short})"

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _git(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["git", "-C", str(folder), *args],
            capture_output=True,
            text=True,
            timeout=_TIMEOUT,
            check=False,
        )
    except FileNotFoundError as exc:
        raise ConfigError("--git-ref needs git, and git is not on PATH") from exc
    except (OSError, subprocess.SubprocessError) as exc:
        raise ConfigError(f"git failed in {folder}: {exc}") from exc


def _check_ref(ref: str) -> None:
    # a ref starting with '-' would be read by git as an option
    if not ref.strip() or ref.startswith("-") or "\n" in ref:
        raise ConfigError(f"--git-ref {ref!r}: not a git ref or commit")


def toplevel(folder: Path) -> Path:
    """The top-level of the working tree holding ``folder`` (which need not exist)."""
    here = folder.resolve()
    existing = next((p for p in (here, *here.parents) if p.is_dir()), here)
    proc = _git(existing, "rev-parse", "--show-toplevel")
    if proc.returncode != 0 or not proc.stdout.strip():
        raise ConfigError(f"--git-ref: {folder} is not inside a git working tree")
    return Path(proc.stdout.strip()).resolve()


def resolve(repo_dir: Path, ref: str) -> str:
    """The full sha of the commit ``ref`` names; one ``git rev-parse``."""
    _check_ref(ref)
    proc = _git(repo_dir, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    sha = proc.stdout.strip()
    if proc.returncode == 0 and sha:
        return sha
    if _git(repo_dir, "rev-parse", "--git-dir").returncode != 0:
        raise ConfigError(f"--git-ref {ref}: {repo_dir} is not inside a git repository")
    raise ConfigError(f"--git-ref {ref}: no such commit in {repo_dir}")


def export(specs_dir: Path, ref: str, *, commit: str | None = None) -> Snapshot:
    """Materialise the specs folder as committed at ``ref`` into a temp folder.

    ``commit``, when given, is the sha ``ref`` was already resolved to (by a
    ``RefWatcher``), so the snapshot is exactly the commit that was noticed.
    """
    repo = toplevel(specs_dir)
    try:
        rel = PurePosixPath(specs_dir.resolve().relative_to(repo).as_posix())
    except ValueError as exc:
        raise ConfigError(f"--git-ref: {specs_dir} is outside the repository {repo}") from exc
    sha = commit or resolve(repo, ref)
    shown = "the repository root" if rel == PurePosixPath(".") else f"specs folder {rel}/"
    kind = _git(repo, "cat-file", "-t", f"{sha}:{'' if str(rel) == '.' else rel}")
    if kind.returncode != 0 or kind.stdout.strip() != "tree":
        raise ConfigError(f"{shown} does not exist at {ref} ({sha[:12]})")
    root = Path(tempfile.mkdtemp(prefix="reconciler-specs-")).resolve()
    snapshot = Snapshot(ref, sha, root, root / rel, repo)
    pathspec = [] if str(rel) == "." else ["--", str(rel)]
    try:
        _archive_into(repo, sha, pathspec, root)
    except BaseException:
        snapshot.close()
        raise
    snapshot.specs_dir.mkdir(parents=True, exist_ok=True)
    return snapshot


def _archive_into(repo: Path, sha: str, pathspec: list[str], dest: Path) -> None:
    # literal: a folder named like a glob ("specs*") must not pull in its neighbours
    cmd = ["git", "--literal-pathspecs", "-C", str(repo), "archive", "--format=tar", sha]
    cmd += pathspec
    # stderr to a file, not a pipe: a pipe nobody drains could stall git mid-stream
    with tempfile.TemporaryFile() as errors:
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errors)
        except OSError as exc:
            raise ConfigError(f"--git-ref: cannot run git archive: {exc}") from exc
        assert proc.stdout is not None
        try:
            extract_tar(proc.stdout, dest)
        finally:
            proc.stdout.close()
            code = proc.wait()
        errors.seek(0)
        message = errors.read().decode(errors="replace").strip()
    if code != 0:
        first = message.splitlines()[0] if message else f"exit {code}"
        raise ConfigError(f"--git-ref: git archive {sha[:12]} failed: {first}")


def _member_filter(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    # stricter than "data", which would strip a leading '/' and allow 'a/../b'
    name = member.name
    if name.startswith(("/", "\\")) or ".." in PurePosixPath(name).parts:
        raise ConfigError(f"--git-ref: refusing unsafe path in archive: {name!r}")
    return tarfile.data_filter(member, dest)


def extract_tar(stream: IO[bytes], dest: Path) -> None:
    """Extract a tar stream under ``dest``; refuse absolute paths, ``..`` and escaping links."""
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            tar.extractall(dest, filter=_member_filter)
    except tarfile.FilterError as exc:
        raise ConfigError(f"--git-ref: refusing unsafe entry in archive: {exc}") from exc
    except tarfile.TarError as exc:
        raise ConfigError(f"--git-ref: unreadable archive: {exc}") from exc


class RefWatcher:
    """Notices when ``ref`` points at another commit (after a fetch, a push, an update-ref)."""

    def __init__(self, repo_dir: Path, ref: str) -> None:
        self.repo_dir = repo_dir
        self.ref = ref
        self.last = resolve(repo_dir, ref)

    def current(self) -> str:
        """The sha ``ref`` names now (does not change what ``moved`` compares with)."""
        return resolve(self.repo_dir, self.ref)

    def moved(self) -> str | None:
        """The new sha when ``ref`` moved since construction or the last call, else None."""
        now = resolve(self.repo_dir, self.ref)
        if now == self.last:
            return None
        self.last = now
        return now


def commit_of(spec_path_in_snapshot: Path, snapshot: Snapshot) -> tuple[str, str]:
    """(commit sha, the spec's path relative to the repository top-level), for provenance."""
    try:
        rel = spec_path_in_snapshot.resolve().relative_to(snapshot.root)
    except ValueError as exc:
        raise ConfigError(
            f"{spec_path_in_snapshot} is not in the snapshot of {snapshot.label}"
        ) from exc
    return snapshot.commit, rel.as_posix()
