"""The plan as a document: ``plan --json`` and ``plan --out FILE`` write it, ``apply
--plan FILE`` reads it back into the very ``Plan`` that was reviewed.

This module owns both directions and what staleness is checked against (as Terraform's
``internal/plans/planfile`` does): a saved plan is refused once the ledger it was made
on has moved (lineage, serial) or the inputs of a spec it acts on have changed.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import ConfigError, StalePlanError
from .fingerprint import FieldChange
from .health import health, sync, verdict
from .model import AttemptView, Phase
from .plan import Action, Kind, Plan, new_spend

FORMAT_VERSION = "1.0"

# Terraform-style action lists, so consumers can scan for "delete"
WIRE_ACTIONS: dict[Kind, list[str]] = {
    Kind.CREATE: ["create"],
    Kind.RETRY: ["create"],
    Kind.REPLACE: ["delete", "create"],
    Kind.CANCEL: ["delete"],
    Kind.ADOPT: ["adopt"],
    Kind.FORGET: ["forget"],
    Kind.PAUSE: ["pause"],
    Kind.RESUME: ["resume"],
}


def _current_json(cur: AttemptView) -> dict[str, Any]:
    out = dataclasses.asdict(cur)
    out["phase"] = cur.phase.value
    out["provider_status"] = cur.status  # the name consumers of format 1.0 read
    return out


def action_json(action: Action) -> dict[str, Any]:
    cur = action.current
    wire = WIRE_ACTIONS.get(action.kind, [] if action.moved_from else ["no-op"])
    return {
        "name": action.name,
        "kind": action.kind.value,
        "actions": (["move"] if action.moved_from else []) + wire,
        "change": action.is_change,
        "moved_from": action.moved_from,
        "sync": sync(action).value,
        "health": health(action).value,
        "provider": action.provider,
        "reason": action.reason,
        "changes": [{"path": c.path, "old": c.old, "new": c.new} for c in action.changes],
        "replace_paths": [c.path for c in action.changes],
        "fingerprint": action.fingerprint,
        "attempt": action.attempt,
        "tag": action.tag,
        "then": action.then.value if action.then else None,
        "blocked_on": action.blocked_on,
        "from_output": action.from_output,
        "estimated_cost_usd": action.estimated_cost_usd,
        "estimate_basis": action.estimate_basis,
        "refused": action.refused,
        "current": None if cur is None else _current_json(cur),
    }


def plan_json(
    plan: Plan,
    *,
    ledger_path: str,
    specs_root: str,
    offline: bool,
    git_ref: str | None = None,
    git_commit: str | None = None,
    selection: Mapping[str, list[str]] | None = None,
) -> dict[str, Any]:
    """The plan document (``format_version`` 1.0): every action, and the plan's basis
    (the ledger, the specs and the git ref they were read at, any --target/--exclude)."""
    from . import __version__

    counts = plan.counts()
    v = verdict(plan.actions)
    return {
        "format_version": FORMAT_VERSION,
        "reconciler_version": __version__,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "offline": offline,
        "specs_root": specs_root,
        "git_ref": git_ref,
        "git_commit": git_commit,
        "selection": dict(selection or {}),
        "ledger": {"path": ledger_path, "lineage": plan.lineage, "serial": plan.serial},
        "fingerprints": dict(plan.fingerprints),
        "actions": [action_json(a) for a in plan.actions],
        "summary": {
            **{k.value: counts.get(k, 0) for k in Kind},
            "changes": len(plan.changes),
            "moved": sum(1 for a in plan.actions if a.moved_from),
            "drifted": list(v.drifted),
            "degraded": list(v.degraded),
            "matches": v.matches,
        },
        "estimated_new_spend_usd": new_spend(plan),
    }


def dumps(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=False, default=str)


def write(path: Path, document: Mapping[str, Any]) -> None:
    """Write the plan whole or not at all: a temporary file beside it, then a rename (a
    full disk leaves no empty or half plan for ``apply --plan`` to trip on)."""
    import os

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(dumps(document) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write plan to {path}: {exc.strerror or exc}") from exc


# -- reading back -----------------------------------------------------------------


def _action(d: Mapping[str, Any]) -> Action:
    cur = d.get("current")
    current = None
    if cur is not None:
        fields = {f.name for f in dataclasses.fields(AttemptView)}
        values = {k: v for k, v in cur.items() if k in fields}
        current = AttemptView(**{**values, "phase": Phase(values["phase"])})
    return Action(
        kind=Kind(d["kind"]),
        name=d["name"],
        provider=d["provider"],
        reason=d["reason"],
        changes=tuple(FieldChange(c["path"], c["old"], c["new"]) for c in d.get("changes", [])),
        fingerprint=d.get("fingerprint"),
        attempt=d.get("attempt"),
        tag=d.get("tag"),
        then=Kind(d["then"]) if d.get("then") else None,
        current=current,
        from_output=d.get("from_output"),
        blocked_on=d.get("blocked_on"),
        estimated_cost_usd=d.get("estimated_cost_usd"),
        estimate_basis=d.get("estimate_basis"),
        refused=d.get("refused"),
        moved_from=d.get("moved_from"),
    )


def plan_from_json(document: Mapping[str, Any]) -> Plan:
    """The ``Plan`` a document was written from."""
    basis = document.get("ledger") or {}
    return Plan(
        tuple(_action(a) for a in document["actions"]),
        dict(document.get("fingerprints") or {}),
        str(basis.get("lineage") or ""),
        int(basis.get("serial") or 0),
    )


@dataclass(frozen=True)
class SavedPlan:
    """A plan read from a file, to be executed as it was reviewed."""

    plan: Plan
    source: str  # the file it came from, for messages

    def check(self, fresh: Plan) -> None:
        """Refuse this plan if the ledger or the inputs of what it acts on have moved
        since it was made; ``fresh`` is the plan made now, on the current ledger."""
        saved, source = self.plan, self.source
        new_ledger = saved.lineage == "" and fresh.serial == 0  # made before the ledger was
        if not new_ledger and saved.lineage == "":
            raise StalePlanError(
                f"{source} is stale: it was made before the ledger existed, and the ledger "
                f"has been written since (serial {fresh.serial}); run `reconciler plan` again"
            )
        if not new_ledger and saved.lineage != fresh.lineage:
            raise StalePlanError(
                f"{source} was made for another ledger (lineage {saved.lineage}, this one is "
                f"{fresh.lineage or 'new'}); run `reconciler plan` against this ledger"
            )
        if not new_ledger and saved.serial != fresh.serial:
            raise StalePlanError(
                f"{source} is stale: the ledger changed since it was made "
                f"(serial {saved.serial} → {fresh.serial}); run `reconciler plan` again"
            )
        acting = {a.name for a in saved.changes} | {a.name for a in fresh.changes}
        # a spec that only became unblocked gains a fingerprint: that alone is not a change
        for name in sorted(acting):
            if saved.fingerprints.get(name) != fresh.fingerprints.get(name):
                raise StalePlanError(
                    f"{source} is stale: the inputs of {name!r} changed since it was made; "
                    "run `reconciler plan` again"
                )


def read(path: Path) -> SavedPlan:
    """A plan file written by ``plan --out``; one clear line for anything else."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read plan {path}: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("actions"), list):
        raise ConfigError(f"{path} is not a plan written by `reconciler plan --out`")
    if document.get("format_version") != FORMAT_VERSION:
        raise StalePlanError(
            f"{path}: plan format {document.get('format_version')!r} is not {FORMAT_VERSION}"
        )
    try:
        plan = plan_from_json(document)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{path} is not a plan written by `reconciler plan --out`") from exc
    return SavedPlan(plan, str(path))
