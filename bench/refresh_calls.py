"""Provider calls to refresh N active jobs per provider, against ⌈N / page size⌉ lists.

Set-up: the emulator with a ``stuck`` fault (jobs never finish), N specs per provider
applied by ``reconciler apply --yes``; then one ``refresh`` of the whole ledger through
a ``DriverPool``, whose ``ApiClient``s count every call.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import specgen
from measure import EmulatorProcess, Figure, reconciler_argv, reconciler_env, run_child

# list page sizes the drivers use (Together answers one unpaginated list)
PAGE_SIZE = {"together": math.inf, "openai": 100, "mistral": 100}
STUCK = {
    "stuck": [
        {"status": "running", "provider": "together"},
        {"status": "running", "provider": "openai"},
        {"status": "RUNNING", "provider": "mistral"},
    ]
}


def expected_calls(n: int, page: float) -> int:
    return 1 if math.isinf(page) else math.ceil(n / page)


def run(work: Path, per_provider: int) -> list[Figure]:
    providers = tuple(PAGE_SIZE)
    specs, ledger = work / "specs", work / "ledger.db"
    specgen.write_tree(specs, per_provider * len(providers), providers)
    options = ("--speed", "1000", "--faults", json.dumps(STUCK))
    with EmulatorProcess(work / "emulator.db", *options) as emu:
        env = reconciler_env(emu.url)
        setup = run_child(reconciler_argv(specs, ledger, "apply", "--yes"), env=env)

        from reconciler.ledger import open_ledger
        from reconciler.log import configure
        from reconciler.observe import refresh
        from reconciler.providers.pool import DriverPool

        configure(0)  # warnings only: the bench prints its own table
        book = open_ledger(ledger, readonly=True)
        pool = DriverPool(env)
        try:
            records = book.records()
            active: dict[str, int] = {}
            for record in records.values():
                for a in record.attempts:
                    if a.phase.active and a.remote_id:
                        active[a.provider] = active.get(a.provider, 0) + 1
            started = time.perf_counter()
            result = refresh(records, pool)
            seconds = time.perf_counter() - started
            calls = pool.calls()
        finally:
            pool.close()
            book.close()
    if result.errors:
        raise RuntimeError(f"refresh failed: {result.errors}")
    figures = []
    for provider in providers:
        n = active.get(provider, 0)
        if n != per_provider:
            raise RuntimeError(f"{provider}: {n} active jobs in the ledger, not {per_provider}")
        page = PAGE_SIZE[provider]
        shown = "∞" if math.isinf(page) else str(int(page))
        figures.append(
            Figure(
                f"refresh_calls: {provider}, {n} active jobs",
                float(calls.get(provider, 0)),
                "calls",
                float(expected_calls(n, page)),
                f"⌈{n}/{shown}⌉ lists",
                budget=1.0,
            )
        )
    observed = len(result.observed)
    figures[0].note = (
        f"one refresh of {observed} jobs took {seconds:.2f} s; "
        f"set-up apply of {per_provider * len(providers)} specs {setup.seconds:.1f} s"
    )
    return figures
