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

from ..errors import LedgerError, LockedError

Clock = Callable[[], float]


class WriterLock:
    """The single-writer lock beside the ledger; the holder is written into the file."""

    def __init__(self, ledger_path: Path, clock: Clock = time.time) -> None:
        self.path = ledger_path.with_name(ledger_path.name + ".lock")
        self.clock = clock
        self._fd: int | None = None

    def acquire(self, command: str = "apply") -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise LedgerError(f"cannot create the lock {self.path}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._read_holder(fd)
            for _ in range(5):  # the holder writes its name just after locking: give it a moment
                if holder != "another process":
                    break
                time.sleep(0.01)
                holder = self._read_holder(fd)
            os.close(fd)
            raise LockedError(
                f"ledger {self.path.with_suffix('')} is locked by {holder}; "
                "only one apply or watch writes at a time"
            ) from None
        # the OS drops an flock when its holder dies, so a dead holder's lock is simply free
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": datetime.fromtimestamp(self.clock(), UTC).isoformat(timespec="seconds"),
            "command": command,
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd

    @staticmethod
    def _read_holder(fd: int) -> str:
        try:
            info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        except ValueError:
            info = {}
        if not info:
            return "another process"
        return (
            f"{info.get('command', 'a process')} (pid {info.get('pid')} on {info.get('host')}, "
            f"since {info.get('since')})"
        )

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> WriterLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
