"""An exponential moving average of a model's weights (``train.weight_ema``).

Averaging the weights of the last few hundred updates smooths out the noise of the
last steps of SGD (Polyak & Juditsky 1992); generators are commonly validated and
shipped with such an average. Only parameters are averaged: the quantizer's codebooks
are buffers that already learn by moving averages, and codes only mean something with
the codebooks that made them, so the average always takes the live model's buffers.
"""
from __future__ import annotations

import copy

import torch
from torch import nn


class WeightAverage:
    """``average = d * average + (1 - d) * weights`` after every update, where the decay
    ``d`` is ``decay`` but at most ``(1 + n) / (10 + n)`` after ``n`` updates, so that
    the first (random or just loaded) weights fade within the first steps instead of
    lingering for ``1 / (1 - decay)`` of them."""

    def __init__(self, model: nn.Module, decay: float):
        if not 0 < decay < 1:
            raise ValueError(f"the decay of a weight average must be in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    def reset(self, model: nn.Module) -> None:
        """Start the average again from ``model``'s weights (after loading new ones)."""
        self.model.load_state_dict(model.state_dict())
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards ``model``'s current parameters."""
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for average, current in zip(self.model.parameters(), model.parameters(), strict=True):
            average.lerp_(current.detach(), 1 - decay)

    @torch.no_grad()
    def averaged(self, model: nn.Module) -> nn.Module:
        """The averaged model (eval mode), with ``model``'s current buffers (codebooks)."""
        for average, current in zip(self.model.buffers(), model.buffers(), strict=True):
            average.copy_(current)
        return self.model

    def state_dict(self) -> dict:
        return {"updates": self.updates, "decay": self.decay}

    def load_state_dict(self, state: dict, weights: dict[str, torch.Tensor]) -> None:
        """Restore from :meth:`state_dict` and the averaged model's ``weights``."""
        self.updates = int(state["updates"])
        self.model.load_state_dict(weights)
