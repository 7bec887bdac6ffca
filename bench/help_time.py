"""``reconciler --help`` (module and console script) against a bare ``python -c pass``."""

from __future__ import annotations

from pathlib import Path

from measure import PYTHON, Figure, best_of, reconciler_env

BUDGET = 0.3


def run(repeats: int) -> list[Figure]:
    env = reconciler_env()
    floor, _ = best_of(repeats, [PYTHON, "-c", "pass"], env=env)
    script = Path(PYTHON).parent / "reconciler"
    figures = []
    for label, argv in (
        ("python -m reconciler --help", [PYTHON, "-m", "reconciler", "--help"]),
        ("reconciler --help (console script)", [str(script), "--help"]),
    ):
        if label.startswith("reconciler") and not script.exists():
            continue
        seconds, _ = best_of(repeats, argv, env=env)
        figures.append(
            Figure(
                f"help_time: {label} (best of {repeats})",
                seconds,
                "s",
                floor,
                "python -c pass",
                budget=BUDGET,
                budget_kind="absolute",
            )
        )
    return figures
