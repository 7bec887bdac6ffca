"""A plan replayed: ``plan --offline`` whose every input is as it was at the last such
plan prints what that plan printed, without loading, checking or planning again.

A plan is a function of its inputs (DESIGN §3: the planner reads no clock but the one it
is given, and no file). Each input is recorded with the plan and checked before a replay:

- **the command**: its arguments, working directory and environment (one sha256 of all
  of it; no value is kept), whether stdout and stderr are terminals and their size, the
  Python, and the code: every module of the package, and of the libraries that parse,
  validate and print, by size and modification time;
- **the specs**: the files ``discover`` finds now must be the files planned, each with
  the sha256 of the bytes the plan loaded (by content, never by modification time);
- **the project file, the data files and the ledger** (a SQLite file, its ``-wal`` and
  ``-journal``) by identity: device, inode, size, modification and change times, as
  git's index keeps them. Each must have last changed over two seconds before the plan
  began, so a write during the plan, or within the clock's tick, is never taken for the
  state the plan read (a write always moves the change time);
- **the clock**: a plan with a decision the clock made (a retry's due time) is never
  kept.

Only a plan that printed no problem is kept, in text form (no ``--out``, ``--json``,
markdown or ``-v``), of a SQLite ledger, without ``--git-ref``, and with no spec of local
training (its estimate reads the model's folder). The memo sits in the spec cache's
folder (``plans.db``, 0600) and goes with it: ``RECONCILER_CACHE=off`` turns both off.
Standard library only: a replay imports nothing else.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import sys
import time
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .ledger.target import is_url
from .specfiles import PROJECT_FILE, spec_files

MEMO_FILE = "plans.db"
FORMAT = 2
KEEP = 8  # plans kept: one per distinct command line, the most recently used
_RACY_NS = 2_000_000_000  # an input changed this close to the plan's start is not trusted
# environment variables that differ between two runs of one command in one shell
_VOLATILE = frozenset({"_", "OLDPWD", "PWD", "SHLVL"})
# the libraries whose code decides what a plan says
_LIBRARIES = ("pydantic", "pydantic_core", "yaml", "rich")

Identity = list[int] | None  # [dev, ino, size, mtime_ns, ctime_ns]; None: absent


def ledger_folder(ledger: str | Path) -> Path:
    """The folder beside the ledger (``state/`` for a database URL): where local runs and
    caches go by default."""
    return Path("state").absolute() if is_url(ledger) else Path(ledger).parent


def cache_folder(ledger: str | Path, env: Mapping[str, str]) -> Path | None:
    """Where parsed spec files (and replayable plans) are kept between commands:
    ``cache/`` beside the ledger once its folder exists (``validate`` in a fresh
    checkout creates nothing), or ``RECONCILER_CACHE`` (a folder, or ``off``)."""
    raw = (env.get("RECONCILER_CACHE") or "").strip()
    if raw.lower() in ("off", "0", "false", "no"):
        return None
    if raw:
        return Path(raw)
    folder = ledger_folder(ledger)
    return folder / "cache" if folder.is_dir() else None


def identity(path: str | Path) -> Identity:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def settled(ident: Identity, began_ns: int) -> bool:
    """Last changed long enough before ``began_ns`` that the plan read this state."""
    return ident is None or max(ident[3], ident[4]) < began_ns - _RACY_NS


def ledger_files(ledger: str | Path) -> list[str]:
    return [str(ledger) + suffix for suffix in ("", "-wal", "-journal")]


def sha256_file(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None


@dataclass
class Inputs:
    """What one plan read: the spec files and their digests, and files by identity."""

    files: list[str] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)
    stats: dict[str, Identity] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"files": self.files, "digests": self.digests, "stats": self.stats})

    @classmethod
    def from_json(cls, text: str) -> Inputs | None:
        try:
            raw = json.loads(text)
            inputs = cls(list(raw["files"]), list(raw["digests"]), dict(raw["stats"]))
        except (ValueError, KeyError, TypeError):
            return None
        return inputs if len(inputs.files) == len(inputs.digests) else None

    def hold(self, specs: Path) -> bool:
        """Everything recorded is as it was: the same spec files with the same bytes, and
        every other file of the same identity."""
        if not specs.is_dir():
            return False
        if any(identity(path) != ident for path, ident in self.stats.items()):
            return False
        found = spec_files(specs)
        if found != self.files and [str(Path(p)) for p in found] != self.files:
            return False  # (the second: files found under a root such as ./specs)
        return all(sha256_file(p) == d for p, d in zip(self.files, self.digests, strict=True))


def eligible(args: Any) -> bool:
    """A command whose output a replay can give: an offline plan in text, of a SQLite
    ledger, with the cache on."""
    return (
        getattr(args, "command", None) == "plan"
        and bool(args.offline)
        and not args.out
        and not args.json
        and args.format == "text"
        and not getattr(args, "verbose", 0)
        and not getattr(args, "git_ref", None)
        and not is_url(args.ledger)
        and cache_folder(args.ledger, os.environ) is not None
    )


def code_digest() -> str:
    """The code that makes a plan: the package's modules and the libraries it prints and
    validates with, by path, size and modification time; and the Python."""
    from importlib.util import find_spec

    h = hashlib.sha256(f"{FORMAT}|{sys.version}|{sys.executable}".encode())
    here = Path(__file__).parent
    roots = [here]
    for name in _LIBRARIES:
        spec = find_spec(name)
        if spec is not None and spec.origin:
            roots.append(Path(spec.origin).parent)
    for root in roots:
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                if name.endswith((".py", ".so")):
                    path = os.path.join(folder, name)
                    st = os.stat(path)
                    h.update(f"{path}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def request_key(argv: Sequence[str], env: Mapping[str, str]) -> str:
    """What the command was asked, where, with which code: the memo's key."""
    h = hashlib.sha256(code_digest().encode())
    h.update(json.dumps(list(argv)).encode())
    h.update(os.getcwd().encode())
    for name in sorted(set(env) - _VOLATILE):
        h.update(f"\0{name}={env[name]}".encode(errors="surrogateescape"))
    size = shutil.get_terminal_size()
    h.update(f"|{os.isatty(1)}|{os.isatty(2)}|{size.columns}x{size.lines}".encode())
    return h.hexdigest()


