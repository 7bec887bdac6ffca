"""``make bench``: every figure of DESIGN §9 as a ratio against a floor measured in the
same run, printed as a table and written to ``bench/results.json``.

    python bench/run.py            # the full sizes (a few minutes on 2 cores)
    python bench/run.py --quick    # small sizes, a smoke check (about 20 s)
    python bench/run.py --only plan_10k,help_time --markdown
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import converge
import help_time
import plan_10k
import plan_100k
import refresh_calls
import replicas_pg
import watch_pickup
from measure import PYTHON, REPO, Figure

BENCHMARKS = (
    "plan_10k",
    "plan_100k",
    "refresh_calls",
    "converge",
    "watch_pickup",
    "replicas_pg",
    "help_time",
)


@dataclass(frozen=True)
class Sizes:
    plan_specs: int
    plan_repeats: int
    refresh_per_provider: int
    converge_jobs: int
    converge_rpm: int
    converge_speed: float
    watch_existing: int
    watch_writes: int
    watch_large: int
    help_repeats: int
    plan_large: int
    replica_specs: int


FULL = Sizes(10_000, 3, 250, 20, 10, 24.0, 100, 10, 1_000, 10, 100_000, 10_000)
QUICK = Sizes(200, 1, 10, 4, 10, 120.0, 5, 3, 50, 3, 2_000, 200)


def benchmarks(sizes: Sizes) -> dict[str, Callable[[Path], list[Figure]]]:
    return {
        "plan_10k": lambda w: plan_10k.run(w, sizes.plan_specs, sizes.plan_repeats),
        "plan_100k": lambda w: plan_100k.run(w, sizes.plan_specs, sizes.plan_large),
        "replicas_pg": lambda w: replicas_pg.run(w, sizes.replica_specs),
        "refresh_calls": lambda w: refresh_calls.run(w, sizes.refresh_per_provider),
        "converge": lambda w: converge.run(
            w, sizes.converge_jobs, sizes.converge_rpm, sizes.converge_speed
        ),
        "watch_pickup": lambda w: watch_pickup.run(
            w, sizes.watch_existing, sizes.watch_writes, sizes.watch_large
        ),
        "help_time": lambda w: help_time.run(sizes.help_repeats),
    }


def machine() -> dict[str, Any]:
    import yaml

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gb = None
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory_gb = round(pages / 2**30, 1)
    except (ValueError, OSError):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": memory_gb,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "pyyaml": f"{yaml.__version__} (libyaml {'yes' if yaml.__with_libyaml__ else 'no'})",
    }


# -- rendering ---------------------------------------------------------------------


def _num(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    if unit == "MB":
        return f"{value:.0f} MB"
    return f"{value:g} {unit}"


def cells(f: Figure) -> list[str]:
    floor = "—" if f.floor is None else _num(f.floor, f.unit)
    ratio = "—" if f.ratio is None else f"{f.ratio:.2f}x"
    if f.budget is None:
        budget = "—"
    elif f.budget_kind == "ratio":
        budget = f"≤ {f.budget:g}x"
    else:
        budget = f"≤ {_num(f.budget, f.unit)}"
    return [f.name, _num(f.value, f.unit), floor, ratio, budget, f.verdict]


HEADERS = ["figure", "value", "floor", "ratio", "budget", "verdict"]


def text_table(figures: list[Figure]) -> str:
    rows = [HEADERS, *(cells(f) for f in figures)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADERS))]
    lines = []
    for n, row in enumerate(rows):
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
        else:
            f = figures[n - 1]
            detail = "; ".join(
                x for x in (f.floor_label and f"floor: {f.floor_label}", f.note) if x
            )
            if detail:
                lines.append(f"    {detail}")
    return "\n".join(lines)


def markdown_table(figures: list[Figure], info: dict[str, Any]) -> str:
    out = [
        "| " + " | ".join(HEADERS) + " |",
        "|" + "---|" * len(HEADERS),
    ]
    for f in figures:
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells(f)) + " |")
    where = ", ".join(f"{k} {v}" for k, v in info.items())
    return "\n".join(out) + f"\n\nMachine: {where}.\n"


# -- main --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke check")
    parser.add_argument(
        "--only", metavar="NAMES", help=f"comma-separated subset of {', '.join(BENCHMARKS)}"
    )
    parser.add_argument(
        "--out",
        metavar="FILE",
        help="results JSON (default bench/results.json; --quick writes none unless given)",
    )
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    args = parser.parse_args(argv)

    sizes = QUICK if args.quick else FULL
    chosen = args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    out = Path(args.out) if args.out else (None if args.quick else REPO / "bench" / "results.json")

    # bytecode first, as an installed package has it: on a machine that sets
    # PYTHONDONTWRITEBYTECODE, every child would otherwise compile reconciler again
    subprocess.run([PYTHON, "-m", "compileall", "-q", str(REPO / "reconciler")], check=False)
    info = machine()
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()), flush=True)
    work = Path(tempfile.mkdtemp(prefix="reconciler-bench-"))
    figures: list[Figure] = []
    failed: list[str] = []
    started = time.monotonic()
    runners = benchmarks(sizes)
    for name in chosen:
        t0 = time.monotonic()
        print(f"{name} ...", end=" ", flush=True)
        try:
            got = runners[name](work / name)
        except Exception as exc:
            if str(exc).startswith("skipped:"):  # a component this machine lacks
                print(str(exc), flush=True)
                continue
            failed.append(name)
            print("FAILED", flush=True)
            traceback.print_exc()
            continue
        figures.extend(got)
        print(f"{time.monotonic() - t0:.1f} s", flush=True)
    total = time.monotonic() - started

    print()
    print(text_table(figures))
    print(f"\n{len(figures)} figures in {total:.0f} s" + (" (--quick sizes)" if args.quick else ""))
    if args.markdown:
        print()
        print(markdown_table(figures, info))
    if out is not None:
        document = {
            "quick": args.quick,
            "sizes": sizes.__dict__,
            "machine": info,
            "seconds": round(total, 1),
            "figures": [f.to_json() for f in figures],
            "failed": failed,
        }
        out.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {out}")
    if args.keep:
        print(f"work folder kept: {work}")
    else:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    if failed:
        print(f"error: benchmark(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
