"""``codec train CONFIG.yaml [key=value ...]``: train or resume a run (``codec.train``)."""
from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    from codec.config import config_from_arguments
    from codec.train import fit

    fit(config_from_arguments(args.config))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train or resume a codec",
        description="Train a codec from YAML config files and key=value overrides "
                    "(e.g. train.steps=1000 run_dir=exp/x). Rerunning resumes the run.")
    parser.add_argument("config", nargs="+", metavar="CONFIG.yaml|key=value",
                        help="config files (later ones win), then dotted overrides")
    parser.set_defaults(run=run)
