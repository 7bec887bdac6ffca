"""``version`` and ``completion``: what is installed, and tab completion for the shells."""

from __future__ import annotations

import argparse
import platform
import sys

from .. import __version__
from ..planfile import FORMAT_VERSION, dumps

SPEC_API_VERSION = "reconciler/v1"


def cmd_version(args: argparse.Namespace) -> int:
    facts = {
        "version": __version__,
        "python": platform.python_version(),
        "spec_api_version": SPEC_API_VERSION,
        "json_format_version": FORMAT_VERSION,
    }
    if args.json:
        print(dumps({"format_version": FORMAT_VERSION, **facts}))
    else:
        print(
            f"reconciler {__version__} (Python {facts['python']}; specs {SPEC_API_VERSION}, "
            f"JSON format {FORMAT_VERSION})"
        )
    return 0


INSTALL = {
    "bash": "reconciler completion bash > ~/.local/share/bash-completion/completions/reconciler",
    "zsh": 'reconciler completion zsh > "${fpath[1]}/_reconciler"',
    "fish": "reconciler completion fish > ~/.config/fish/completions/reconciler.fish",
}


def cmd_completion(args: argparse.Namespace) -> int:
    """The shell's completion script (argcomplete's), with how to install it."""
    from argcomplete.shell_integration import shellcode

    sys.stdout.write(f"# install: {INSTALL[args.shell]}\n")
    sys.stdout.write(shellcode(["reconciler"], shell=args.shell))
    return 0
