"""A pure function over many items, on every core: shares computed in processes forked
from this one, results back through a pipe. Parsing ten thousand spec files is CPU
work in Python, so a second core halves it. A ``Pool`` forks once for many batches,
and ``submit`` lets this process do other work while the children compute (the loader
checks one chunk of files against the spec model while the next is parsed).

Only where forking is safe and pays: Linux, one thread in the process (a fork copies
no other thread, and a lock another thread held would stay held in the child), and
enough items. ``RECONCILER_WORKERS`` sets the number of processes (``1``: this one
only). A child that fails for any reason costs nothing but time: its share is computed
here instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

MIN_ITEMS = 400  # below this a fork and a pickle cost more than they save
MAX_WORKERS = 8
PIPE_BYTES = 1 << 20  # Linux's default ceiling for an unprivileged pipe


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
    with Pool(n) as pool:
        return pool.map(fn, items)


class Pool:
    """Children forked once, at the first batch worth sharing, each computing its share
    of every batch after: a load of many chunks forks once, not once a chunk (a fork
    copies the page tables, and each page this process writes afterwards is copied
    again while a child lives). Closing it ends the children."""

    def __init__(self, n: int | None = None) -> None:
        self.n = workers() if n is None else n
        self.children: list[_Child] | None = None  # None: not forked yet
        self.pending: list[Batch[Any, Any]] = []  # submitted, results not received yet

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """``[fn(x) for x in items]``, shared with the children."""
        return self.submit(fn, items).result()

    def submit(self, fn: Callable[[T], R], items: Sequence[T], own: float = 1.0) -> Batch[T, R]:
        """The children's shares sent now, this process's computed at ``result()``: work
        done here in between overlaps theirs. ``own``: this process's share against a
        child's (below 1 when it has that other work to do)."""
        wanted = min(self.n, len(items) // (MIN_ITEMS // 2) or 1)
        if wanted <= 1 or len(items) < MIN_ITEMS:
            return Batch(self, fn, items, [])
        if self.children is None:
            self.children = self._start(self.n - 1) if can_fork() else []
        live = self.children[: wanted - 1]
        if not live:
            return Batch(self, fn, items, [])
        first = round(len(items) * own / (own + len(live)))  # this process's share
        rest = items[first:]
        size = -(-len(rest) // len(live))
        shares = [rest[i : i + size] for i in range(0, len(rest), size)]
        sent = [(c, share, c.send(fn, share)) for c, share in zip(live, shares, strict=False)]
        return Batch(self, fn, items[:first], sent)

    def _start(self, count: int) -> list[_Child]:
        children: list[_Child] = []
        for _ in range(count):
            child = _Child.fork(others=children)
            if child is not None:
                children.append(child)
        return children

    def _drop(self, child: _Child) -> None:
        child.end()
        if self.children is not None and child in self.children:
            self.children.remove(child)

    def close(self) -> None:
        for child in self.children or []:
            child.end()
        self.children = []


class Batch(Generic[T, R]):
    """One ``submit``: the children's shares under way, this process's still to do."""

    def __init__(
        self,
        pool: Pool,
        fn: Callable[[T], R],
        own: Sequence[T],
        sent: list[tuple[_Child, Sequence[T], bool]],
    ) -> None:
        self.pool, self.fn, self.own, self.sent = pool, fn, own, sent
        self.received: list[list[Any] | None] | None = None
        if sent:
            pool.pending.append(self)

    def result(self) -> list[R]:
        """Every result, in order: this process's share computed now, then each child's
        received (or, from a failed child, computed here)."""
        fn = self.fn
        results = [fn(x) for x in self.own]
        for earlier in list(self.pool.pending):  # a child answers its batches in order
            if earlier is self:
                break
            earlier._collect()
        self._collect()
        for (_, share, _), got in zip(self.sent, self.received or [], strict=True):
            results.extend(got if got is not None else [fn(x) for x in share])
        return results

    def _collect(self) -> None:
        """Each child's results of this batch; None for a child that failed."""
        if self.received is not None:
            return
        self.received = []
        for child, share, ok in self.sent:
            got = child.receive() if ok else None
            if got is None or len(got) != len(share):  # failed or gone: done here instead
                self.pool._drop(child)
                got = None
            self.received.append(got)
        if self in self.pool.pending:
            self.pool.pending.remove(self)


class _Child:
    """One forked child and its two pipes: batches in, results out, each a pickle after
    its length."""

    def __init__(self, pid: int, to_child: int, from_child: int) -> None:
        self.pid, self.to_child, self.from_child = pid, to_child, from_child
        self.ended = False  # its pipes closed: their numbers may belong to other files now

    @classmethod
    def fork(cls, others: list[_Child]) -> _Child | None:
        down_r, down_w = os.pipe()
        up_r, up_w = os.pipe()
        for fd in (down_w, up_w):  # a batch and its results wait in the pipe, not the writer
            with contextlib.suppress(OSError, AttributeError):
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        try:
            pid = os.fork()
        except OSError:
            for fd in (down_r, down_w, up_r, up_w):
                os.close(fd)
            return None
        if pid == 0:  # the child: serve batches, leave without running any exit handler
            code = 1
            try:
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                for fd in [down_w, up_r] + [f for o in others for f in (o.to_child, o.from_child)]:
                    os.close(fd)
                _serve(down_r, up_w)
                code = 0
            except BaseException:
                pass
            finally:
                os._exit(code)
        os.close(down_r)
        os.close(up_w)
        return cls(pid, down_w, up_r)

    def send(self, fn: Callable[[T], R], share: Sequence[T]) -> bool:
        if self.ended:
            return False
        try:
            _write(self.to_child, pickle.dumps((fn, share), protocol=pickle.HIGHEST_PROTOCOL))
        except (OSError, pickle.PicklingError):
            return False
        return True

    def receive(self) -> list[Any] | None:
        """The child's results, or None when it failed."""
        if self.ended:
            return None
        try:
            payload = _read(self.from_child)
            got = pickle.loads(payload) if payload is not None else None
        except Exception:
            return None
        return got if isinstance(got, list) else None

    def end(self) -> None:
        if self.ended:
            return
        self.ended = True
        for fd in (self.to_child, self.from_child):
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(OSError):  # idle or stuck: it holds nothing worth keeping
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.waitpid(self.pid, 0)


def _serve(read: int, write: int) -> None:
    """The child's loop: a batch in, its results out, until the parent closes the pipe."""
    while (payload := _read(read)) is not None:
        fn, share = pickle.loads(payload)
        _write(write, pickle.dumps([fn(x) for x in share], protocol=pickle.HIGHEST_PROTOCOL))


def _write(fd: int, payload: bytes) -> None:
    data = memoryview(len(payload).to_bytes(8, "big") + payload)
    while data:
        data = data[os.write(fd, data) :]


def _read(fd: int) -> bytes | None:
    """One message, or None at the end of the pipe (or a message cut short)."""
    header = _read_exactly(fd, 8)
    return None if header is None else _read_exactly(fd, int.from_bytes(header, "big"))


def _read_exactly(fd: int, size: int) -> bytes | None:
    parts: list[bytes] = []
    left = size
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)
