"""From loaded specs to desired jobs: data paths confined to the specs root, data files
checked in each provider's format, ``from`` edges resolved, provider rules applied.

Every problem is a ``SpecError`` with file, line and field; all are collected, not
only the first.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .cost import Estimate, estimate
from .datafiles import DataFileReport, check_data_file
from .datarules import describe
from .envrefs import bad_refs, env_form, literal_secrets
from .errors import SpecError
from .loader import LoadedSpec, SpecSet, display_path, paused_gc
from .model import PLACEHOLDER_TAG, DesiredJob, create_request, model_on_disk
from .providers import CATALOG
from .spec import JobSpec
from .speccache import SpecCache, rules_key
from .tags import DEFAULT_NAMESPACE


@dataclass
class DesiredState:
    jobs: list[DesiredJob] = field(default_factory=list)
    namespace: str = DEFAULT_NAMESPACE  # the project's (reconciler.yaml), part of every tag
    project_file: Path | None = None  # None: no reconciler.yaml, the default namespace
    errors: list[SpecError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # worth a line, not a failure
    reports: dict[str, tuple[DataFileReport, DataFileReport | None]] = field(default_factory=dict)


def _resolve_data(
    spec: LoadedSpec, key: str, value: str, root: Path, resolved: dict[tuple[str, str], Path]
) -> Path:
    """A data path relative to the spec file, which must stay inside the specs root.

    ``resolved`` memoises the resolution and the check: ten thousand specs tend to share
    a few data files, and each resolve is a dozen system calls.
    """
    memo_key = (os.path.dirname(spec.file), value)
    path = resolved.get(memo_key)
    if path is not None:  # resolved and found inside the root before
        return path
    where = f"spec.{key}"
    raw = Path(value)
    if raw.is_absolute():
        raise SpecError(
            "must be a path relative to this file", spec.file, spec.line_of("spec", key), where
        )
    path = (spec.file.parent / raw).resolve()
    real_root = resolved.get((str(root), "\0"))  # no data path holds a NUL
    if real_root is None:
        real_root = resolved[(str(root), "\0")] = root.resolve()
    try:
        path.relative_to(real_root)
    except ValueError:
        raise SpecError(
            f"{value!r} resolves outside the specs root {display_path(root)}",
            spec.file,
            spec.line_of("spec", key),
            where,
        ) from None
    resolved[memo_key] = path
    return path


def _secret_rules(spec: LoadedSpec) -> list[SpecError]:
    """Secrets are never written in a spec: only ``{env: NAME}`` references."""
    options = spec.job.spec.options
    out = []
    for path, key in literal_secrets(options):
        out.append(
            SpecError(
                f"a secret must not be written in the spec (it would reach git and the "
                f"ledger): use {env_form(key)} and set that variable",
                spec.file,
                spec.line_of("spec", "options", *path.split(".")),
                f"spec.options.{path}",
            )
        )
    for path in bad_refs(options):
        out.append(
            SpecError(
                "an environment reference is {env: NAME}, with NAME a variable name",
                spec.file,
                spec.line_of("spec", "options", *path.split(".")),
                f"spec.options.{path}",
            )
        )
    return out


def _provider_rules(spec: LoadedSpec) -> list[SpecError]:
    """What the spec asks that its provider cannot express, each at its field's line."""
    s = spec.job.spec
    request = create_request(spec.name, s, tag=PLACEHOLDER_TAG, training_file_id="file-check")
    out = _secret_rules(spec)
    for problem in CATALOG[s.provider].request_problems(request):
        where, _, message = problem.partition(": ")
        path = [p for p in where.split(".") if p]
        out.append(
            SpecError(
                message if s.provider in message else f"{s.provider}: {message}",
                spec.file,
                spec.line_of("spec", *path),
                "spec." + where,
            )
        )
    return out


def _from_rules(spec: LoadedSpec, specs: SpecSet) -> list[SpecError]:
    """``from: {job: X}``: X is a spec of the tree, at the same provider, and this
    provider can start a job from another job's model (its catalog capability)."""
    s = spec.job.spec
    if s.from_ is None:
        return []
    upstream = specs.specs.get(s.from_.job)
    if not CATALOG[s.provider].capabilities.continues_from_job:
        able = sorted(p.name for p in CATALOG.values() if p.capabilities.continues_from_job)
        message = (
            f"{s.provider} cannot start from another job's model (its create-job request "
            f"takes a base model only): remove from:, or train both jobs at a provider "
            f"that can ({', '.join(able)})"
        )
        return [SpecError(message, spec.file, spec.line_of("spec", "from"), "spec.from")]
    line = spec.line_of("spec", "from", "job")
    if upstream is None:
        message = f"no spec named {s.from_.job!r} in the specs tree"
        return [SpecError(message, spec.file, line, "spec.from.job")]
    theirs = upstream.job.spec.provider
    if theirs != s.provider:
        message = (
            f"{s.from_.job!r} trains at {theirs}, this job at {s.provider}: a job can "
            f"start only from a model of its own provider (train both at one provider)"
        )
        return [SpecError(message, spec.file, line, "spec.from.job")]
    upstream_model = upstream.job.spec.model
    adapter = CATALOG[s.provider].base == "local" and upstream.job.spec.lora is not False
    if adapter and not _same_model(s.model, spec.file, upstream_model, upstream.file):
        message = (
            f"{s.from_.job!r} trains a LoRA adapter on {upstream_model!r}: a job "
            f"continuing it trains on the same base (model: {upstream_model})"
        )
        return [SpecError(message, spec.file, spec.line_of("spec", "model"), "spec.model")]
    return []


