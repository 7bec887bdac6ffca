"""The watch daemon's pass logic, in process (fake provider, fake clock)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import FakeDriver, FakePool, FakeProvider
from support import Clock, SpecTree

from reconciler.errors import ErrorKind, ProviderError
from reconciler.ledger import open_ledger
from reconciler.model import Phase
from reconciler.source import SpecSource
from reconciler.watch import Watcher


class Flaky(FakeDriver):
    down = False

    def list_jobs(self):  # type: ignore[no-untyped-def]
        if self.down:
            self.calls.append("list_jobs")
            raise ProviderError("together", "503 overloaded", kind=ErrorKind.RETRYABLE, status=503)
        return super().list_jobs()


def make_watcher(tree: SpecTree, tmp_path: Path, clock: Clock, monotonic: Clock, **extra):  # type: ignore[no-untyped-def]
    """A watcher over a fake provider, a fresh ledger, and the given clocks."""
    provider = FakeProvider()
    driver = Flaky(provider)
    watcher = Watcher(
        ledger=open_ledger(tmp_path / "ledger.db", clock=clock),
        drivers=FakePool(driver),  # type: ignore[arg-type]
        source=SpecSource(tree.root, reuse=True),
        interval=10,
        adopt_grace=0,
        clock=clock,
        monotonic=monotonic,
        **extra,
    )
    return watcher, provider, driver


@pytest.fixture
def setup(tree: SpecTree, tmp_path: Path, clock: Clock):  # type: ignore[no-untyped-def]
    finished: list[str] = []
    watcher, provider, driver = make_watcher(
        tree,
        tmp_path,
        clock,
        clock,
        on_finished=lambda a: finished.append(f"{a.name}:{a.phase.value}"),
    )
    yield watcher, provider, driver, finished
    watcher.ledger.close()


def test_a_bad_spec_is_reported_and_the_others_still_reconcile_without_removals(
    setup, tree: SpecTree, clock: Clock
) -> None:  # type: ignore[no-untyped-def]
    watcher, provider, _driver, _ = setup
    tree.spec("alpha")
    tree.spec("beta")
    watcher.reconcile()
    assert len(provider.jobs) == 2
    (tree.root / "beta.yaml").write_text("apiVersion: [broken\n")  # beta's file breaks
    tree.spec("gamma")
    clock.advance(11)
    outcomes = watcher.reconcile()
    assert [(o.name, o.kind.value) for o in outcomes] == [("gamma", "create")]  # beta not cancelled
    assert all(j.phase.active for j in provider.jobs.values())
    assert any("beta.yaml" in p for p in watcher.problems)


def test_terminal_jobs_are_not_polled_and_running_ones_less_often(
    setup, tree: SpecTree, clock: Clock
) -> None:  # type: ignore[no-untyped-def]
    watcher, provider, driver, finished = setup
    tree.spec("alpha")
    watcher.reconcile()
    driver.calls.clear()
    clock.advance(5)
    watcher.reconcile()  # not due yet (queued: every 10 s)
    assert "list_jobs" not in driver.calls
    clock.advance(6)
    watcher.reconcile()
    assert driver.calls.count("list_jobs") == 1
    job_id = next(iter(provider.jobs))
    provider.set_phase(job_id, Phase.RUNNING)
    clock.advance(11)
    watcher.reconcile()  # sees running
    driver.calls.clear()
    clock.advance(11)
    watcher.reconcile()  # running: every 2 × interval
    assert "list_jobs" not in driver.calls
    provider.finish_all()
    clock.advance(11)
    watcher.reconcile()
    assert finished == ["alpha:succeeded"]
    driver.calls.clear()
    for _ in range(3):
        clock.advance(60)
        watcher.reconcile()
    assert driver.calls == []  # terminal: never polled again


def test_a_failing_provider_is_backed_off_and_recovers(setup, tree: SpecTree, clock: Clock) -> None:  # type: ignore[no-untyped-def]
    watcher, provider, driver, _ = setup
    tree.spec("alpha")
    watcher.reconcile()
    driver.down = True
    clock.advance(11)
    watcher.reconcile()
    health = watcher.health["together"]
    assert health.failures == 1 and health.next_try > clock.now
    driver.calls.clear()
    watcher.reconcile()  # inside the backoff: not asked again
    assert "list_jobs" not in driver.calls
    driver.down = False
    provider.finish_all()
    clock.now = health.next_try + 1
    watcher.reconcile()
    assert watcher.health["together"].failures == 0
    (record,) = watcher.ledger.records().values()
    assert record.current is not None and record.current.phase is Phase.SUCCEEDED


def test_stop_ends_a_pass_between_actions(setup, tree: SpecTree) -> None:  # type: ignore[no-untyped-def]
    watcher, provider, _, _ = setup
    for name in ("a", "b", "c"):
        tree.spec(name)
    watcher.stop.set()
    assert watcher.reconcile() == []
    assert not provider.jobs


def test_a_backward_step_of_the_wall_clock_does_not_stall_refreshes(
    tree: SpecTree, tmp_path: Path, clock: Clock
) -> None:
    """Waits are measured on a monotonic clock: the wall clock going back an hour (an NTP
    correction) changes nothing about when a job is looked at again (issue #11, 12)."""
    mono = Clock(start=100.0)
    watcher, _provider, driver = make_watcher(tree, tmp_path, clock, mono)
    try:
        tree.spec("alpha")
        watcher.reconcile()
        clock.advance(-3600)  # the wall clock steps back an hour
        mono.advance(11)
        driver.calls.clear()
        watcher.reconcile()
        assert driver.calls.count("list_jobs") == 1  # looked at on time all the same
    finally:
        watcher.ledger.close()


def test_a_removed_spec_waits_for_the_settle_period(setup, tree: SpecTree, clock: Clock) -> None:  # type: ignore[no-untyped-def]
    watcher, _provider, _driver, _ = setup
    watcher.removal_settle = 30
    tree.spec("alpha")
    tree.spec("beta")
    watcher.reconcile()
    tree.remove("beta")
    clock.advance(11)
    assert watcher.reconcile() == []  # gone a moment: held
    clock.advance(11)
    assert watcher.reconcile() == []
    clock.advance(20)  # gone for 31 s now
    outcomes = watcher.reconcile()
    assert [(o.name, o.kind.value) for o in outcomes] == [("beta", "cancel")]


def test_passes_where_every_provider_call_fails_are_failed_and_make_healthz_503(
    setup, tree: SpecTree, clock: Clock
) -> None:  # type: ignore[no-untyped-def]
    import argparse

    import httpx

    from reconciler.commands.daemon import _observe

    watcher, _provider, driver, _ = setup
    watcher.drivers.call_totals = lambda: {}
    args = argparse.Namespace(metrics_host="127.0.0.1", metrics_port=0, interval=10)
    server = _observe(watcher, args)
    try:
        with httpx.Client(trust_env=False, timeout=5) as http:

            def get(path: str) -> httpx.Response:
                return http.get(f"http://127.0.0.1:{server.port}{path}")

            tree.spec("alpha")
            watcher.reconcile()
            assert get("/healthz").status_code == 200
            driver.down = True  # from now on every list of the provider fails
            for _ in range(3):
                clock.advance(11)
                watcher.reconcile()
            health = get("/healthz")
            assert health.status_code == 503
            assert health.text.startswith("the last 3 passes failed, nothing they tried worked:")
            assert "503 overloaded" in health.text and health.text.count("\n") == 1
            metrics = get("/metrics").text
            assert 'reconciler_passes_total{result="ok"} 1.0' in metrics
            assert 'reconciler_passes_total{result="failed"} 3.0' in metrics
            driver.down = False
            clock.advance(400)  # past the backoff
            watcher.reconcile()
            assert get("/healthz").status_code == 200
            assert watcher.trouble is None
    finally:
        server.close()


def test_a_failed_action_is_logged_as_a_warning_and_fails_the_pass(setup, tree: SpecTree) -> None:  # type: ignore[no-untyped-def]
    import io

    import structlog

    from reconciler.log import configure

    watcher, _provider, driver, _ = setup

    def refuse(request):  # type: ignore[no-untyped-def]
        raise ProviderError("together", "model not available", kind=ErrorKind.PERMANENT, status=400)

    driver.create_job = refuse
    tree.spec("alpha")
    saved = structlog.get_config()
    try:
        configure(verbose=1, stream=io.StringIO())  # whatever level an earlier test left
        with structlog.testing.capture_logs() as logs:
            watcher.reconcile()
    finally:
        structlog.configure(**saved)
    outcomes = [e for e in logs if e["event"] == "action" and "ok" in e]
    assert [(e["log_level"], e["ok"], e["name"]) for e in outcomes] == [("warning", False, "alpha")]
    assert watcher.stalled and "alpha: create failed: " in (watcher.trouble or "")
    assert "model not available" in (watcher.trouble or "")


def test_a_cancelled_job_is_announced_once_even_when_its_spec_is_forgotten_with_it(
    setup, tree: SpecTree, clock: Clock
) -> None:  # type: ignore[no-untyped-def]
    watcher, provider, _driver, finished = setup
    watcher.removal_settle = 0
    tree.spec("alpha")
    tree.spec("beta")
    watcher.reconcile()
    alpha, beta = list(provider.jobs)
    provider.set_phase(alpha, Phase.CANCELLED)  # cancelled by someone at the provider
    tree.remove("beta")  # cancelled by reconciler: the spec is gone
    for _ in range(6):
        clock.advance(21)
        watcher.reconcile()
        if provider.jobs[beta].phase is Phase.CANCELLING:
            provider.set_phase(beta, Phase.CANCELLED)
    assert sorted(finished) == ["alpha:cancelled", "beta:cancelled"]
