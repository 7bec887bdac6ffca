"""The commands: each parses nothing (``cli`` did), calls the reconcile core, prints,
and returns an exit code. One module per group; imported only when its command runs."""

from __future__ import annotations

import argparse
import importlib

# command → (module, function): an explicit table, read by ``cli.main``
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("planning", "cmd_validate"),
    "plan": ("planning", "cmd_plan"),
    "apply": ("applying", "cmd_apply"),
    "status": ("status", "cmd_status"),
    "watch": ("daemon", "cmd_watch"),
    "import": ("jobs", "cmd_import"),
    "logs": ("jobs", "cmd_logs"),
    "output": ("outputs", "cmd_output"),
    "refresh": ("applying", "cmd_refresh"),
    "init": ("scaffold", "cmd_init"),
    "ledger": ("ledgers", "cmd_ledger"),
    "version": ("shell", "cmd_version"),
    "completion": ("shell", "cmd_completion"),
}


def run(args: argparse.Namespace) -> int:
    module, function = COMMANDS[args.command]
    handler = getattr(importlib.import_module(f"{__name__}.{module}"), function)
    return int(handler(args))
