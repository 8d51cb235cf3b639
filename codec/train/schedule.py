"""The learning-rate schedule (warmup, then a decay that ends with the steps or the time
budget) and the data order (step s takes the items at s * batch_size onward).
"""
from __future__ import annotations

import math
from functools import partial
from typing import Callable, Iterator

import torch

from codec.config import Config
from codec.errors import CodecError

LR_DECAYS = ("cosine", "linear", "constant")


def lr_factor(step: int, *, warmup: int, total: int, min_ratio: float, decay: str,
              budget_used: float = 0.0) -> float:
    """Multiplier of the base learning rate after ``step`` updates: linear warmup over
    ``warmup`` updates, then ``decay`` down to ``min_ratio`` at ``total``, or at the end
    of the time budget if that comes first (``budget_used``: the share of it spent)."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(max((step - warmup) / max(total - warmup, 1), budget_used), 1.0)
    if decay == "cosine":
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    if decay == "linear":
        return 1 - (1 - min_ratio) * progress
    return 1.0


def make_schedule(optimizer: torch.optim.Optimizer, config: Config, total: int,
                  budget_used: Callable[[], float] = lambda: 0.0,
                  ) -> torch.optim.lr_scheduler.LambdaLR:
    """``lr_factor`` as a scheduler; ``budget_used()`` is read at every step, so that a
    run with ``train.max_minutes`` ends its decay when its time does, on any machine."""
    train = config.train
    if train.lr_decay not in LR_DECAYS:
        raise CodecError(f"train.lr_decay must be one of {LR_DECAYS}, got {train.lr_decay!r}")
    factor = partial(lr_factor, warmup=train.warmup_steps, total=total,
                     min_ratio=train.min_lr_ratio, decay=train.lr_decay)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: factor(step, budget_used=budget_used()))


class StepBatches(torch.utils.data.Sampler):
    """Index lists for steps ``start .. stop - 1``: step s on rank r of w takes
    ``s * batch_size + r * (batch_size / w) + j``, so every index is used once and the
    data position is the step."""

    def __init__(self, start: int, stop: int, batch_size: int, dataset_size: int,
                 rank: int = 0, world_size: int = 1):
        if batch_size % world_size:
            raise CodecError(f"data.batch_size={batch_size} must be divisible by the number "
                             f"of processes ({world_size})")
        self.start, self.stop, self.size = start, stop, dataset_size
        self.batch_size, self.local = batch_size, batch_size // world_size
        self.offset = rank * self.local

    def __len__(self) -> int:
        return max(self.stop - self.start, 0)

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.stop):
            first = step * self.batch_size + self.offset
            yield [(first + j) % self.size for j in range(self.local)]
