"""The single-writer lock beside a ledger file: an ``flock`` the OS releases when its
holder dies, with the holder's name written inside for whoever is refused."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from ..errors import LockedError
from .access import access_error, refuse_folder

Clock = Callable[[], float]


class WriterLock:
    """The single-writer lock of a ledger: an ``flock`` on the database file itself, found
    through its resolved path, so a symlink, another relative path or a deleted side file
    never lets a second writer in. The holder's name is written beside it, for whoever is
    refused (SQLite's own locks are ``fcntl`` locks, which an ``flock`` does not touch)."""

    def __init__(self, ledger_path: Path, clock: Clock = time.time) -> None:
        self.given = ledger_path  # as the user wrote it: what messages name
        self.db_path = ledger_path.resolve()
        self.path = self.db_path.with_name(self.db_path.name + ".lock")  # who holds it
        self.clock = clock
        self._fd: int | None = None
        self._identity: tuple[int, int] | None = None

    def acquire(self, command: str = "apply") -> None:
        refuse_folder(self.given)
        try:
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
            # an empty file is a ledger being created: readers take it as empty
            fd = os.open(self.db_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise access_error(exc, self.given, writing=True) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = self._read_holder()
            for _ in range(5):  # the holder writes its name just after locking: give it a moment
                if holder != "another process":
                    break
                time.sleep(0.01)
                holder = self._read_holder()
            raise LockedError(
                f"ledger {self.db_path} is locked by {holder}; "
                "only one apply or watch writes at a time"
            ) from None
        # the OS drops an flock when its holder dies, so a dead holder's lock is simply free
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": datetime.fromtimestamp(self.clock(), UTC).isoformat(timespec="seconds"),
            "command": command,
        }
        with contextlib.suppress(OSError):  # the name is a courtesy; the flock is the lock
            self.path.write_text(json.dumps(info))
        st = os.fstat(fd)
        self._fd, self._identity = fd, (st.st_dev, st.st_ino)

    def _read_holder(self) -> str:
        try:
            info = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            info = {}
        if not isinstance(info, dict) or not info:
            return "another process"
        return (
            f"{info.get('command', 'a process')} (pid {info.get('pid')} on {info.get('host')}, "
            f"since {info.get('since')})"
        )

    def still_held(self) -> bool:
        """True while the file at the ledger's path is the one this lock holds (not
        deleted, not replaced): a daemon checks it every pass."""
        try:
            st = os.stat(self.db_path)
        except OSError:
            return False
        return self._identity == (st.st_dev, st.st_ino)

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError, ValueError):
                info = json.loads(self.path.read_text() or "{}")
                if isinstance(info, dict) and info.get("pid") == os.getpid():
                    self.path.write_text("")  # not held: nobody to name
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> WriterLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
