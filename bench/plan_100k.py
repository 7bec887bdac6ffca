"""``plan --offline`` over 100,000 specs completes, and its time grows linearly: its time
per 10,000 specs against the plan of 10,000 specs (DESIGN §9), both cold (a fresh
ledger folder, so an empty spec cache), measured in the same run on trees made alike.
A ratio of 1 is linear growth; budget 1.25x."""

from __future__ import annotations

from pathlib import Path

import specgen
from measure import Figure, reconciler_argv, reconciler_env, run_child


def _cold_plan(specs: Path, state: Path) -> tuple[float, float]:
    state.mkdir(parents=True, exist_ok=True)
    child = run_child(reconciler_argv(specs, state / "none.db", "plan", "--offline"), env=ENV)
    return child.seconds, child.max_rss_mb


ENV = reconciler_env()


def run(work: Path, small: int, large: int) -> list[Figure]:
    weights = (0.7, 0.15, 0.15)
    specgen.write_tree(work / "small", small, weights=weights)
    specgen.write_tree(work / "large", large, weights=weights)
    small_s = min(_cold_plan(work / "small", work / f"small-{i}")[0] for i in range(2))
    large_s, large_mb = _cold_plan(work / "large", work / "large-0")
    return [
        Figure(
            f"plan_100k: plan --offline, {large} specs, time per {small} specs",
            large_s * small / large,
            "s",
            small_s,
            f"the same plan over {small} specs",
            budget=1.25,
            note=f"{large_s:.1f} s for {large} specs, {small_s:.2f} s for {small}; "
            f"peak RSS {large_mb:.0f} MB",
            extra={"large_s": large_s, "small_s": small_s, "large_rss_mb": large_mb},
        )
    ]
