"""Renames: a spec that names its old name in ``metadata.previous_names`` keeps the old
name's job (Terraform's ``moved`` blocks). Pure module: the planner asks which names
moved and sees the records as they will be once the move is written."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from .model import DesiredJob, SpecRecord


def moves(wanted: Mapping[str, DesiredJob], records: Mapping[str, SpecRecord]) -> dict[str, str]:
    """``{new: old}`` for each spec that takes over the job of a previous name: the new
    name has no live job, the old one has and is no spec any more. An old name claimed
    by two specs goes to the first by name (``validate`` reports the clash)."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for name in sorted(wanted):
        own = records.get(name)
        if own is not None and own.current is not None:
            continue
        for old in wanted[name].previous_names:
            record = records.get(old)
            if old in wanted or old in taken or record is None or record.current is None:
                continue
            out[name] = old
            taken.add(old)
            break
    return out


def moved_records(
    records: Mapping[str, SpecRecord], moved: Mapping[str, str]
) -> dict[str, SpecRecord]:
    """The records as the ledger will hold them once each move is written (``rename``):
    the old name's attempts under the new name, numbered past the new name's own."""
    out = dict(records)
    for new, old in moved.items():
        source = out.pop(old)
        mine = out.get(new)
        offset = (mine.next_attempt - 1) if mine is not None else 0
        attempts = tuple(replace(a, name=new, attempt=a.attempt + offset) for a in source.attempts)
        out[new] = SpecRecord(new, attempts, source.next_attempt + offset)
    return out
