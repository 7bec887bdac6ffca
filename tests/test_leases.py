"""Replicas' leases on a real PostgreSQL server: shares, take-over after expiry, the
fencing epoch that stops a replica whose lease passed on, and a clean give-back."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from reconciler.leases import LeaseLost, Replica, replicas_and_leases
from reconciler.ledger import open_ledger

ACCOUNTS = ["fireworks", "openai", "together", "together-research"]


@pytest.fixture
def replicas(pg_url: str) -> Iterator[Callable[..., Replica]]:
    opened: list[Any] = []

    def make(name: str, ttl: float = 30.0) -> Replica:
        ledger = open_ledger(pg_url)
        opened.append(ledger)
        replica = Replica(ledger, name=name, ttl=ttl)
        ledger.fence = replica.fence  # type: ignore[attr-defined]
        return replica

    yield make
    for ledger in opened:
        ledger.close()


def test_replicas_share_the_accounts_and_a_newcomer_gets_its_share(
    replicas: Callable[..., Replica],
) -> None:
    a = replicas("a")
    assert a.balance(ACCOUNTS) == set(ACCOUNTS)  # alone: everything
    b = replicas("b")
    assert b.balance(ACCOUNTS) == set()  # all taken, none expired
    assert len(a.balance(ACCOUNTS)) == 2  # over its share of 2: two given back
    got = b.balance(ACCOUNTS)
    assert len(got) == 2 and got.isdisjoint(a.held)
    assert a.balance(ACCOUNTS) | b.balance(ACCOUNTS) == set(ACCOUNTS)
    listed = {
        r["replica"]: {h["account"] for h in r["holds"]}
        for r in replicas_and_leases(a.ledger.rows, 30)
    }
    assert listed == {"a": set(a.held), "b": set(b.held)}


def test_an_expired_lease_passes_on_and_the_old_holder_can_no_longer_write(
    replicas: Callable[..., Replica],
) -> None:
    a, b = replicas("a", ttl=1.0), replicas("b", ttl=1.0)
    assert a.balance(["together"]) == {"together"}
    first = a.held["together"]
    a.ledger.record_event("note", "a writes while it holds the lease")
    serial = a.ledger.serial
    time.sleep(1.3)  # a is paused (or cut off) past its TTL; b takes over
    assert b.balance(["together"]) == {"together"}
    assert b.held["together"] == first + 1  # a new epoch
    with pytest.raises(LeaseLost, match=r"replica a lost its lease on together"):
        a.ledger.record_event("note", "a stale write")
    assert a.ledger.serial == serial  # nothing written
    b.ledger.record_event("note", "b writes")  # the new holder's fence passes
    assert a.held == {}  # a knows it lost it; its next balance claims nothing held
    assert a.balance(["together"]) == set()


def test_a_clean_stop_gives_the_leases_back_at_once(replicas: Callable[..., Replica]) -> None:
    a, b = replicas("a"), replicas("b")
    a.balance(ACCOUNTS)
    a.release()
    assert b.balance(ACCOUNTS) == set(ACCOUNTS)  # no wait for the TTL
    assert [r["replica"] for r in replicas_and_leases(b.ledger.rows, 30)] == ["b"]


def test_a_replica_never_leases_local_training(
    replicas: Callable[..., Replica], tmp_path: Any
) -> None:
    """A local job lives on the machine that started it: no replica takes it over."""
    from types import SimpleNamespace

    from reconciler.providers.pool import DriverPool
    from reconciler.source import SpecSource
    from reconciler.watch import Watcher

    replica = replicas("a")
    watcher = Watcher(
        ledger=replica.ledger,
        drivers=DriverPool({}),
        source=SpecSource(tmp_path),
        interval=1.0,
        adopt_grace=0.0,
    )
    watcher.replica = replica
    jobs = [
        SimpleNamespace(name=n, spec=SimpleNamespace(provider=p))
        for n, p in (("a", "together"), ("b", "local"), ("c", "openai"))
    ]
    assert watcher._balance(jobs) == {"together", "openai"}
    assert watcher.local_warned
    owned = watcher._owned(jobs, {"together", "openai"})
    assert [n for n in ("a", "b", "c") if owned(n)] == ["a", "c"]


def _expiry(replica: Replica, account: str) -> float:
    row = replica.ledger.rows.query(
        "SELECT expires_at - EXTRACT(EPOCH FROM clock_timestamp()) AS left FROM leases "
        "WHERE name = ?",
        [account],
    )
    return float(row[0]["left"])


def _a_holds_together_b_openai(
    replicas: Callable[..., Replica], ttl: float
) -> tuple[Replica, Replica]:
    a, b = replicas("a", ttl=ttl), replicas("b", ttl=ttl)
    assert a.balance(["together"]) == {"together"}
    assert b.balance(["together", "openai"]) == {"openai"}
    return a, b


def test_keep_alive_renews_and_claims_but_never_gives_back(
    replicas: Callable[..., Replica], pg_url: str
) -> None:
    a, b = _a_holds_together_b_openai(replicas, ttl=2.0)
    other = open_ledger(pg_url)  # the renewer's own connection
    try:
        time.sleep(1.2)
        assert _expiry(a, "together") < 1.0
        assert a.keep_alive(["together"], other) == (False, None)  # renewed, nothing to claim
        assert _expiry(a, "together") > 1.5
        assert a.held == {"together": a.held["together"]}
        _, expiring = a.keep_alive(["together", "openai"], other)
        assert expiring is not None and 0 < expiring < 2.0  # b's lease runs out then
        time.sleep(2.3)  # b is gone past its TTL (a kept alive, b did not)
        claimed, _ = a.keep_alive(["together", "openai"], other)
        assert claimed  # b's account
        assert a.held == {"together": 1}  # a pass's balance takes it up, not the renewer
        assert a.balance(["together", "openai"]) == {"together", "openai"}
        with pytest.raises(LeaseLost):
            b.ledger.record_event("note", "b, expired, writes no more")
    finally:
        other.close()


def test_the_renewer_keeps_a_long_pass_in_its_lease_and_claims_at_once(
    replicas: Callable[..., Replica], pg_url: str
) -> None:
    from reconciler.leases import Renewer

    a, _ = _a_holds_together_b_openai(replicas, ttl=1.5)
    renewer = Renewer(a, open_ledger(pg_url), lambda: {"together", "openai"})
    renewer.start()
    try:
        time.sleep(2.5)  # a "pass" longer than the TTL: the renewer kept the lease
        a.ledger.record_event("note", "a still writes")
        assert renewer.gained.wait(2.0)  # b stopped renewing: its account claimed
        assert a.balance(["together", "openai"]) == {"together", "openai"}
    finally:
        renewer.stop()
        renewer.ledger.close()
    assert renewer._thread is None
