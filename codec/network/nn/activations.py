"""Activations, picked by name from the config."""
from __future__ import annotations

import torch
from torch import nn


class Snake(nn.Module):
    """Snake activation x + sin^2(alpha x) / alpha with a learned alpha per channel.

    Periodic inductive bias for audio (Ziyin et al., 2020; used by BigVGAN and DAC).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The small constant keeps 1/alpha finite if alpha is driven to zero.
        return x + torch.sin(self.alpha * x).pow(2) / (self.alpha + 1e-9)


def _elu(channels: int) -> nn.Module:
    return nn.ELU()


def _gelu(channels: int) -> nn.Module:
    return nn.GELU()


ACTIVATIONS = {"elu": _elu, "snake": Snake, "gelu": _gelu}


def make_activation(name: str, channels: int) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choices: {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name](channels)
