"""``watch``: the daemon, with its metrics endpoint and webhook wired in."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import ConfigError
from ..leases import Renewer
from ..ledger import Ledger
from ..ledger.target import is_url
from ..log import get as get_logger
from ..model import AttemptView
from ..notify import JobFinished, Notifier, notifier_from_env
from ..providers.pool import DriverPool
from ..reconcile import PassResult
from ..source import SpecSource
from ..strays import unknown_jobs
from ..watch import Watcher, run
from .workspace import Workspace

log = get_logger()


def cmd_watch(args: argparse.Namespace) -> int:
    ws = Workspace.from_args(args)
    if args.interval <= 0:
        raise ConfigError("--interval must be positive")
    if args.removal_settle < 0:
        raise ConfigError("--removal-settle must not be negative")
    ws.require_specs()
    notifier = notifier_from_env(ws.env)
    if args.lease_ttl <= 0:
        raise ConfigError("--lease-ttl must be positive")
    with _opened(ws, args.lease_ttl) as (ledger, replica):
        drivers = DriverPool(ws.env)
        server = renewer = None
        try:
            watcher = Watcher(
                ledger=ledger,
                drivers=drivers,
                source=SpecSource(
                    ws.specs, git_ref=args.git_ref, reuse=True, cache_dir=ws.cache_dir
                ),
                interval=args.interval,
                adopt_grace=args.adopt_grace,
                max_cost=args.max_cost,
                removal_settle=args.removal_settle,
                allow_mass_removal=args.allow_mass_removal,
            )
            watcher.replica = replica
            if ws.lock is not None:
                watcher.still_ours = ws.lock.still_held
            if replica is not None:  # and its own connection still up (else: stop, restart)
                lock, conn = ws.lock, replica.ledger.conn
                watcher.still_ours = lambda: lock.still_held() and not (conn.closed or conn.broken)
                # the accounts the last pass saw are the ones the renewer keeps and claims
                renewer = Renewer(
                    replica, ws.renewer_ledger(args.lease_ttl), lambda: watcher.accounts
                )
                watcher.renewer = renewer
                renewer.start()
            if args.metrics_port is not None:
                server = _observe(watcher, args)
            if notifier is not None:
                watcher.on_finished = _notify_once(ledger, notifier)
            return run(watcher)
        finally:
            if renewer is not None:
                renewer.stop()
                renewer.ledger.close()
            if server is not None:
                server.close()
            if notifier is not None:
                notifier.close()
            drivers.close()


@contextmanager
def _opened(ws: Workspace, ttl: float) -> Iterator[tuple[Ledger, Any]]:
    """The ledger, and the replica when it is one of several on PostgreSQL (None: the
    only writer, under the exclusive lock)."""
    if is_url(ws.ledger):
        with ws.replica("watch", ttl) as pair:
            yield pair
    else:
        with ws.writing("watch") as ledger:
            yield ledger, None


def _observe(watcher: Watcher, args: argparse.Namespace) -> Any:
    """Metrics updated after every pass, served on --metrics-port."""
    from ..metrics import Metrics, serve_metrics

    metrics = Metrics()

    def on_pass(seconds: float, result: PassResult | None) -> None:
        metrics.pass_finished(
            seconds, result is not None, trouble=watcher.trouble, stalled=watcher.stalled
        )
        if result is not None:
            counts: dict[tuple[str, str], int] = {}
            for record in result.records.values():
                if record.current is not None:
                    key = (record.current.provider, record.current.phase.value)
                    counts[key] = counts.get(key, 0) + 1
            metrics.set_jobs(counts)
            found = unknown_jobs(result.observation)
            metrics.set_unknown(
                {k: sum(1 for u in found if u["kind"] == k) for k in ("duplicate", "stray")}
            )
        metrics.set_provider_calls(watcher.drivers.call_totals())
        if watcher.replica is not None:
            replica = watcher.replica
            metrics.set_leases(replica.name, dict(replica.held), replica.live)

    watcher.on_pass = on_pass
    try:
        server = serve_metrics(
            metrics, args.metrics_host, args.metrics_port, max_age=max(60.0, 3 * args.interval)
        )
    except OSError as exc:
        raise ConfigError(f"--metrics-port {args.metrics_port}: {exc.strerror or exc}") from exc
    log.info("metrics", url=f"http://{args.metrics_host}:{server.port}/metrics")
    return server


def _notify_once(ledger: Ledger, notifier: Notifier) -> Any:
    """A webhook message per attempt reaching a terminal phase, never twice (ledger-backed)."""

    def on_finished(attempt: AttemptView) -> None:
        if ledger.has_event(attempt.id, "notified"):
            return
        event = JobFinished(
            name=attempt.name,
            provider=attempt.provider,
            phase=attempt.phase.value,
            remote_id=attempt.remote_id or "",
            fine_tuned_model=attempt.fine_tuned_model,
            error=attempt.error,
            git_commit=attempt.git_commit,
            spec_path=attempt.spec_path,
        )
        if notifier.send(event):
            ledger.record_attempt_event(attempt.id, "notified", f"webhook: {attempt.phase.value}")

    return on_finished
