"""A pure function over many items, on every core: shares computed in processes forked
from this one, results back through a pipe. Parsing ten thousand spec files is CPU
work in Python, so a second core halves it.

Only where forking is safe and pays: Linux, one thread in the process (a fork copies
no other thread, and a lock another thread held would stay held in the child), and
enough items. ``RECONCILER_WORKERS`` sets the number of processes (``1``: this one
only). A child that fails for any reason costs nothing but time: its share is computed
here instead.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

MIN_ITEMS = 400  # below this a fork and a pickle cost more than they save
MAX_WORKERS = 8


def workers(env: dict[str, str] | None = None) -> int:
    """How many processes share the work: the environment's figure, else the cores
    this process may run on (at most ``MAX_WORKERS``)."""
    raw = (env if env is not None else os.environ).get("RECONCILER_WORKERS", "").strip()
    if raw.isdigit() and int(raw) >= 1:
        return min(int(raw), 64)
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_WORKERS))


def can_fork() -> bool:
    return sys.platform.startswith("linux") and threading.active_count() == 1


def fan_out(fn: Callable[[T], R], items: Sequence[T], n: int | None = None) -> list[R]:
    """``[fn(x) for x in items]``, the shares of all but the first computed in forked
    children. ``fn`` and its results must be picklable values, and ``fn`` pure."""
    n = workers() if n is None else n
    n = min(n, len(items) // (MIN_ITEMS // 2) or 1)
    if n <= 1 or len(items) < MIN_ITEMS or not can_fork():
        return [fn(x) for x in items]
    size = -(-len(items) // n)
    shares = [items[i : i + size] for i in range(0, len(items), size)]
    children: list[tuple[int, int]] = []  # (pid, read end)
    try:
        for share in shares[1:]:
            children.append(_spawn(fn, share))
        results = [fn(x) for x in shares[0]]
        for share in shares[1:]:
            pid, fd = children.pop(0)
            got = _collect(pid, fd)
            results.extend(got if got is not None and len(got) == len(share) else map(fn, share))
        return results
    finally:
        for pid, fd in children:  # interrupted: no child outlives the parent's load
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.close(fd)
            with contextlib.suppress(OSError):
                os.waitpid(pid, 0)


def _spawn(fn: Callable[[T], R], share: Sequence[T]) -> tuple[int, int]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: compute, send, leave without running any exit handler
        code = 1
        try:
            os.close(read)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            payload = pickle.dumps([fn(x) for x in share], protocol=pickle.HIGHEST_PROTOCOL)
            with os.fdopen(write, "wb") as out:
                out.write(payload)
            code = 0
        except BaseException:
            pass
        finally:
            os._exit(code)
    os.close(write)
    return pid, read


def _collect(pid: int, fd: int) -> list[Any] | None:
    """A child's results, or None when it failed."""
    with os.fdopen(fd, "rb") as pipe:
        payload = pipe.read()
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0 or not payload:
        return None
    try:
        got = pickle.loads(payload)
    except Exception:
        return None
    return got if isinstance(got, list) else None
