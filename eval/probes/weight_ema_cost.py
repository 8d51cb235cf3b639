"""What ``train.weight_ema`` costs per training step.

    python -m eval.probes.weight_ema_cost [--config recipes/quickstart/conf/quickstart.yaml]
        [--steps 40] [--decay 0.999] [--threads 2] [key=value ...]

One trainer, built from the config as ``codec train`` builds it, takes training steps
on a fixed random batch, alternately with and without updating its weight average
(in blocks of two steps, the order swapped every block), so that both see the same
machine load. Prints one JSON object: the median seconds of a step either way, their
ratio, and the median seconds of the average's update alone.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from codec.config import load_config
from codec.errors import CodecError
from codec.train.step import train_step
from codec.train.trainer import build_trainer
from codec.train.weight_average import WeightAverage

DEFAULT_CONFIG = Path(__file__).parents[2] / "recipes" / "quickstart" / "conf" / "quickstart.yaml"
BLOCK = 2


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def measure(config_paths: list[str], overrides: list[str], *, steps: int, decay: float,
            warmup: int = 3) -> dict:
    """Median step seconds with and without the weight average, and of its update."""
    config = load_config(config_paths, [*overrides, "train.device=cpu", "train.disc=[]",
                                        f"train.weight_ema={decay}"])
    torch.manual_seed(0)
    t = build_trainer(config)
    average: WeightAverage = t.weight_average
    length = int(config.data.segment_seconds * config.model.sample_rate)
    audio = 0.1 * torch.randn(config.data.batch_size, config.model.channels, length)
    for _ in range(warmup):  # k-means, allocator and thread pools warm
        train_step(t, audio)
    times: dict[bool, list[float]] = {True: [], False: []}
    for block in range(steps // (2 * BLOCK)):
        for with_average in ((True, False) if block % 2 else (False, True)):
            t.weight_average = average if with_average else None
            times[with_average] += [_timed(lambda: train_step(t, audio)) for _ in range(BLOCK)]
    update = [_timed(lambda: average.update(t.codec)) for _ in range(steps)]
    on, off = statistics.median(times[True]), statistics.median(times[False])
    return {"config": config_paths, "overrides": overrides, "preset": config.model.preset,
            "batch_size": config.data.batch_size,
            "segment_seconds": config.data.segment_seconds, "threads": torch.get_num_threads(),
            "parameters": t.codec.num_parameters(), "steps_each": len(times[True]),
            "step_seconds_without": off, "step_seconds_with": on, "ratio": on / off,
            "update_seconds": statistics.median(update),
            "update_share_of_step": statistics.median(update) / off}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.probes.weight_ema_cost",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", action="append",
                        help=f"config file (repeatable; default {DEFAULT_CONFIG.name})")
    parser.add_argument("--steps", type=int, default=40, help="timed steps in all (default 40)")
    parser.add_argument("--decay", type=float, default=0.999)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        result = measure(args.config or [str(DEFAULT_CONFIG)], args.overrides,
                         steps=args.steps, decay=args.decay)
    except CodecError as error:
        print(f"eval.probes.weight_ema_cost: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
