"""The ``codec`` command. Each module of this package sets up one group of sub-commands:
its ``register(subparsers)`` adds their parsers and sets ``run``. Setting up imports
nothing heavy: a command's ``run`` imports the modules that do its work, so that
``codec --help`` (and every other command) works even where one of them cannot load.

A :class:`codec.errors.CodecError` ends the command with one line on stderr and
exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import sys

from codec.cli import coding, config, export, info, streaming, tokens, train
from codec.errors import CodecError
from codec.version import __version__

COMMAND_GROUPS = (train, config, coding, streaming, tokens, export, info)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="codec", description="Neural audio codec toolkit.")
    parser.add_argument("--version", action="version", version=f"codec {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except CodecError as error:
        print(f"codec {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"codec {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
