"""``codec config CONFIG.yaml [key=value ...]``: print a config as training would resolve
it (the schema's defaults, the model preset, each file's ``base:`` chain, then the
overrides), without training."""
from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    from codec.config import config_from_arguments, to_yaml

    print(to_yaml(config_from_arguments(args.config)), end="")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "config", help="print a config as it resolves, without training",
        description="Print the config that `codec train` would run with the same "
                    "arguments: defaults, model preset, base: chain and key=value "
                    "overrides merged, as YAML.")
    parser.add_argument("config", nargs="+", metavar="CONFIG.yaml|key=value",
                        help="config files (later ones win), then dotted overrides")
    parser.set_defaults(run=run)
