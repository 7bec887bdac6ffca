"""The command line's grammar: every command, its options and their help (DESIGN §6).

Standard library only, so ``reconciler --help`` stays instant; ``cli`` runs what it parses.
"""

from __future__ import annotations

import argparse
import os
from typing import NoReturn

from . import __version__


def money(text: str) -> float:
    """A ``--max-cost`` value: a finite amount of dollars, zero or more."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount in USD") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a finite amount of 0 USD or more")
    return value


def _selection(p: argparse.ArgumentParser, *, replace: bool = True) -> None:
    """``--target`` / ``--exclude`` (Terraform -target, OpenTofu -exclude), ``--replace``."""
    p.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="NAME",
        help="only this spec (repeatable; shell-style globs such as 'chat-*')",
    )
    p.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="NAME",
        help="leave this spec out (repeatable; globs)",
    )
    if replace:
        p.add_argument(
            "--replace",
            action="append",
            default=[],
            metavar="NAME",
            help="start a new attempt of this spec even if its job succeeded or failed "
            "(repeatable)",
        )
    p.add_argument(
        "--show-unchanged",
        action="store_true",
        help="list every unchanged spec, not only a one-line count",
    )


def _globals(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """Options valid before or after the command name."""

    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    g = parser.add_argument_group("global options")
    g.add_argument(
        "--specs",
        metavar="DIR",
        default=default(os.environ.get("RECONCILER_SPECS", "specs")),
        help="specs root (default ./specs, or $RECONCILER_SPECS)",
    )
    g.add_argument(
        "--ledger",
        metavar="FILE|URL",
        default=default(os.environ.get("RECONCILER_LEDGER", "state/ledger.db")),
        help="ledger: a SQLite file (default ./state/ledger.db) or a postgresql:// URL "
        "(or $RECONCILER_LEDGER; put a password there, not on the command line)",
    )
    g.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default(0),
        help="more logging; tracebacks on errors",
    )
    g.add_argument("--no-color", action="store_true", default=default(False), help="plain output")


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line and exit 1 like every other user error."""

    def error(self, message: str) -> NoReturn:
        import re
        from difflib import get_close_matches

        hint = f"see `{self.prog} --help`"
        wrong = re.match(r"argument COMMAND: invalid choice: '([^']*)'", message)
        if wrong and (close := get_close_matches(wrong[1], list(COMMAND_NAMES), n=1)):
            message, hint = f"unknown command {wrong[1]!r}", f"did you mean `{close[0]}`?"
        self.exit(1, f"error: {self.prog}: {message} ({hint})\n")


