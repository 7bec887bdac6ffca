"""The project file, ``reconciler.yaml`` at the specs root (DESIGN §11).

It names the project's **namespace**: its identity at the providers, part of every tag,
so that two projects on one account never adopt, cancel or count each other's jobs.
Unknown keys are errors, as in specs. Without the file the namespace is ``default``
(and ``plan``/``apply`` say so once): fine for one project per account, and what
``reconciler init`` replaces with a name of the project's own.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .catalog import ProviderInfo
from .errors import SpecError
from .providers import CATALOG
from .specfiles import PROJECT_FILE
from .tags import DEFAULT_NAMESPACE

NAMESPACE_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$"


ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
PROFILE_NAME = r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$"


class ProfileFile(BaseModel):
    """One account at one host: ``providers: {together-research: {kind: together, …}}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = Field(description="The built-in provider this is an account of.")
    api_key_env: str | None = Field(
        default=None,
        pattern=ENV_NAME,
        description="The environment variable holding this account's key (default: the "
        "kind's, e.g. TOGETHER_API_KEY). Keys are never written in this file.",
    )
    base_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="The account's endpoint, with or without /v1 (default: the kind's).",
    )
    base_url_env: str | None = Field(
        default=None,
        pattern=ENV_NAME,
        description="An environment variable that overrides base_url when set.",
    )


class LocalFile(BaseModel):
    """``local:``: how ``provider: local`` trains on this machine (DESIGN §13)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    runs: str | None = Field(
        default=None,
        min_length=1,
        description="The folder of the run folders, relative to this file (default: "
        "runs/ beside the ledger). RECONCILER_LOCAL_RUNS overrides it.",
    )
    concurrency: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="Local jobs training at once; the others wait, shown as queued "
        "(default: one per GPU, one on a machine without). "
        "RECONCILER_LOCAL_CONCURRENCY overrides it.",
    )
    gpu_hour_usd: float | None = Field(
        default=None,
        ge=0,
        allow_inf_nan=False,
        description="What an hour of one training slot costs you (a GPU, or the CPU "
        "where there is none): plan prices local jobs by their estimated time with it "
        "(default: 0 USD).",
    )


class ProjectFile(BaseModel):
    """What a user writes in ``reconciler.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    apiVersion: Literal["reconciler/v1"]
    kind: Literal["Project"]
    namespace: str = Field(
        pattern=NAMESPACE_PATTERN,
        description="The project's identity at the providers: lower-case letters, digits "
        "and '-', at most 32 characters. Two projects sharing an account need two names.",
    )
    providers: dict[str, ProfileFile] = Field(
        default_factory=dict,
        description="Named provider profiles: a spec's `provider:` may name one. Two "
        "profiles of one kind are two accounts, kept apart in the ledger and the sweep.",
    )
    local: LocalFile = Field(
        default_factory=LocalFile,
        description="Settings of `provider: local` (training on this machine).",
    )


@dataclass(frozen=True)
class Project:
    namespace: str = DEFAULT_NAMESPACE
    file: Path | None = None  # None: no reconciler.yaml, the defaults apply
    profiles: Mapping[str, ProviderInfo] = field(default_factory=dict)
    local: LocalFile = field(default_factory=LocalFile)

    def local_env(self) -> dict[str, str]:
        """The ``local:`` settings as the variables the local driver and trainer read
        (a relative runs folder is the project file's neighbour)."""
        out: dict[str, str] = {}
        if self.local.runs:
            base = self.file.parent if self.file else Path()
            runs = (base / Path(self.local.runs).expanduser()).absolute()
            out["RECONCILER_LOCAL_RUNS"] = os.path.normpath(runs)
        if self.local.concurrency:
            out["RECONCILER_LOCAL_CONCURRENCY"] = str(self.local.concurrency)
        return out


def profile_entry(name: str, profile: ProfileFile) -> ProviderInfo:
    """A profile as a catalog entry: its kind's, with its own name, key and endpoint."""
    base = CATALOG.builtin[profile.kind]
    ep = base.endpoint
    endpoint = replace(
        ep,  # the kind's way of presenting the key and its API version, kept
        key_var=profile.api_key_env or ep.key_var,
        # an explicit base_url is not overridden by the kind's shared variable
        url_var=profile.base_url_env or ("" if profile.base_url else ep.url_var),
        default_url=profile.base_url or ep.default_url,
    )
    return replace(
        base, name=name, kind=base.name, title=f"{base.title} ({name})", endpoint=endpoint
    )


def _profiles(
    value: ProjectFile, path: Path, lines: Any
) -> tuple[dict[str, ProviderInfo], list[SpecError]]:
    found: dict[str, ProviderInfo] = {}
    errors: list[SpecError] = []
    for name, profile in value.providers.items():
        line = lines.get(("providers", name)) if lines else None
        field_name = f"providers.{name}"
        if not re.match(PROFILE_NAME, name):
            errors.append(
                SpecError(
                    "a profile name is lower-case letters, digits and '-'", path, line, field_name
                )
            )
        elif name in CATALOG.builtin:
            errors.append(
                SpecError(
                    f"{name!r} is a built-in provider: name the profile otherwise",
                    path,
                    line,
                    field_name,
                )
            )
        elif profile.kind not in CATALOG.builtin:
            known = ", ".join(sorted(CATALOG.builtin))
            errors.append(
                SpecError(
                    f"unknown kind {profile.kind!r} (one of {known})",
                    path,
                    line,
                    f"{field_name}.kind",
                )
            )
        else:
            found[name] = profile_entry(name, profile)
    return found, errors


def load_project(root: Path) -> tuple[Project, list[SpecError]]:
    """The project of a specs root; problems come back as spec errors, at their line."""
    path = root / PROJECT_FILE
    if not path.is_file():
        return Project(), []
    from .loader import load_model

    value, lines, errors = load_model(
        path, ProjectFile, "apiVersion, kind, namespace, providers, local"
    )
    if value is None:
        return Project(file=path), errors
    from .loader import display_path

    profiles, errors = _profiles(value, display_path(path), lines)
    return Project(value.namespace, path, profiles, value.local), errors


def project_yaml(namespace: str) -> str:
    """The text ``reconciler init`` writes."""
    return (
        "# reconciler's project file: committed with the specs (DESIGN §11)\n"
        "apiVersion: reconciler/v1\n"
        "kind: Project\n"
        "# this project's identity at the providers, part of every job's tag: two projects\n"
        "# sharing a provider account must use two names, and a name must never be reused\n"
        f"namespace: {namespace}\n"
    )
