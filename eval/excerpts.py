"""Short stretches of audio to listen to and to look at: which files, and which window.

The evaluation report plays the loudest few seconds of some files beside their decoded
versions; ``eval.diagnostics`` takes its crops from the loudest stretch of each file.
"""
from __future__ import annotations

import torch

from eval.dataset import EvalItem


def pick_clip_items(items: list[EvalItem], count: int) -> list[EvalItem]:
    """Up to ``count`` items, alternating speech and other material when both exist."""
    speech = [i for i in items if i.speech]
    other = [i for i in items if not i.speech]
    picked = []
    while len(picked) < count and (speech or other):
        for pool in (speech, other):
            if pool and len(picked) < count:
                picked.append(pool.pop(0))
    return picked


def loudest_window(audio: torch.Tensor, length: int) -> int:
    """Start of the ``length``-sample window of ``audio [C, T]`` with the most energy."""
    if audio.shape[-1] <= length:
        return 0
    energy = torch.cumsum(audio.double().pow(2).sum(0), 0)
    energy = torch.cat([energy.new_zeros(1), energy])
    sums = energy[length:] - energy[:-length]
    return int(sums.argmax())


def start_excerpt(item: EvalItem, original: torch.Tensor, rate: int, seconds: float) -> dict:
    """The loudest ``seconds`` of ``original``: where they start, how long they are, and
    ``audio`` holding the original's excerpt, to which each system's decoded excerpt is
    added under its key."""
    length = min(original.shape[-1], int(seconds * rate))
    start = loudest_window(original, length)
    return {"name": item.name, "speech": item.speech, "sample_rate": rate,
            "start": start, "length": length,
            "audio": {"original": original[..., start:start + length]}}