class _Tee:
    """A stream that passes what is written to it on, and keeps it, in the order of
    both streams (``chunks``: stream number, text)."""

    def __init__(self, inner: TextIO, number: int, chunks: list[tuple[int, str]]) -> None:
        self.inner, self.number, self.chunks = inner, number, chunks

    def write(self, text: str) -> int:
        self.chunks.append((self.number, text))
        return self.inner.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class Memo:
    """One ``plan``'s use of the memo: ``replay`` a kept plan whose inputs hold, or
    record this one (``recording``, ``keep``) and ``save`` it."""

    def __init__(self, folder: Path, key: str, specs: Path, ledger: str | Path) -> None:
        self.folder, self.key, self.specs, self.ledger = folder, key, specs, ledger
        self.began_ns = time.time_ns()
        self.inputs: Inputs | None = None  # set by the plan when it may be kept
        self.chunks: list[tuple[int, str]] | None = None  # what it printed, once recording

    @classmethod
    def for_args(cls, args: Any, argv: Sequence[str]) -> Memo | None:
        if not eligible(args):
            return None
        folder = cache_folder(args.ledger, os.environ)
        assert folder is not None
        try:
            key = request_key(argv, os.environ)
        except OSError:  # a working directory removed under us, a package file gone
            return None
        return cls(folder, key, Path(args.specs), args.ledger)

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        path = self.folder / MEMO_FILE
        conn = sqlite3.connect(path, timeout=1.0, isolation_level=None)
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS plans "
                "(key TEXT PRIMARY KEY, format INTEGER, used REAL, kept BLOB)"
            )
            yield conn
        finally:
            conn.close()

    def replay(self) -> int | None:
        """The kept plan's exit code, its output printed again; None when there is none,
        or an input moved."""
        if not (self.folder / MEMO_FILE).is_file():
            return None
        try:
            with self._db() as conn:
                row = conn.execute(
                    "SELECT kept FROM plans WHERE key = ? AND format = ?", (self.key, FORMAT)
                ).fetchone()
                if row is None:
                    return None
                kept = json.loads(zlib.decompress(row[0]))
                inputs = Inputs.from_json(kept["inputs"])
                if inputs is None or not inputs.hold(self.specs):
                    return None
                chunks, code = [(int(n), str(t)) for n, t in kept["chunks"]], int(kept["code"])
                conn.execute("UPDATE plans SET used = ? WHERE key = ?", (time.time(), self.key))
        except (sqlite3.Error, zlib.error, ValueError, KeyError, TypeError):
            return None  # a locked, corrupt or read-only memo only costs time
        streams = (sys.stdout, sys.stderr)
        for number, text in chunks:
            streams[number].write(text)
        return code

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        """What the command writes to stdout and stderr is kept, and passed on."""
        chunks: list[tuple[int, str]] = []
        out, err = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _Tee(out, 0, chunks), _Tee(err, 1, chunks)
        try:
            yield
        finally:
            sys.stdout, sys.stderr = out, err
        self.chunks = chunks

    def keep(
        self, files: Sequence[Path], digests: Mapping[Path, str], others: Sequence[str | Path]
    ) -> None:
        """The plan may be kept: it loaded ``files`` (``digests``: the sha256 of each one's
        bytes) and read ``others`` (data files, the project file), and the ledger."""
        if any(f not in digests for f in files):
            return  # a file the plan did not read (a daemon's unchanged one)
        stats = {str(p): identity(p) for p in [*others, *ledger_files(self.ledger)]}
        stats[str(self.specs / PROJECT_FILE)] = identity(self.specs / PROJECT_FILE)
        if all(settled(ident, self.began_ns) for ident in stats.values()):
            self.inputs = Inputs([str(f) for f in files], [digests[f] for f in files], stats)

    def save(self, code: int) -> None:
        """Keep the plan's output, when it printed no problem and ``keep`` allowed it."""
        if self.inputs is None or self.chunks is None or code not in (0, 2, 3):
            return
        kept = {"inputs": self.inputs.to_json(), "chunks": self.chunks, "code": code}
        blob = zlib.compress(json.dumps(kept).encode(), 1)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with self._db() as conn:
                os.chmod(self.folder / MEMO_FILE, 0o600)
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(
                    "INSERT OR REPLACE INTO plans VALUES (?, ?, ?, ?)",
                    (self.key, FORMAT, time.time(), blob),
                )
                conn.execute(
                    "DELETE FROM plans WHERE key NOT IN "
                    "(SELECT key FROM plans ORDER BY used DESC LIMIT ?)",
                    (KEEP,),
                )
                conn.execute("COMMIT")
        except (OSError, sqlite3.Error):
            pass  # only ever saves time
