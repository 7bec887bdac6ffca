"""Prometheus metrics for the watch daemon, and the small HTTP server that exposes them.

``Metrics`` owns its own registry (never the process-global one), so tests and
several daemons in one process do not collide. The daemon loop feeds it values it
already has (pass outcome, jobs by phase, the drivers' call counters); the server
thread only reads. ``serve_metrics`` answers ``/metrics`` and ``/healthz``.

A pass is ``ok`` (nothing failed), ``failed`` (it ran, but a provider call or an action
failed) or ``error`` (it could not run: the ledger, say). ``/healthz`` answers 503, with
the reason in one line, once ``UNHEALTHY_AFTER`` passes in a row failed with nothing they
tried working (every provider call and every action failed, or the pass raised), or
when no pass has got anything done for ``max_age`` seconds (the daemon gives 3 intervals,
at least 60 s); a pass with some failures and some progress keeps it healthy.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# the text format generate_latest writes (prometheus_client < 0.22 has no constant for it)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# a pass is a few GETs when nothing changes, minutes when it uploads data files
PASS_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
UNHEALTHY_AFTER = 3  # passes in a row where nothing worked
RESULTS = ("ok", "failed", "error")


class Metrics:
    """What the daemon reports: passes, their duration, jobs by phase, provider calls."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.started_at = clock()
        self.last_pass_at: float | None = None
        self.last_ok_at: float | None = None  # the last pass that got something done
        self.stalled = 0  # passes in a row where nothing worked
        self.trouble: str | None = None  # why the last pass failed
        self._jobs: set[tuple[str, str]] = set()
        self._seen_calls: dict[str, tuple[int, int]] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.passes = Counter(
            "reconciler_passes", "Reconcile passes, by result.", ["result"], registry=r
        )
        self.pass_duration = Histogram(
            "reconciler_pass_duration_seconds",
            "Wall time of one reconcile pass.",
            buckets=PASS_BUCKETS,
            registry=r,
        )
        self.last_success = Gauge(
            "reconciler_last_successful_pass_timestamp_seconds",
            "Unix time the last successful reconcile pass finished.",
            registry=r,
        )
        self.jobs = Gauge(
            "reconciler_jobs",
            "Current attempts of managed jobs, by provider and phase.",
            ["provider", "phase"],
            registry=r,
        )
        self.provider_calls = Counter(
            "reconciler_provider_calls",
            "HTTP requests sent to a provider API, retries included.",
            ["provider"],
            registry=r,
        )
        self.provider_errors = Counter(
            "reconciler_provider_errors",
            "Provider API requests that failed (error status, timeout, connection).",
            ["provider"],
            registry=r,
        )
        self.unknown_jobs = Gauge(
            "reconciler_unknown_jobs",
            "Jobs of this project's namespace the ledger does not know, by kind "
            "(duplicate: cancelled on the pass; stray: left for a person).",
            ["kind"],
            registry=r,
        )
        for kind in ("duplicate", "stray"):
            self.unknown_jobs.labels(kind=kind).set(0)
        self.leases = Gauge(
            "reconciler_leases_held",
            "On a PostgreSQL ledger: 1 for each provider account this replica holds the "
            "lease of (its specs are reconciled here), with the lease's fencing epoch.",
            ["replica", "account", "epoch"],
            registry=r,
        )
        self.replicas = Gauge(
            "reconciler_replicas",
            "On a PostgreSQL ledger: the watch replicas heard from within a lease TTL.",
            registry=r,
        )
        self._leases: set[tuple[str, str, str]] = set()
        # every result exists from the start, so rate() over them is never "no data"
        for result in RESULTS:
            self.passes.labels(result=result)

    def pass_finished(
        self,
        seconds: float,
        ok: bool = True,
        *,
        trouble: str | None = None,
        stalled: bool = False,
    ) -> None:
        """Record one pass that took ``seconds``: it raised (``ok=False``), or ran with
        ``trouble`` (what failed; ``stalled`` when nothing it tried worked), or ran clean."""
        now = self.clock()
        self.last_pass_at = now
        result = "error" if not ok else "failed" if trouble else "ok"
        self.passes.labels(result=result).inc()
        self.pass_duration.observe(max(0.0, seconds))
        if not ok or (trouble and stalled):
            self.stalled += 1
            self.trouble = " ".join((trouble or "the pass could not run").split())
            return
        self.stalled, self.trouble = 0, None
        self.last_ok_at = now
        if result == "ok":
            self.last_success.set(now)

    def set_jobs(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Replace the jobs gauge with ``{(provider, phase): count}``; gone pairs drop to 0."""
        current = {(str(provider), str(phase)): n for (provider, phase), n in counts.items()}
        for provider, phase in self._jobs - set(current):
            self.jobs.labels(provider=provider, phase=phase).set(0)
        for (provider, phase), count in current.items():
            self.jobs.labels(provider=provider, phase=phase).set(count)
        self._jobs |= set(current)

    def set_leases(self, replica: str, held: Mapping[str, int], live: int) -> None:
        """This replica's leases (account → epoch) and how many replicas are live."""
        now = {(replica, account, str(epoch)) for account, epoch in held.items()}
        for gone in self._leases - now:
            self.leases.remove(*gone)
        for labels in now:
            self.leases.labels(*labels).set(1)
        self._leases = now
        self.replicas.set(live)

    def set_unknown(self, kinds: Mapping[str, int]) -> None:
        """What the last pass's sweep found: ``{"duplicate": n, "stray": m}``."""
        for kind in ("duplicate", "stray"):
            self.unknown_jobs.labels(kind=kind).set(kinds.get(kind, 0))

    def set_provider_calls(self, calls: Mapping[str, tuple[int, int]]) -> None:
        """Advance the call and error counters from the drivers' running totals.

        ``calls`` is every live driver's ``(api.calls, api.errors)``. Counters grow by
        the difference since the last call; a total that went down belongs to a rebuilt
        driver that counts from 0 again, so all of it is new. A provider missing from
        ``calls`` is forgotten: its next driver starts from 0.
        """
        for provider, (total, errors) in calls.items():
            seen_total, seen_errors = self._seen_calls.get(provider, (0, 0))
            self.provider_calls.labels(provider=provider).inc(_delta(total, seen_total))
            self.provider_errors.labels(provider=provider).inc(_delta(errors, seen_errors))
        self._seen_calls = {p: (max(0, c), max(0, e)) for p, (c, e) in calls.items()}

    def unhealthy_reason(self, max_age: float) -> str | None:
        """Why the daemon is not healthy, in one line; None when it is."""
        now = self.clock()
        if self.stalled >= UNHEALTHY_AFTER:
            return (
                f"the last {self.stalled} passes failed, nothing they tried worked: {self.trouble}"
            )
        if self.last_ok_at is not None:
            age = now - self.last_ok_at
            if age <= max_age:
                return None
            return f"last successful pass {age:.0f}s ago (limit {max_age:.0f}s)"
        if self.last_pass_at is None:
            if now - self.started_at < max_age:
                return None
            return f"no pass finished in {now - self.started_at:.0f}s since start"
        return "no successful pass since start"

    def healthy(self, max_age: float) -> bool:
        """A successful pass within ``max_age`` seconds, or still starting up."""
        return self.unhealthy_reason(max_age) is None

    def render(self) -> bytes:
        """The registry in the Prometheus text exposition format (version 0.0.4)."""
        return generate_latest(self.registry)


def _delta(total: int, seen: int) -> int:
    return total - seen if total >= seen else max(0, total)


class MetricsServer:
    """A running ``/metrics`` and ``/healthz`` server on a daemon thread."""

    def __init__(self, server: ThreadingHTTPServer) -> None:
        self._server = server
        # a short poll keeps close() quick; the loop is idle otherwise
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="reconciler-metrics",
            daemon=True,
        )
        self._thread.start()

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve_metrics(metrics: Metrics, host: str, port: int, *, max_age: float) -> MetricsServer:
    """Serve ``metrics`` on ``host:port`` (0 picks a free port) until ``close()``."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "reconciler"
        sys_version = ""

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._answer(200, metrics.render(), CONTENT_TYPE)
            elif path == "/healthz":
                reason = metrics.unhealthy_reason(max_age)
                if reason is None:
                    self._answer(200, b"ok\n")
                else:
                    self._answer(503, reason.encode() + b"\n")
            else:
                self._answer(404, b"not found\n")

        def _answer(
            self, status: int, body: bytes, ctype: str = "text/plain; charset=utf-8"
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # a scrape every few seconds is not worth a line on stderr

    class Server(ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        daemon_threads = True

    server = Server((host, port), Handler)
    return MetricsServer(server)
