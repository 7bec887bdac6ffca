"""``plan --offline`` over 100,000 specs completes, and its time grows linearly: the time
per spec at 100,000 against the time per spec at 10,000 (DESIGN §9), both cold (a fresh
ledger folder, so an empty spec cache), measured in the same run on trees made alike."""

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
            f"plan_100k: plan --offline, {large} specs, time per spec",
            large_s / large,
            "s",
            small_s / small,
            f"time per spec at {small} specs",
            budget=1.25,
            note=f"{large_s:.1f} s for {large} specs, {small_s:.2f} s for {small}; "
            f"peak RSS {large_mb:.0f} MB",
            extra={"large_s": large_s, "small_s": small_s, "large_rss_mb": large_mb},
        )
    ]
