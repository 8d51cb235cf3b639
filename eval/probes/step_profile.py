"""Where a recipe's training step spends its time: ``python -m eval.probes.step_profile
CONFIG.yaml [key=value ...] [--steps 30] [--top 25] [--no-profiler]``.

Builds the trainer of CONFIG (as ``python -m codec.train`` would, without data or
validation), runs ``codec.train.step.train_step`` on batches of noise shaped as the
config's crops, and prints the seconds per step and the torch operators that took the
most CPU time of their own over ``--steps`` steps (after five to warm up). The step's
cost does not depend on what the audio holds, so noise stands in for the corpus. With
``--no-profiler`` it times each step alone and prints their median, the figure to
compare two settings by (``train.precision=fp32`` against ``bf16``, say).
"""
from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

from codec.config import load_config
from codec.train.step import train_step
from codec.train.trainer import build_trainer

WARMUP_STEPS = 5


def _batch(config) -> torch.Tensor:
    samples = round(config.data.segment_seconds * config.model.sample_rate)
    return 0.1 * torch.randn(config.data.batch_size, config.model.channels, samples)


def _median_step(trainer, config, steps: int) -> float:
    seconds = []
    for _ in range(steps):
        batch = _batch(config)
        start = time.perf_counter()
        train_step(trainer, batch)
        seconds.append(time.perf_counter() - start)
    return sorted(seconds)[len(seconds) // 2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*", help="key=value, as codec.train takes them")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--no-profiler", action="store_true",
                        help="time each step without the profiler and print the median")
    args = parser.parse_args(argv)
    config = load_config([args.config], args.overrides)
    torch.set_num_threads(config.train.threads or torch.get_num_threads())
    trainer = build_trainer(config)
    for _ in range(WARMUP_STEPS):
        train_step(trainer, _batch(config))
    if args.no_profiler:
        precision = "bf16" if trainer.autocast_dtype is torch.bfloat16 else "float32"
        print(f"{_median_step(trainer, config, args.steps):.3f} s per step, the median of "
              f"{args.steps} ({torch.get_num_threads()} threads, {precision})")
        return 0
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        for _ in range(args.steps):
            train_step(trainer, _batch(config))
    seconds = (time.perf_counter() - start) / args.steps
    print(f"{seconds:.3f} s per step over {args.steps} steps "
          f"({torch.get_num_threads()} threads, profiler on)")
    print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
