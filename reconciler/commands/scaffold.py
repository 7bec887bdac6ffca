"""``init``: a new project's files: specs with one example job and its data, the project
file, a git-ignored ledger folder and the CI workflow. Nothing is ever overwritten."""

from __future__ import annotations

import argparse
import json
import re
from importlib import resources
from pathlib import Path

from ..errors import ConfigError
from ..project import NAMESPACE_PATTERN, project_yaml
from ..specfiles import PROJECT_FILE
from .workspace import Workspace

EXAMPLE_SPEC = """\
# One fine-tune job. `reconciler plan` shows what apply would do; `reconciler apply`
# does it. The spec format: README, "Spec reference".
apiVersion: reconciler/v1
kind: FineTuneJob
metadata:
  name: example-assistant
  labels: {team: example}
spec:
  provider: together
  model: meta-llama/Meta-Llama-3.1-8B-Instruct-Reference
  training_file: data/example.jsonl
  method: sft
  lora: {r: 8, alpha: 16}
  hyperparameters: {epochs: 1, learning_rate: 1.0e-5}
  policy: {max_attempts: 2}
"""

_QUESTIONS = (
    ("How do I reset my password?", "Settings → Security → Reset password."),
    ("How do I change my email?", "Settings → Account → Email, then confirm the link."),
    ("Where are my invoices?", "Billing → Invoices lists every invoice as a PDF."),
    ("How do I cancel?", "Billing → Plan → Cancel; it ends with the current period."),
)
EXAMPLE_DATA = "".join(
    json.dumps(
        {
            "messages": [
                {"role": "user", "content": q},
                {"role": "assistant", "content": a},
            ]
        },
        ensure_ascii=False,
    )
    + "\n"
    for q, a in _QUESTIONS
)
STATE_GITIGNORE = "# the ledger is state, not source: keep it out of git (and back it up)\n*\n"


def files(specs: Path, ledger_dir: Path, namespace: str) -> dict[Path, str]:
    """What ``init`` writes, by path."""
    workflow = resources.files("reconciler").joinpath("templates/github-actions.yml")
    root = specs.parent
    return {
        specs / PROJECT_FILE: project_yaml(namespace),
        specs / "example.yaml": EXAMPLE_SPEC,
        specs / "data" / "example.jsonl": EXAMPLE_DATA,
        ledger_dir / ".gitignore": STATE_GITIGNORE,
        root / ".github" / "workflows" / "reconciler.yml": workflow.read_text(),
    }


def default_namespace(folder: Path) -> str:
    """The folder's name, made into a namespace (lower case, letters, digits and '-')."""
    name = re.sub(r"[^a-z0-9-]+", "-", folder.resolve().name.lower()).strip("-")[:32].strip("-")
    return name or "project"


def cmd_init(args: argparse.Namespace) -> int:
    ws = Workspace.from_args(args)
    root = Path(args.directory)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"init {root}: not a folder")
    specs = root / "specs" if args.specs == "specs" else Path(args.specs)
    ledger_dir = (root / "state") if str(args.ledger) == "state/ledger.db" else ws.ledger_folder
    namespace = args.namespace or default_namespace(root)
    if not re.match(NAMESPACE_PATTERN, namespace):
        raise ConfigError(
            f"--namespace {namespace!r}: lower-case letters, digits and '-', at most 32 "
            "characters, starting and ending with a letter or digit"
        )
    plan = files(specs, ledger_dir, namespace)
    existing = [p for p in plan if p.exists()]
    if existing:
        shown = ", ".join(str(p) for p in existing)
        raise ConfigError(f"init would overwrite {shown}: nothing written (move them away first)")
    for path, text in plan.items():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        except OSError as exc:
            raise ConfigError(f"init: cannot write {path}: {exc.strerror or exc}") from exc
    out = ws.out()
    out.print(f"Initialised a reconciler project in {root} (namespace {namespace}):", markup=False)
    for path in plan:
        out.print(f"  + {path}", markup=False)
    specs_opt = "" if args.specs == "specs" and root == Path(".") else f" --specs {specs}"
    out.print(
        f"\nNext: set TOGETHER_API_KEY, then `reconciler plan{specs_opt}`. To try it offline "
        "first, `reconciler emulator` serves a stand-in for the providers (README).",
        markup=False,
    )
    return 0
