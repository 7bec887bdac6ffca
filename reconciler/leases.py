"""Several ``watch`` replicas on one PostgreSQL ledger (DESIGN §12): who works on which
provider account, decided by lease rows in the ledger, with PostgreSQL as the arbiter.

**What is leased: a provider account** (a spec's ``provider:``, a built-in or a profile
of ``reconciler.yaml``), not a spec. An account is the unit a pass works in: one listing
sees every job there, the sweep for strays and duplicates is per account, and the rate
limit is the account's. So one replica per account at a time lists, creates and cancels
there, and no two replicas spend one account's rate limit or race in one account's list.
The price: one account's specs are reconciled by one replica at a time (replicas scale
with accounts, not with specs inside one account).

- A replica heartbeats in ``replicas`` and holds its share of the accounts: ``ceil(
  accounts / live replicas)``. It renews what it holds, gives back what is over its
  share, and claims free or expired leases up to it.
- Every claim by a new holder bumps the lease's **epoch**. Before every ledger write, the
  replica's fence checks, in the same transaction, that each lease it holds still has its
  holder, its epoch and time left. A replica whose lease expired (killed, paused, cut off)
  never writes again with the old epoch: the write is refused, nothing is half-written,
  and the pass stops.
- Times are the server's clock (``clock_timestamp()``), never a replica's.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .errors import LedgerError

NOW = "EXTRACT(EPOCH FROM clock_timestamp())"


class LeaseLost(LedgerError):
    """A lease this replica held has expired or passed to another replica: its writes stop."""


def replica_name() -> str:
    """``host:pid:random``: unique per process, readable in ``status`` and metrics."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class Replica:
    """One replica's view of its leases, kept in the ledger (``rows``: its connection)."""

    ledger: Any  # a PostgresLedger: rows, write()
    name: str = field(default_factory=replica_name)
    ttl: float = 30.0
    held: dict[str, int] = field(default_factory=dict)  # account → epoch
    live: int = 1  # replicas heard from within the TTL, at the last balance
    # a pass's balance and the renewer's keep_alive, one at a time
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    # -- the fence, run inside every write transaction ------------------------------
    def fence(self, rows: Any) -> None:
        if not self.held:
            return
        names = sorted(self.held)
        marks = ", ".join("?" * len(names))
        found = rows.query(
            f"SELECT name, holder, epoch, expires_at > {NOW} AS live FROM leases "
            f"WHERE name IN ({marks}) FOR SHARE",
            names,
        )
        ours = {r["name"]: r for r in found}
        lost = [
            n
            for n in names
            if n not in ours
            or ours[n]["holder"] != self.name
            or int(ours[n]["epoch"]) != self.held[n]
            or not ours[n]["live"]
        ]
        if lost:
            gone = ", ".join(lost)
            self.held = {n: e for n, e in self.held.items() if n not in lost}
            raise LeaseLost(
                f"replica {self.name} lost its lease on {gone}; nothing written, the pass stops"
            )

    # -- one balancing step, each pass (and by the renewer) ---------------------------
    def balance(self, accounts: Iterable[str]) -> set[str]:
        """Heartbeat, renew, give back, claim: the accounts this replica now holds."""
        wanted = sorted(set(accounts))
        with self.lock, self.ledger.write(bump=False, fenced=False) as rows:
            self._heartbeat(rows)
            rows.execute(  # replicas gone long ago: forget them
                f"DELETE FROM replicas WHERE seen_at < {NOW} - ?", [10 * self.ttl]
            )
            share, leases = self._share(rows, wanted)
            mine = [n for n in wanted if self._ours(leases.get(n))]
            # over the share (a replica joined): give the extras back, for the newcomer
            for name in sorted(mine, key=self._order)[share:]:
                rows.execute(
                    "UPDATE leases SET holder = NULL, expires_at = 0 WHERE name = ? AND holder = ?",
                    [name, self.name],
                )
                mine.remove(name)
            held = {}
            for name in mine:
                rows.execute(
                    f"UPDATE leases SET expires_at = {NOW} + ? WHERE name = ?", [self.ttl, name]
                )
                held[name] = int(leases[name]["epoch"])
            free = [n for n in wanted if n not in held and self._free(leases.get(n))]
            for name in sorted(free, key=self._order)[: max(share - len(held), 0)]:
                epoch = self._claim(rows, name)
                if epoch is not None:
                    held[name] = epoch
            self.held = held
        return set(held)

    def keep_alive(self, accounts: Iterable[str], ledger: Any) -> tuple[bool, float | None]:
        """Between a pass's balances (``Renewer``, on its own connection): heartbeat,
        extend the leases held, and claim free or expired ones up to the share. Nothing
        is given back and ``held`` is left alone (what a pass works on, and what its
        fence checks, changes only at a pass's balance, which takes up what this
        claimed). Returns whether it claimed an account, and the seconds until another
        replica's lease on a wanted account runs out (None: none held elsewhere)."""
        wanted = sorted(set(accounts))
        claimed = False
        with self.lock, ledger.write(bump=False, fenced=False) as rows:
            self._heartbeat(rows)
            for name, epoch in self.held.items():  # only while live: never revived
                rows.execute(
                    f"UPDATE leases SET expires_at = {NOW} + ? WHERE name = ? AND holder = ? "
                    f"AND epoch = ? AND expires_at > {NOW}",
                    [self.ttl, name, self.name, epoch],
                )
            share, leases = self._share(rows, wanted)
            mine = [n for n in wanted if self._ours(leases.get(n))]
            free = [n for n in wanted if n not in mine and self._free(leases.get(n))]
            for name in sorted(free, key=self._order)[: max(share - len(mine), 0)]:
                claimed = self._claim(rows, name) is not None or claimed
            theirs = [
                float(lease["expires_at"]) - float(lease["now"])
                for n in wanted
                if n not in mine
                and (lease := leases.get(n)) is not None
                and lease["holder"] not in (None, self.name)
                and not self._free(lease)
            ]
        return claimed, min(theirs) if theirs else None

    def _share(self, rows: Any, wanted: list[str]) -> tuple[int, dict[str, Any]]:
        """This replica's share of ``wanted`` among the live replicas, and every lease."""
        live = [
            r["holder"]
            for r in rows.query(
                f"SELECT holder FROM replicas WHERE seen_at > {NOW} - ? ORDER BY holder",
                [self.ttl],
            )
        ]
        self.live = len(live)
        share = math.ceil(len(wanted) / max(len(live), 1)) if wanted else 0
        leases = {r["name"]: r for r in rows.query("SELECT *, " + NOW + " AS now FROM leases")}
        return share, leases

    def _order(self, name: str) -> str:
        """A per-replica order of the accounts, so replicas starting together spread out."""
        import hashlib

        return hashlib.sha256(f"{self.name}/{name}".encode()).hexdigest()

    def _ours(self, lease: dict[str, Any] | None) -> bool:
        return bool(
            lease
            and lease["holder"] == self.name
            and float(lease["expires_at"] or 0) > lease["now"]
        )

    @staticmethod
    def _free(lease: dict[str, Any] | None) -> bool:
        if lease is None or lease["holder"] is None:
            return True
        return float(lease["expires_at"] or 0) <= float(lease["now"])

    def _claim(self, rows: Any, name: str) -> int | None:
        rows.execute(
            "INSERT INTO leases (name, epoch) VALUES (?, 0) ON CONFLICT DO NOTHING", [name]
        )
        found = rows.query(
            f"UPDATE leases SET holder = ?, epoch = epoch + 1, expires_at = {NOW} + ?, "
            f"acquired_at = {NOW} WHERE name = ? AND (holder IS NULL OR expires_at <= {NOW}) "
            "RETURNING epoch",
            [self.name, self.ttl, name],
        )
        return int(found[0]["epoch"]) if found else None

    def _heartbeat(self, rows: Any) -> None:
        rows.execute(
            f"INSERT INTO replicas (holder, started_at, seen_at, info) VALUES (?, {NOW}, {NOW}, ?) "
            f"ON CONFLICT (holder) DO UPDATE SET seen_at = {NOW}",
            [self.name, f"pid {os.getpid()} on {socket.gethostname()}"],
        )

    def release(self) -> None:
        """Give every lease back at once (a clean stop): the others take over at their
        next pass, not after the TTL."""
        with self.lock, self.ledger.write(bump=False, fenced=False) as rows:
            rows.execute(
                "UPDATE leases SET holder = NULL, expires_at = 0 WHERE holder = ?", [self.name]
            )
            rows.execute("DELETE FROM replicas WHERE holder = ?", [self.name])
        self.held = {}


