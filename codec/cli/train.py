"""``codec train CONFIG.yaml [key=value ...]``: train or resume a run (``codec.train``)."""
from __future__ import annotations

import argparse

from codec.errors import CodecError


def split_config_arguments(items: list[str]) -> tuple[list[str], list[str]]:
    """(config files, key=value overrides); CodecError when no file is given."""
    paths = [item for item in items if "=" not in item]
    overrides = [item for item in items if "=" in item]
    if not paths:
        raise CodecError("give a config file (e.g. recipes/base.yaml), then key=value overrides")
    return paths, overrides


def run(args: argparse.Namespace) -> int:
    from codec.config import load_config
    from codec.train import fit

    fit(load_config(*split_config_arguments(args.config)))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train or resume a codec",
        description="Train a codec from YAML config files and key=value overrides "
                    "(e.g. train.steps=1000 run_dir=exp/x). Rerunning resumes the run.")
    parser.add_argument("config", nargs="+", metavar="CONFIG.yaml|key=value",
                        help="config files (later ones win), then dotted overrides")
    parser.set_defaults(run=run)
