"""Metrics: what the exposition says after a few passes, counters that never go down,
and /healthz and /metrics through the real server on a loopback port (fake clock)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from support import Clock

from reconciler.metrics import Metrics, MetricsServer, serve_metrics
from reconciler.model import Phase


def value(m: Metrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_render_has_every_metric_with_labels(clock: Clock) -> None:
    m = Metrics(clock=clock)
    m.pass_finished(0.3, ok=True)
    m.pass_finished(12.0, ok=False)
    m.set_jobs({("together", "running"): 2, ("openai", Phase.SUCCEEDED): 1})
    m.set_provider_calls({"together": (7, 1), "openai": (3, 0)})

    text = m.render().decode()

    assert 'reconciler_passes_total{result="ok"} 1.0' in text
    assert 'reconciler_passes_total{result="error"} 1.0' in text
    assert "reconciler_pass_duration_seconds_count 2.0" in text
    assert 'reconciler_pass_duration_seconds_bucket{le="0.5"} 1.0' in text
    assert "\nreconciler_last_successful_pass_timestamp_seconds 1.7e+09\n" in text
    assert 'reconciler_jobs{phase="running",provider="together"} 2.0' in text
    assert 'reconciler_jobs{phase="succeeded",provider="openai"} 1.0' in text
    assert 'reconciler_provider_calls_total{provider="together"} 7.0' in text
    assert 'reconciler_provider_errors_total{provider="together"} 1.0' in text
    assert 'reconciler_provider_calls_total{provider="openai"} 3.0' in text
    assert "# TYPE reconciler_pass_duration_seconds histogram" in text


def test_passes_start_at_zero_for_every_result(clock: Clock) -> None:
    text = Metrics(clock=clock).render().decode()
    assert 'reconciler_passes_total{result="ok"} 0.0' in text
    assert 'reconciler_passes_total{result="failed"} 0.0' in text
    assert 'reconciler_passes_total{result="error"} 0.0' in text


def test_a_pass_whose_calls_or_actions_failed_is_failed_not_ok(clock: Clock) -> None:
    m = Metrics(clock=clock)
    m.pass_finished(1.0, ok=True)
    first = clock.now
    clock.advance(10)
    m.pass_finished(1.0, trouble="together: 503 overloaded", stalled=False)  # some progress
    assert value(m, "reconciler_passes_total", result="failed") == 1
    assert value(m, "reconciler_passes_total", result="ok") == 1
    assert value(m, "reconciler_last_successful_pass_timestamp_seconds") == first
    assert m.healthy(300)  # partly failing, still getting things done


def test_three_passes_in_a_row_where_nothing_worked_are_unhealthy(clock: Clock) -> None:
    m = Metrics(clock=clock)
    m.pass_finished(1.0, ok=True)
    for n in (1, 2):
        m.pass_finished(1.0, trouble="together: 503 overloaded", stalled=True)
        assert m.healthy(300), n
    m.pass_finished(1.0, ok=False, trouble="cannot write the ledger l.db: disk I/O error")
    assert m.unhealthy_reason(300) == (
        "the last 3 passes failed, nothing they tried worked: "
        "cannot write the ledger l.db: disk I/O error"
    )
    m.pass_finished(1.0, trouble="together: 503\nagain", stalled=True)
    assert m.unhealthy_reason(300) == (
        "the last 4 passes failed, nothing they tried worked: together: 503 again"
    )
    m.pass_finished(1.0, ok=True)
    assert m.healthy(300)


def test_failed_pass_leaves_last_success_alone(clock: Clock) -> None:
    m = Metrics(clock=clock)
    m.pass_finished(1.0, ok=True)
    first = clock.now
    clock.advance(60)
    m.pass_finished(1.0, ok=False)
    assert value(m, "reconciler_last_successful_pass_timestamp_seconds") == first


def test_jobs_that_disappear_drop_to_zero(clock: Clock) -> None:
    m = Metrics(clock=clock)
    m.set_jobs({("together", "running"): 1})
    m.set_jobs({("together", "succeeded"): 1})
    assert value(m, "reconciler_jobs", provider="together", phase="running") == 0
    assert value(m, "reconciler_jobs", provider="together", phase="succeeded") == 1
    m.set_jobs({})
    assert value(m, "reconciler_jobs", provider="together", phase="succeeded") == 0


def test_a_replica_shows_the_accounts_it_holds_and_drops_those_it_lost(clock: Clock) -> None:
    m = Metrics(clock=clock)
    m.set_leases("host:1:ab", {"together": 3, "openai": 1}, live=3)
    text = m.render().decode()
    assert 'reconciler_leases_held{account="together",epoch="3",replica="host:1:ab"} 1.0' in text
    assert "\nreconciler_replicas 3.0\n" in text
    m.set_leases("host:1:ab", {"openai": 1}, live=2)  # together passed on to another
    assert (
        value(m, "reconciler_leases_held", replica="host:1:ab", account="together", epoch="3")
        is None
    )
    assert value(m, "reconciler_leases_held", replica="host:1:ab", account="openai", epoch="1") == 1
    assert value(m, "reconciler_replicas") == 2


def test_provider_counters_add_deltas_and_never_decrease(clock: Clock) -> None:
    m = Metrics(clock=clock)

    def calls() -> tuple[float | None, float | None]:
        return (
            value(m, "reconciler_provider_calls_total", provider="together"),
            value(m, "reconciler_provider_errors_total", provider="together"),
        )

    m.set_provider_calls({"together": (5, 1)})
    assert calls() == (5, 1)
    m.set_provider_calls({"together": (5, 1)})
    assert calls() == (5, 1)
    m.set_provider_calls({"together": (8, 1)})
    assert calls() == (8, 1)
    # the driver was rebuilt: its counters restart at 0 and everything it counts is new
    m.set_provider_calls({"together": (2, 0)})
    assert calls() == (10, 1)
    m.set_provider_calls({"together": (3, 2)})
    assert calls() == (11, 3)
    # the pool was closed, then a new driver made 4 calls before the next look
    m.set_provider_calls({})
    m.set_provider_calls({"together": (4, 0)})
    assert calls() == (15, 3)


@pytest.mark.parametrize(
    ("steps", "healthy"),
    [
        ([("wait", 10)], True),  # starting up
        ([("wait", 301)], False),  # never finished a pass
        ([("ok", 0), ("wait", 300)], True),
        ([("ok", 0), ("wait", 301)], False),
        ([("ok", 0), ("wait", 200), ("error", 0), ("wait", 50)], True),
        ([("error", 0)], False),  # tried and failed, nothing good yet
        ([("ok", 0), ("wait", 400), ("ok", 0)], True),
    ],
)
def test_healthy(clock: Clock, steps: list[tuple[str, float]], healthy: bool) -> None:
    m = Metrics(clock=clock)
    for step, seconds in steps:
        if step == "wait":
            clock.advance(seconds)
        else:
            m.pass_finished(1.0, ok=step == "ok")
    assert m.healthy(300) is healthy
    assert (m.unhealthy_reason(300) is None) is healthy


@pytest.fixture
def served(clock: Clock) -> Iterator[tuple[Metrics, MetricsServer]]:
    m = Metrics(clock=clock)
    server = serve_metrics(m, "127.0.0.1", 0, max_age=60)
    try:
        yield m, server
    finally:
        server.close()


Get = Callable[[str], httpx.Response]


@pytest.fixture
def get(served: tuple[Metrics, MetricsServer]) -> Iterator[Get]:
    """GET a path from the served metrics (one client: httpx.get builds SSL per call)."""
    with httpx.Client(trust_env=False, timeout=5) as http:
        yield lambda path: http.get(f"http://127.0.0.1:{served[1].port}{path}")


def test_server_healthz_follows_passes(
    served: tuple[Metrics, MetricsServer], get: Get, clock: Clock
) -> None:
    m, server = served
    assert server.port > 0
    first = get("/healthz")
    assert (first.status_code, first.text) == (200, "ok\n")

    m.pass_finished(0.5, ok=False)
    bad = get("/healthz")
    assert bad.status_code == 503
    assert bad.text == "no successful pass since start\n"

    m.pass_finished(0.5, ok=True)
    assert get("/healthz").status_code == 200
    clock.advance(61)
    stale = get("/healthz")
    assert stale.status_code == 503
    assert "last successful pass 61s ago" in stale.text
    assert stale.text.count("\n") == 1


def test_server_metrics_and_404(served: tuple[Metrics, MetricsServer], get: Get) -> None:
    m, _ = served
    m.pass_finished(2.0, ok=True)
    response = get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert response.content == m.render()
    assert get("/metrics?x=1").status_code == 200
    assert get("/").status_code == 404
    assert get("/favicon.ico").status_code == 404


def test_server_does_not_log_requests(get: Get, capsys: pytest.CaptureFixture[str]) -> None:
    get("/metrics")
    get("/nope")
    assert capsys.readouterr().err == ""


def test_the_sweeps_finds_are_a_gauge() -> None:
    m = Metrics()
    text = m.render().decode()
    assert 'reconciler_unknown_jobs{kind="stray"} 0.0' in text
    m.set_unknown({"stray": 2, "duplicate": 1})
    text = m.render().decode()
    assert 'reconciler_unknown_jobs{kind="stray"} 2.0' in text
    assert 'reconciler_unknown_jobs{kind="duplicate"} 1.0' in text
    m.set_unknown({})
    assert 'reconciler_unknown_jobs{kind="stray"} 0.0' in m.render().decode()