def replicas_and_leases(rows: Any, ttl: float) -> list[dict[str, Any]]:
    """For ``status`` and metrics: each live replica with the accounts it holds."""
    found = rows.query(
        f"SELECT r.holder, r.info, r.seen_at, {NOW} - r.seen_at AS age, "
        f"l.name, l.epoch, l.expires_at - {NOW} AS left_s FROM replicas r "
        "LEFT JOIN leases l ON l.holder = r.holder AND l.expires_at > "
        f"{NOW} WHERE r.seen_at > {NOW} - ? ORDER BY r.holder, l.name",
        [ttl],
    )
    out: dict[str, dict[str, Any]] = {}
    for row in found:
        entry = out.setdefault(
            row["holder"],
            {
                "replica": row["holder"],
                "info": row["info"],
                "seen_s_ago": round(float(row["age"]), 1),
                "holds": [],
            },
        )
        if row["name"] is not None:
            entry["holds"].append({"account": row["name"], "epoch": int(row["epoch"])})
    return list(out.values())


def replica_lines(replicas: list[dict[str, Any]]) -> list[str]:
    """``status``'s block: each live replica and the accounts it holds."""
    lines = [f"Replicas on this ledger: {len(replicas)}"]
    for r in replicas:
        holds = ", ".join(f"{h['account']} (epoch {h['epoch']})" for h in r["holds"]) or "nothing"
        lines.append(f"  {r['replica']}  holds {holds}; seen {r['seen_s_ago']:g}s ago")
    return lines


