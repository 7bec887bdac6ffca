"""``python -m reconciler.emulator --port N --state PATH --speed X``."""

from __future__ import annotations

import argparse
import sys

from .server import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="reconciler emulator",
        description="Serve the Together / OpenAI / Mistral fine-tuning emulator.",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
