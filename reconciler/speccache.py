"""A cache of parsed spec files beside the ledger (``state/cache/specs.db``): a file
whose bytes were parsed by an earlier command is not parsed again.

- **Content-addressed.** An entry is found by the sha256 of the file's bytes, never by
  its modification time: a file touched, restored, or copied from another checkout is
  found by what it holds, and a file edited within the same second is never mistaken
  for its older self.
- **What it keeps** is the first phase of loading (``specparse.parse_text``): each
  document's plain data under the strict YAML rules, its place in the file and its start
  line, as JSON. The spec model validates a hit again, so a change of the spec format is
  never hidden by the cache. Only files that loaded without a problem are kept (a
  problem is reported afresh), and never one with a literal value under a key naming a
  secret (``validate`` refuses it; the cache keeps no second copy).
- **Data-file checks** are kept too: a report (records, format, tokens, sha256) found
  by the file's sha256 and the rules it was checked under. To know a file's sha256
  without reading it, an index maps its identity (path, device, inode, size, modification
  and change times) to the sha256 last read, as git's index does; an entry is written
  only for a file last changed over two seconds earlier, so an edit within the clock's
  tick is never mistaken for the old content, and a write always changes the change time.
- **Never trusted across versions.** The cache records a fingerprint of the code that
  makes its entries (``specparse``, the strict YAML rules, reconciler, PyYAML and Python
  versions); any difference and the cache is ignored, then started again.
- **Safe to delete**, and ignored when it cannot be read or written (a read-only
  checkout, a full disk): it only ever saves time. The file is this user's own (0600).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import sqlite3
import sys
import time
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from .datafiles import DataFileReport
from .datarules import DataFormat

CACHE_FILE = "specs.db"
FORMAT = 1
_BATCH = 500  # keys per query
_FLUSH = 2_000  # new entries held before they are written
_SLACK = 2  # past this many entries per live file, the entries this command did not use go
_SLACK_ROWS = 100  # ... and this many more


@cache
def code_fingerprint() -> str:
    """What the entries depend on: the code that makes them, and the versions under it."""
    import yaml

    from . import __version__

    here = Path(__file__).parent
    h = hashlib.sha256(f"{FORMAT}|{__version__}|{yaml.__version__}|{sys.version_info[:3]}".encode())
    for name in ("specparse.py", "yamlstrict.py", "datafiles.py", "records.py", "datarules.py"):
        h.update((here / name).read_bytes())
    return h.hexdigest()


def encode(parts: Any) -> str | None:
    """An entry as the cache keeps it (JSON); None for what JSON cannot hold."""
    try:
        return json.dumps(parts, separators=(",", ":"))
    except (TypeError, ValueError):
        return None


def decode(entry: str) -> list[Any] | None:
    """An entry as ``specparse.parse_text`` made it, or None when it is not one (a file
    another program wrote): ``[[index, data, line], ...]``."""
    try:
        parts = json.loads(entry)
    except ValueError:
        return None
    if not isinstance(parts, list):
        return None
    for part in parts:
        if not (
            isinstance(part, list)
            and len(part) == 3
            and type(part[0]) is int
            and isinstance(part[1], dict)
            and type(part[2]) is int
        ):
            return None
    return parts


def _too_many(db: sqlite3.Connection, table: str, used: set[str]) -> bool:
    try:
        total = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    except sqlite3.OperationalError:  # no such table (a cache older than its data tables)
        return False
    return bool(total > _SLACK * len(used) + _SLACK_ROWS)


_RACY_NS = 2_000_000_000  # a file changed this recently may change again within its tick


def _identity(real: Path, st: os.stat_result) -> str:
    return f"{real}|{st.st_dev}|{st.st_ino}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}"


def _report(real: Path, text: str) -> DataFileReport | None:
    try:
        d = json.loads(text)
        return DataFileReport(
            real,
            str(d["sha256"]),
            int(d["bytes"]),
            int(d["records"]),
            DataFormat(d["format"]),
            int(d["approx_tokens"]),
            bool(d["has_tools"]),
            tuple(str(n) for n in d["notes"]),
        )
    except (ValueError, KeyError, TypeError):
        return None


def rules_key(provider_rules: object, method: str, provider: str, role: str) -> str:
    """What a data file's check depends on besides its bytes: the provider's rules (as
    data), the method, the provider and the file's role."""
    text = json.dumps(_plain(provider_rules), sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return f"{method}:{provider}:{role}:{digest}"


def _plain(value: Any) -> Any:
    """``value`` as JSON-ready data the same in every process (sets sorted: their order
    follows string hashing, which differs from one interpreter to the next)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted(str(v) for v in value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def content_key(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


class SpecCache:
    """One command's use of the cache: ``get_many`` what is known, ``put`` what was
    parsed, ``save`` once at the end."""

    def __init__(self, folder: Path, *, prune: bool = False) -> None:
        """``prune``: this command looks every file of the tree up (a whole-tree load,
        not one file, not a daemon's pass that reads only changed files), so what it did
        not use may go."""
        self.path = folder / CACHE_FILE
        self.prune = prune
        self.used_data: set[str] = set()
        self.new: dict[str, str] = {}
        self.used: set[str] = set()
        self.new_stats: dict[str, str] = {}  # file identity → sha256
        self.new_checks: dict[str, str] = {}  # sha256 + rules → report
        self.hits = 0
        self.db: sqlite3.Connection | None = None
        with contextlib.suppress(sqlite3.Error, OSError):
            self.db = self._open()

    def _open(self) -> sqlite3.Connection | None:
        if not self.path.exists():
            return None
        db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=2.0)
        row = db.execute("SELECT value FROM meta WHERE key = 'code'").fetchone()
        if row is None or row[0] != code_fingerprint():  # other code: not to be trusted
            db.close()
            return None
        return db

    def get_many(self, keys: Iterable[str]) -> dict[str, str]:
        """The entries known for ``keys``, encoded (``decode`` each when it is used: a
        chunk's worth of decoded entries would be megabytes held at once)."""
        found: dict[str, str] = {}
        if self.db is None:
            return found
        wanted = list(dict.fromkeys(keys))
        try:
            for start in range(0, len(wanted), _BATCH):
                batch = wanted[start : start + _BATCH]
                marks = ",".join("?" * len(batch))
                rows = self.db.execute(
                    f"SELECT key, parts FROM entries WHERE key IN ({marks})",
                    batch,
                )
                found.update((key, parts) for key, parts in rows if isinstance(parts, str))
        except sqlite3.Error:
            return {}
        self.hits += len(found)
        self.used.update(found)
        return found

    def put_encoded(self, key: str, entry: str) -> None:
        self.new[key] = entry
        self.used.add(key)
        if len(self.new) >= _FLUSH:  # written as they come: ten thousand would be 6 MB held
            with contextlib.suppress(sqlite3.Error, OSError):
                self._write(prune=False)
            self.new.clear()

    def data_report(self, real: Path, st: os.stat_result, rules: str) -> DataFileReport | None:
        """The report of a data file checked before under ``rules``, when its identity
        says it is unchanged since."""
        if self.db is None:
            return None
        try:
            row = self.db.execute(
                "SELECT sha256 FROM data_stats WHERE key = ?", (_identity(real, st),)
            ).fetchone()
            if row is None:
                return None
            check = f"{row[0]} {rules}"
            found = self.db.execute(
                "SELECT report FROM data_checks WHERE key = ?", (check,)
            ).fetchone()
        except sqlite3.Error:
            return None
        if found is None:
            return None
        self.used_data.update((_identity(real, st), check))
        return _report(real, found[0])

    def put_data(self, real: Path, st: os.stat_result, rules: str, report: DataFileReport) -> None:
        if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) > _RACY_NS:
            self.new_stats[_identity(real, st)] = report.sha256
        self.used_data.update((_identity(real, st), f"{report.sha256} {rules}"))
        self.new_checks[f"{report.sha256} {rules}"] = json.dumps(
            {
                "sha256": report.sha256,
                "bytes": report.bytes,
                "records": report.records,
                "format": report.format.value,
                "approx_tokens": report.approx_tokens,
                "has_tools": report.has_tools,
                "notes": list(report.notes),
            }
        )

    def save(self) -> None:
        """Add the new entries (and, for a whole-tree command, prune: ``_prune``)."""
        overgrown = False
        if self.db is not None:
            if self.prune:  # a warm run writes only when pruning is due
                with contextlib.suppress(sqlite3.Error):
                    overgrown = self._overgrown(self.db)
            self.db.close()
            self.db = None
        if not (self.new or self.new_stats or self.new_checks or overgrown):
            return
        try:
            self._write()
        except sqlite3.OperationalError:
            pass  # locked by another command, a read-only or full disk: only time is lost
        except sqlite3.DatabaseError:  # not a database (a torn or foreign file): start again
            with contextlib.suppress(sqlite3.Error, OSError):
                self.path.unlink(missing_ok=True)
                self._write()
        except (sqlite3.Error, OSError):
            pass

    def _write(self, *, prune: bool = True) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        db = sqlite3.connect(self.path, timeout=2.0)
        try:
            with db:
                db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
                db.execute(
                    "CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, parts TEXT NOT NULL)"
                )
                row = db.execute("SELECT value FROM meta WHERE key = 'code'").fetchone()
                if row is None or row[0] != code_fingerprint():
                    db.execute("DELETE FROM entries")  # made by other code: start again
                    for table in ("data_stats", "data_checks"):
                        db.execute(f"DROP TABLE IF EXISTS {table}")
                    db.execute(
                        "INSERT OR REPLACE INTO meta VALUES ('code', ?)", (code_fingerprint(),)
                    )
                for table, value in (("data_stats", "sha256"), ("data_checks", "report")):
                    db.execute(
                        f"CREATE TABLE IF NOT EXISTS {table} "
                        f"(key TEXT PRIMARY KEY, {value} TEXT NOT NULL)"
                    )
                db.executemany(
                    "INSERT OR REPLACE INTO entries (key, parts) VALUES (?, ?)", self.new.items()
                )
                db.executemany(
                    "INSERT OR REPLACE INTO data_stats VALUES (?, ?)", self.new_stats.items()
                )
                db.executemany(
                    "INSERT OR REPLACE INTO data_checks VALUES (?, ?)", self.new_checks.items()
                )
                if self.prune and prune:
                    self._prune(db, "entries", self.used)
                    self._prune(db, "data_stats", self.used_data)
                    self._prune(db, "data_checks", self.used_data)
        finally:
            db.close()

    def _overgrown(self, db: sqlite3.Connection) -> bool:
        return any(
            _too_many(db, table, used)
            for table, used in (
                ("entries", self.used),
                ("data_stats", self.used_data),
                ("data_checks", self.used_data),
            )
        )

    @staticmethod
    def _prune(db: sqlite3.Connection, table: str, used: set[str]) -> None:
        """Past ``_SLACK`` times the rows a whole-tree command used (old versions of
        edited files), keep only those."""
        if not _too_many(db, table, used):
            return
        db.execute("CREATE TEMP TABLE IF NOT EXISTS used (key TEXT PRIMARY KEY)")
        db.execute("DELETE FROM used")
        db.executemany("INSERT OR IGNORE INTO used VALUES (?)", ((k,) for k in used))
        db.execute(f"DELETE FROM {table} WHERE key NOT IN (SELECT key FROM used)")