COMMAND_NAMES = (
    "validate",
    "plan",
    "apply",
    "status",
    "output",
    "refresh",
    "watch",
    "import",
    "logs",
    "init",
    "emulator",
    "version",
    "completion",
)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="reconciler",
        description="GitOps for LLM fine-tuning: make provider fine-tune jobs match the "
        "YAML specs committed to git.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"reconciler {__version__}")
    _globals(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        _globals(p, suppress=True)
        return p

    def git_ref(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--git-ref",
            metavar="REF",
            help="read the specs tree from this commit, not the working tree",
        )

    p = command("validate", "check specs and their data files; print every problem as file:line")
    git_ref(p)
    p.add_argument("--json", action="store_true", help="machine-readable diagnostics on stdout")
    p.add_argument(
        "--offline",
        action="store_true",
        help="skip the providers' model and limit checks (run without keys or network)",
    )
    p.add_argument(
        "paths", nargs="*", metavar="PATH", help="spec files or folders (default: specs root)"
    )

    p = command("plan", "show what apply would create, replace, cancel or adopt, and why")
    git_ref(p)
    p.add_argument("--json", action="store_true", help="machine-readable plan on stdout")
    p.add_argument(
        "--format",
        choices=("text", "json", "markdown"),
        default="text",
        help="text (default), json (same as --json) or markdown (for a pull-request comment)",
    )
    p.add_argument("--out", metavar="FILE", help="save the plan for `apply --plan FILE`")
    p.add_argument(
        "--offline", action="store_true", help="no provider calls: plan from the ledger alone"
    )
    p.add_argument(
        "--max-cost",
        type=money,
        metavar="USD",
        help="refuse creates once their estimated total passes USD",
    )
    p.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 0 in sync, 2 with changes to apply, 3 with nothing to apply but drifted "
        "or degraded jobs, 1 on error",
    )
    _selection(p)

    p = command("apply", "make the providers' jobs match the specs")
    git_ref(p)
    p.add_argument(
        "--plan", metavar="FILE", help="apply exactly this saved plan (refused if stale)"
    )
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    p.add_argument("--wait", action="store_true", help="keep reconciling until every job settles")
    p.add_argument(
        "--max-cost",
        type=money,
        metavar="USD",
        help="refuse creates once their estimated total passes USD (the rest still apply)",
    )
    p.add_argument(
        "--refresh-only",
        action="store_true",
        help="only save what the providers report to the ledger (same as `reconciler refresh`)",
    )
    _selection(p)
    p.add_argument(
        "--timeout",
        type=float,
        default=24 * 3600.0,
        metavar="S",
        help="give up waiting after S seconds",
    )
    p.add_argument(
        "--interval",
        type=float,
        default=10.0,
        metavar="S",
        help="poll every S seconds while waiting (default 10)",
    )
    p.add_argument(
        "--adopt-grace",
        type=float,
        default=120.0,
        metavar="S",
        help="how long a tag missing from a provider's list may still be list lag (default 120)",
    )
    p.add_argument(
        "--allow-mass-removal",
        action="store_true",
        help="run a plan that cancels or forgets all, or more than half, of the tracked jobs",
    )

    p = command("status", "every spec's sync and health, job, progress, model or error")
    p.add_argument("name", nargs="?", metavar="NAME", help="one spec in detail, with its attempts")
    p.add_argument("--json", action="store_true", help="machine-readable status on stdout")
    p.add_argument("--offline", action="store_true", help="the ledger only, no provider calls")

    p = command("watch", "daemon: reconcile on spec changes and on a timer until SIGTERM")
    git_ref(p)
    p.add_argument(
        "--interval",
        type=float,
        default=30.0,
        metavar="S",
        help="timer between passes (default 30)",
    )
    p.add_argument(
        "--adopt-grace",
        type=float,
        default=120.0,
        metavar="S",
        help="list-lag grace for interrupted creates (default 120)",
    )
    p.add_argument(
        "--removal-settle",
        type=float,
        default=30.0,
        metavar="S",
        help="a spec must stay gone this long before its job is cancelled or forgotten "
        "(default 30)",
    )
    p.add_argument(
        "--allow-mass-removal",
        action="store_true",
        help="act on removals of all, or more than half, of the tracked jobs (else held)",
    )
    p.add_argument(
        "--max-cost",
        type=money,
        metavar="USD",
        help="refuse creates once a pass's estimated total passes USD",
    )
    p.add_argument(
        "--log-format",
        choices=("json", "console"),
        default="json",
        help="log lines on stderr (default json)",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        metavar="N",
        help="serve /metrics (Prometheus) and /healthz on this port (0: any free port)",
    )
    p.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        metavar="HOST",
        help="address for --metrics-port (default 127.0.0.1)",
    )
    p.add_argument(
        "--lease-ttl",
        type=float,
        default=30.0,
        metavar="S",
        help="on a PostgreSQL ledger: how long a replica's lease on an account lasts "
        "unrenewed, the time a dead replica's accounts wait for another (default 30)",
    )

    p = sub.add_parser(
        "emulator",
        help="serve the Together / OpenAI / Mistral emulator on loopback (try: emulator --help)",
        add_help=False,
    )
    # its options live with the emulator, imported only when it runs: see _emulator_argv

    p = command("import", "adopt an existing provider job as the current job of a spec")
    p.add_argument("target", metavar="PROVIDER:JOB_ID", help="e.g. together:ft-0123")
    p.add_argument("--name", required=True, metavar="NAME", help="the spec that describes it")

    p = command("logs", "the provider's events for a spec's current job")
    p.add_argument("name", metavar="NAME", help="spec name")
    p.add_argument(
        "--ledger-events", action="store_true", help="reconciler's own audit log instead"
    )
    p.add_argument(
        "--follow", "-f", action="store_true", help="keep printing new events until the job ends"
    )
    p.add_argument(
        "--interval",
        type=float,
        default=5.0,
        metavar="S",
        help="with --follow: poll every S seconds (default 5)",
    )
    p = command("output", "a spec's trained model: id, job, checkpoints, tokens, cost, provenance")
    p.add_argument("name", metavar="NAME", help="spec name")
    form = p.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="every output as JSON")
    form.add_argument(
        "--raw",
        "-raw",
        nargs="?",
        const="model",
        metavar="FIELD",
        help="print one value alone, for scripts (default: model; also job_id, provider, "
        "checkpoint, trained_tokens, cost_usd, git_commit)",
    )
    p.add_argument("--offline", action="store_true", help="the ledger only: no checkpoint list")

    p = command("refresh", "save what the providers report about every job to the ledger")

    p = command("init", "scaffold specs/, reconciler.yaml, a git-ignored state/, a CI example")
    p.add_argument(
        "directory", nargs="?", default=".", metavar="DIR", help="project folder (default .)"
    )
    p.add_argument(
        "--namespace", metavar="NS", help="the project's namespace (default: the folder's name)"
    )

    p = command("ledger", "manage the ledger itself: migrate copies it into another one")
    p.add_argument("action", choices=("migrate",), help="migrate: copy --ledger into --to")
    p.add_argument(
        "--to",
        required=True,
        metavar="URL",
        help="the empty ledger to copy into: a postgresql:// URL (or a SQLite file)",
    )

    p = command("version", "print reconciler's version, Python's and the spec format's")
    p.add_argument("--json", action="store_true", help="as JSON")

    p = command("completion", "print a shell completion script (bash, zsh or fish)")
    p.add_argument("shell", choices=("bash", "zsh", "fish"), help="the shell")
    return parser
