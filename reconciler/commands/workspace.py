"""What every command starts from: the paths, the environment, the specs source, and
the two consoles of one invocation."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import LedgerError, ReconcilerError
from ..ledger import Ledger, ledger_exists, open_ledger, read_view, writer_lock
from ..ledger.target import display, is_url
from ..model import LedgerView
from ..planmemo import cache_folder, ledger_folder
from ..render import console
from ..source import SpecSource, not_a_specs_folder, use_project


@dataclass
class Workspace:
    """Paths and streams of one invocation."""

    specs: Path
    ledger: Path | str  # a SQLite file, or a PostgreSQL URL (``ledger.target``)
    no_color: bool
    git_ref: str | None = None
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    source: SpecSource = field(init=False)
    lock: Any = field(init=False, default=None)  # the writer lock, while ``writing``
    _known: dict[str, set[str]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.source = SpecSource(self.specs, self.git_ref, cache_dir=self.cache_dir)
        # provider profiles: names the ledger's rows may carry
        project, _ = use_project(self.specs)
        # local training: runs live beside the ledger unless reconciler.yaml or the
        # environment says otherwise (the environment wins)
        defaults = {"RECONCILER_LOCAL_RUNS": str(self.ledger_folder / "runs")}
        self.env = defaults | project.local_env() | dict(self.env)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Workspace:
        ledger = args.ledger if is_url(args.ledger) else Path(args.ledger)
        return cls(Path(args.specs), ledger, bool(args.no_color), getattr(args, "git_ref", None))

    @property
    def ledger_folder(self) -> Path:
        """The folder beside the ledger (``state/`` for a database URL): where local runs
        and caches go by default."""
        return ledger_folder(self.ledger)

    @property
    def cache_dir(self) -> Path | None:
        """Where parsed spec files and replayable plans are kept between commands
        (``planmemo.cache_folder``)."""
        return cache_folder(self.ledger, self.env)

    @property
    def ledger_label(self) -> str:
        """The ledger as messages name it (a URL without its password)."""
        return display(str(self.ledger)) if is_url(self.ledger) else str(self.ledger)

    def ledger_exists(self) -> bool:
        return ledger_exists(self.ledger)

    def require_specs(self) -> None:
        if not self.specs.is_dir():
            raise not_a_specs_folder(self.specs)

    def view(self) -> LedgerView:
        """The ledger read once, without writing (an absent ledger reads as empty)."""
        return read_view(self.ledger)

    def known_remote_ids(self, provider: str) -> set[str]:
        """Every job id the ledger holds for a provider (read-only; none without a ledger),
        read once per invocation and provider."""
        if provider not in self._known:
            self._known[provider] = self._read_known(provider)
        return self._known[provider]

    def _read_known(self, provider: str) -> set[str]:
        if not self.ledger_exists():
            return set()
        try:
            ledger = open_ledger(self.ledger, readonly=True)
        except LedgerError:
            return set()
        try:
            return ledger.known_remote_ids(provider)
        finally:
            ledger.close()

    @contextmanager
    def writing(self, command: str) -> Iterator[Ledger]:
        """The ledger, opened for writing under its single-writer lock."""
        with writer_lock(self.ledger) as lock:
            lock.acquire(command)
            self.lock = lock
            ledger = open_ledger(self.ledger)
            try:
                yield ledger
            finally:
                ledger.close()

    @contextmanager
    def replica(self, command: str, ttl: float) -> Iterator[tuple[Ledger, Any]]:
        """The PostgreSQL ledger for one of several ``watch`` replicas: the writer lock
        shared with the other replicas (an ``apply`` waits for none of them), and this
        replica's leases, given back when it stops."""
        from ..leases import Replica
        from ..ledger.postgres import PgWriterLock

        with PgWriterLock(str(self.ledger), shared=True) as lock:
            lock.acquire(command)
            self.lock = lock
            ledger = open_ledger(self.ledger)
            _pause_limit(ledger, ttl)
            replica = Replica(ledger, ttl=ttl)
            ledger.fence = replica.fence  # type: ignore[attr-defined]
            try:
                yield ledger, replica
            finally:
                with suppress(ReconcilerError):
                    replica.release()
                ledger.close()

    def renewer_ledger(self, ttl: float) -> Ledger:
        """A second connection to the PostgreSQL ledger, for a replica's lease renewer."""
        ledger = open_ledger(self.ledger)
        _pause_limit(ledger, ttl)
        return ledger

    def out(self) -> Any:
        return console(sys.stdout, no_color=self.no_color)

    def err(self) -> Any:
        return console(sys.stderr, no_color=self.no_color)


def _pause_limit(ledger: Ledger, ttl: float) -> None:
    """A replica paused inside a transaction (SIGSTOP, a frozen VM) must not hold the
    serial row, and with it every other replica, beyond its lease: the server ends it."""
    ms = max(int(ttl * 1000), 1000)
    ledger.conn.execute(f"SET idle_in_transaction_session_timeout = {ms}")  # type: ignore[attr-defined]
