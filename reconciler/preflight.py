"""Pre-flight checks online: before anything is uploaded, ask each provider whether it can
train what the specs ask for (its model list, Together's per-model limits). A provider
that cannot be asked (no key, no network) is skipped with a note, never a failure: the
offline checks have already run and the create itself stays the final word."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .errors import ReconcilerError, SpecError
from .loader import SpecSet
from .model import DesiredJob
from .providers import CATALOG
from .providers.pool import DriverPool
from .redact import scrub


@dataclass
class Preflight:
    errors: list[SpecError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def preflight(jobs: Sequence[DesiredJob], specs: SpecSet | None, drivers: DriverPool) -> Preflight:
    """Every problem a provider reports, at the spec's line for the field it names."""
    out = Preflight()
    by_provider: dict[str, list[DesiredJob]] = {}
    for job in jobs:
        by_provider.setdefault(job.spec.provider, []).append(job)
    for provider in sorted(by_provider):
        key_var = CATALOG[provider].endpoint.key_var
        if not drivers.env.get(key_var):
            out.notes.append(f"{provider}: online checks skipped ({key_var} is not set)")
            continue
        try:
            driver = drivers.get(provider)
            for job in by_provider[provider]:
                out.errors += [_located(job, p, specs) for p in driver.preflight(job)]
        except ReconcilerError as exc:
            out.notes.append(f"{provider}: online checks skipped ({scrub(str(exc))})")
    return out


def _located(job: DesiredJob, problem: str, specs: SpecSet | None) -> SpecError:
    """``lora.r: 128 is over …`` as a spec error at the line of ``spec.lora.r``."""
    path, sep, message = problem.partition(": ")
    if not sep or " " in path:
        return SpecError(problem, job.file, None, "spec")
    loaded = specs.specs.get(job.name) if specs is not None else None
    line = loaded.line_of("spec", *path.split(".")) if loaded is not None else None
    return SpecError(message, loaded.file if loaded else job.file, line, f"spec.{path}")
