"""The ``codec`` command. Each sub-command lives in the module that does the work;
that module's ``register(subparsers)`` adds its parser and sets ``run``.

A :class:`codec.errors.CodecError` ends the command with one line on stderr and
exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from codec.errors import CodecError

# Sub-command modules, imported when the parser is built.
COMMAND_MODULES = ("codec.train", "codec.compress", "codec.stream_cli", "codec.export",
                   "codec.info")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="codec", description="Neural audio codec toolkit.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name != name:
                raise
            continue  # a command whose module is not part of this install
        module.register(subparsers)
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