class Renewer:
    """A replica's leases kept alive while it works: every third of the TTL, on a
    connection of its own, ``keep_alive`` (a pass that acts for longer than the TTL keeps
    its accounts, and an account whose holder died is claimed within a third of the TTL
    of its expiry, not at the next pass). ``gained`` is set when it claimed one; the
    daemon then passes at once. Paused while the specs load (forking, for parsing on
    every core, is safe only with no other thread)."""

    def __init__(
        self, replica: Replica, ledger: Any, accounts: Callable[[], Iterable[str]]
    ) -> None:
        self.replica, self.ledger, self.accounts = replica, ledger, accounts
        self.gained = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="lease-renewer", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        running = self._thread is not None
        self.stop()
        try:
            yield
        finally:
            if running:
                self.start()

    def _run(self) -> None:
        wait = self.replica.ttl / 3
        while not self._stop.wait(wait):
            wait = self.replica.ttl / 3
            accounts = set(self.accounts())
            if not accounts:
                continue
            try:
                claimed, expiring = self.replica.keep_alive(accounts, self.ledger)
                if claimed:
                    self.gained.set()
                if expiring is not None:  # look again the moment another's lease runs out
                    wait = min(wait, expiring + 0.05)
            except LedgerError as exc:  # the pass's own balance and fence still decide
                from .log import get

                get("reconciler.leases").warning("lease renewal failed", error=str(exc))