def _same_model(a: str, a_file: Path, b: str, b_file: Path) -> bool:
    """Two ``model:`` values name one model: one folder (each read from its spec's
    folder), or one model id."""
    a_path, b_path = model_on_disk(a, a_file), model_on_disk(b, b_file)
    return a_path == b_path if a_path or b_path else a == b


def _format_mismatch(
    spec: LoadedSpec, training: DataFileReport, validation: DataFileReport
) -> SpecError:
    """A validation file must hold the training file's format: the provider scores the
    model on it with the training file's template."""
    return SpecError(
        f"the validation file is {describe(validation.format)} data but the training file "
        f"is {describe(training.format)} data: both must hold one format "
        f"({validation.path}, {training.path})",
        spec.file,
        spec.line_of("spec", "validation_file"),
        "spec.validation_file",
    )


# (path, mtime_ns, size, method, provider, role) → report: a data file is checked once
# per content and rule set, across the passes of a daemon too
DataCache = dict[tuple[Path, int, int, str, str, str], DataFileReport]


def desired_state(
    specs: SpecSet,
    root: Path,
    names: Iterable[str] | None = None,
    cache: DataCache | None = None,
    store: SpecCache | None = None,
) -> DesiredState:
    """Check every loaded spec and its data; return the valid ones as ``DesiredJob``s.
    ``cache`` keeps data-file reports in this process (a daemon's passes), ``store``
    between commands (``speccache``)."""
    with paused_gc():
        return _desired_state(specs, root, names, {} if cache is None else cache, store)


def _desired_state(
    specs: SpecSet,
    root: Path,
    names: Iterable[str] | None,
    checked: DataCache,
    store: SpecCache | None,
) -> DesiredState:
    state = DesiredState(errors=list(specs.errors))
    resolved: dict[tuple[str, str], Path] = {}
    shown: dict[Path, Path] = {}
    identities: dict[Path, os.stat_result | None] = {}  # None: missing or unreadable
    # ten thousand specs share a few folders, data files and prices: what each of those
    # came to is found once (successes only: a problem is reported at each spec's line)
    reported: dict[tuple[str, str, str, str, str], DataFileReport] = {}
    guesses: dict[tuple[object, ...], Estimate | None] = {}
    wanted = set(names) if names is not None else None
    for spec in specs:
        if wanted is not None and spec.name not in wanted:
            continue
        s = spec.job.spec
        if s.provider not in CATALOG:
            state.errors.append(_unknown_provider(spec))
            continue
        problems = _provider_rules(spec)
        problems.extend(_from_rules(spec, specs))
        reports: list[DataFileReport | None] = []
        for key in ("training_file", "validation_file"):
            value = getattr(s, key)
            if value is None:
                reports.append(None)
                continue
            memo = (str(spec.file).rpartition(os.sep)[0], value, s.method, s.provider, key)
            known = reported.get(memo)
            if known is not None:
                reports.append(known)
                continue
            try:
                # shown (and opened) relative to the working directory, like the spec files
                real = _resolve_data(spec, key, value, root, resolved)
                path = shown.get(real) or shown.setdefault(real, display_path(real))
                role: Literal["training", "validation"] = (
                    "training" if key == "training_file" else "validation"
                )
                if path not in identities:
                    identities[path] = _identity(path)
                report = _data_report(path, identities[path], spec, key, role, checked, store)
                reports.append(report)
                reported[memo] = report
            except SpecError as exc:
                problems.append(exc)
        read = [r for r in reports if r is not None]
        if len(read) == 2 and read[1].format is not read[0].format:  # both files read
            problems.append(_format_mismatch(spec, read[0], read[1]))
        if problems:
            state.errors.extend(problems)
            continue
        training, validation = reports[0], reports[1]
        assert training is not None
        state.reports[spec.name] = (training, validation)
        guess = _estimate(s, training, validation, str(spec.file), guesses)
        state.jobs.append(
            DesiredJob(
                name=spec.name,
                spec=s,
                file=str(spec.file),
                training_sha256=training.sha256,
                validation_sha256=validation.sha256 if validation else None,
                training_path=training.path,
                validation_path=validation.path if validation else None,
                estimated_cost_usd=guess.usd if guess else None,
                estimate_basis=guess.basis if guess else None,
                previous_names=tuple(spec.job.metadata.previous_names),
            )
        )
    state.errors.extend(_cycles(specs))
    state.errors.extend(_renames(specs))
    state.errors.sort(key=lambda e: (str(e.file), e.line or 0))
    return state


