"""Command line: the entry point and the one error funnel (DESIGN §6); the grammar is
``parser``'s. Kept light on purpose: ``reconciler --help`` imports only the standard
library; each command imports what it needs when it runs (``commands/``).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence


def epilog() -> str:
    """The environment each provider of the catalog reads, and the exit codes."""
    from .providers import CATALOG  # data only: no HTTP library is imported for --help

    rows = [(f"{p.endpoint.key_var}, {p.endpoint.url_var}", p.title) for p in CATALOG.values()]
    rows += [
        ("RECONCILER_SPECS, RECONCILER_LEDGER", "defaults for --specs and --ledger"),
        ("NO_COLOR", "plain output"),
    ]
    width = max(len(name) for name, _ in rows) + 2
    lines = [f"  {name:<{width}}{what}" for name, what in rows]
    return (
        "environment (provider keys are read only when a provider is needed; base URLs are\n"
        "taken with or without /v1):\n" + "\n".join(lines) + "\n\n"
        "exit codes: 0 ok; 1 error. plan --detailed-exitcode: 0 in sync, 1 error, 2 changes\n"
        "to apply, 3 nothing to apply but drifted or degraded jobs.\n"
    )


def _emulator_argv(argv: Sequence[str]) -> list[str] | None:
    """The arguments after ``emulator`` when that is the command, else None."""
    takes_value = {"--specs", "--ledger"}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in takes_value:
            i += 2
            continue
        if arg.startswith("-"):
            i += 1
            continue
        return list(argv[i + 1 :]) if arg == "emulator" else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    emulator_argv = _emulator_argv(argv)
    if emulator_argv is not None:
        from .emulator.__main__ import main as emulator_main

        return emulator_main(emulator_argv)
    from .parser import build_parser

    parser = build_parser()
    if "_ARGCOMPLETE" in os.environ:  # a shell asking for completions (``completion``)
        import argcomplete

        argcomplete.autocomplete(parser)
    if not argv or "-h" in argv or "--help" in argv:
        parser.epilog = epilog()  # only the top-level help shows it; built only then
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    verbose = int(getattr(args, "verbose", 0) or 0)
    try:
        memo = None
        if args.command == "plan":  # an offline plan of unchanged inputs: printed again
            from .planmemo import Memo

            memo = Memo.for_args(args, argv)
            code = memo.replay() if memo is not None else None
            if code is not None:
                return code
        args.memo = memo
        with memo.recording() if memo is not None else contextlib.nullcontext():
            from .commands import run
            from .log import configure

            daemon = args.command == "watch"
            configure(
                max(verbose, 1) if daemon else verbose,
                json=getattr(args, "log_format", "console") == "json",
                interactive=not daemon,
            )
            code = run(args)
        if memo is not None:
            memo.save(code)
        return code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # the funnel: one line, exit 1; -v adds the traceback
        return _report(exc, verbose)


def _report(exc: BaseException, verbose: int) -> int:
    from .errors import ReconcilerError, SpecErrors
    from .redact import scrub

    if verbose:
        import traceback

        print(scrub("".join(traceback.format_exception(exc))), file=sys.stderr, end="")
    if isinstance(exc, SpecErrors):
        for err in exc.errors:
            print(err.render(), file=sys.stderr)
        print(f"error: {len(exc.errors)} problem(s) found", file=sys.stderr)
    elif isinstance(exc, ReconcilerError):
        print(f"error: {scrub(str(exc))}", file=sys.stderr)
    else:
        print(
            f"error: internal error: {type(exc).__name__}: {scrub(str(exc))} "
            "(this is a bug; run with -v for the traceback)",
            file=sys.stderr,
        )
    return 1
