"""The project file, ``reconciler.yaml`` at the specs root (DESIGN §11).

It names the project's **namespace**: its identity at the providers, part of every tag,
so that two projects on one account never adopt, cancel or count each other's jobs.
Unknown keys are errors, as in specs. Without the file the namespace is ``default``
(and ``plan``/``apply`` say so once): fine for one project per account, and what
``reconciler init`` replaces with a name of the project's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .errors import SpecError
from .tags import DEFAULT_NAMESPACE

PROJECT_FILE = "reconciler.yaml"
NAMESPACE_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$"


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


@dataclass(frozen=True)
class Project:
    namespace: str = DEFAULT_NAMESPACE
    file: Path | None = None  # None: no reconciler.yaml, the defaults apply


def load_project(root: Path) -> tuple[Project, list[SpecError]]:
    """The project of a specs root; problems come back as spec errors, at their line."""
    path = root / PROJECT_FILE
    if not path.is_file():
        return Project(), []
    from .loader import load_model

    value, _lines, errors = load_model(path, ProjectFile, "apiVersion, kind, namespace")
    if value is None:
        return Project(file=path), errors
    return Project(value.namespace, path), []


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