def _identity(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except OSError:
        return None  # missing: check_data_file says so, at the spec line


def _data_report(
    path: Path,
    ident: os.stat_result | None,
    spec: LoadedSpec,
    key: str,
    role: Literal["training", "validation"],
    checked: DataCache,
    store: SpecCache | None,
) -> DataFileReport:
    """A data file's report: checked once per content and rule set, in this process
    (``checked``, a daemon's passes too) and between commands (``store``)."""
    s = spec.job.spec
    stat = (ident.st_mtime_ns, ident.st_size) if ident is not None else (0, -1)
    check_key = (path, *stat, s.method, s.provider, role)
    report = checked.get(check_key)
    if report is not None:
        return report
    rules = rules_key(CATALOG[s.provider].data_rules, s.method, s.provider, role)
    if store is not None and ident is not None:
        report = store.data_report(path, ident, rules)
    if report is None:
        report = check_data_file(
            path,
            field=f"spec.{key}",
            spec_file=spec.file,
            spec_line=spec.line_of("spec", key),
            method=s.method,
            provider=s.provider,
            role=role,
        )
        if store is not None and ident is not None:
            store.put_data(path, ident, rules, report)
    checked[check_key] = report
    return report


def _estimate(
    s: JobSpec,
    training: DataFileReport,
    validation: DataFileReport | None,
    file: str,
    guesses: dict[tuple[object, ...], Estimate | None],
) -> Estimate | None:
    """``cost.estimate``, once per distinct price input (a provider's own estimator, such
    as local training's, reads the spec's folder: asked every time)."""
    tokens = validation.approx_tokens if validation else None
    if CATALOG[s.provider].estimator is not None:
        return estimate(s, training.approx_tokens, tokens, file)
    h = s.hyperparameters
    key: tuple[object, ...] = (s.provider, s.model, s.method, s.lora is False, h.epochs)
    key += (h.n_evals, training.approx_tokens, tokens)
    if key not in guesses:
        guesses[key] = estimate(s, training.approx_tokens, tokens, file)
    return guesses[key]


def _cycles(specs: SpecSet) -> list[SpecError]:
    """``from`` edges must not loop: a loop would wait forever."""
    edges = {s.name: s.job.spec.from_.job for s in specs if s.job.spec.from_ is not None}
    errors: list[SpecError] = []
    reported: set[str] = set()
    for start in sorted(edges):
        seen = [start]
        node = edges.get(start)
        while node is not None and node not in seen:
            seen.append(node)
            node = edges.get(node)
        if node == start and start not in reported:
            reported.update(seen)
            spec = specs.specs[start]
            errors.append(
                SpecError(
                    "from: cycle " + " → ".join([*seen, start]),
                    spec.file,
                    spec.line_of("spec", "from", "job"),
                    "spec.from.job",
                )
            )
    return errors


def _renames(specs: SpecSet) -> list[SpecError]:
    """``previous_names`` must be unambiguous: an old name is no current spec's name, and
    no two specs claim it (each would take the other's job)."""
    errors: list[SpecError] = []
    claimed: dict[str, str] = {}
    for name in sorted(specs.specs):
        spec = specs.specs[name]
        for old in spec.job.metadata.previous_names:
            where = spec.line_of("metadata", "previous_names")
            field = "metadata.previous_names"
            if old == name:
                errors.append(
                    SpecError(f"{old!r} is this spec's own name", spec.file, where, field)
                )
            elif old in specs.specs:
                other = specs.specs[old].file
                errors.append(
                    SpecError(
                        f"{old!r} is still a spec ({other}): a rename removes the old name",
                        spec.file,
                        where,
                        field,
                    )
                )
            elif old in claimed:
                errors.append(
                    SpecError(
                        f"{old!r} is also a previous name of {claimed[old]!r}: only one spec "
                        "can take its job over",
                        spec.file,
                        where,
                        field,
                    )
                )
            else:
                claimed[old] = name
    return errors


def _unknown_provider(spec: LoadedSpec) -> SpecError:
    """A provider that is neither built in nor a profile of reconciler.yaml."""
    from difflib import get_close_matches

    name = spec.job.spec.provider
    profiles = sorted(CATALOG.profiles)
    also = f"; profiles: {', '.join(profiles)}" if profiles else ""
    close = get_close_matches(name, list(CATALOG), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return SpecError(
        f"unknown provider {name!r}, {hint}(built in: "
        f"{', '.join(sorted(CATALOG.builtin))}{also}; a profile is declared under "
        "`providers:` in reconciler.yaml)",
        spec.file,
        spec.line_of("spec", "provider"),
        "spec.provider",
    )
