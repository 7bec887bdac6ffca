"""Why a ledger file cannot be opened, read or written, said in one line with what to do:
a full disk, a read-only file or folder, a folder given as the file, a file that is not
a ledger. SQLite's and the OS's errors become ``LedgerAccessError`` here, in one place,
with the path as the user gave it."""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from ..errors import LedgerAccessError

READ_ONLY_HINT = "read-only commands such as status --offline and plan --offline still read it"
UNDONE = "nothing was half-written"


def refuse_folder(path: Path) -> None:
    """A folder where the ledger file should be: say which file to give instead."""
    if path.is_dir():
        raise LedgerAccessError(
            f"--ledger {path}/ is a folder; give the ledger file, e.g. {path / 'ledger.db'}",
            path,
        )


def _folder(path: Path) -> Path:
    return path.parent if str(path.parent) else Path(".")


def _kind(exc: BaseException) -> str:
    """full, readonly, denied, folder, notadb, busy, io or other."""
    if isinstance(exc, OSError):
        return {
            errno.ENOSPC: "full",
            errno.EDQUOT: "full",
            errno.EROFS: "readonly",
            errno.EACCES: "denied",
            errno.EPERM: "denied",
            errno.EISDIR: "folder",
        }.get(exc.errno or 0, "other")
    name = str(getattr(exc, "sqlite_errorname", "") or "")
    text = str(exc).lower()
    if name == "SQLITE_FULL" or "disk is full" in text:
        return "full"
    if name.startswith("SQLITE_READONLY") or "readonly database" in text:
        return "readonly"
    if name == "SQLITE_NOTADB" or "not a database" in text:
        return "notadb"
    if name.startswith("SQLITE_BUSY") or "database is locked" in text:
        return "busy"
    if name.startswith(("SQLITE_IOERR", "SQLITE_CANTOPEN")) or "disk i/o error" in text:
        return "io"
    if "unable to open database file" in text:
        return "io"
    return "other"


def _not_writable(path: Path) -> str | None:
    """What keeps ``path`` from being written: its folder or the file itself, if either."""
    folder = _folder(path)
    if not os.access(folder, os.W_OK):
        return f"its folder {folder}/ is read-only"
    if path.exists() and not os.access(path, os.W_OK):
        return "the file is read-only"
    return None


def access_error(exc: BaseException, path: Path, *, writing: bool) -> LedgerAccessError:
    """The one-line error for ``exc``, raised while reading or ``writing`` the ledger."""
    verb = "write" if writing else "read"
    head = f"cannot {verb} the ledger {path}"
    kind = _kind(exc)
    if path.is_dir() or kind == "folder":
        return LedgerAccessError(
            f"--ledger {path}/ is a folder; give the ledger file, e.g. {path / 'ledger.db'}", path
        )
    if kind == "full":
        return LedgerAccessError(
            f"{head}: no space left on device (free some space and run the command again; "
            f"{UNDONE})",
            path,
        )
    if kind in ("readonly", "denied", "io") and writing and (why := _not_writable(path)):
        return LedgerAccessError(
            f"{head}: {why} (let this user write there, or give --ledger a writable copy; "
            f"{READ_ONLY_HINT})",
            path,
        )
    if kind == "denied":
        return LedgerAccessError(f"{head}: permission denied (let this user {verb} it)", path)
    if kind == "notadb":
        return LedgerAccessError(
            f"cannot read the ledger {path}: it is not a reconciler ledger (not an SQLite "
            "database); check --ledger",
            path,
        )
    if kind == "busy":
        return LedgerAccessError(
            f"{head}: another process kept it busy ({exc}); run the command again", path
        )
    detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    if kind == "io":
        tail = f"; {UNDONE}" if writing else ""
        return LedgerAccessError(f"{head}: {detail} (check the disk and the file{tail})", path)
    return LedgerAccessError(f"{head}: {detail}", path)


def wal_pending(path: Path) -> bool:
    """Whether a write-ahead log beside the file holds writes not yet merged into it."""
    try:
        return os.path.getsize(f"{path}-wal") > 0
    except OSError:
        return False


def is_sqlite_access_error(exc: BaseException) -> bool:
    """An error that says the file could not be opened for reading in place (a read-only
    folder leaves SQLite no room for its ``-shm`` index)."""
    return isinstance(exc, sqlite3.OperationalError) and _kind(exc) in ("readonly", "io")
