"""Convolution wrappers with weight norm and causal or centred padding.

Every wrapper keeps lengths exact: a stride-``s`` conv maps ``T`` samples to
``T / s`` frames when ``T`` is a multiple of ``s``, and the matching transposed
conv maps them back to ``T``. The encoder pads its input to a multiple of the
hop once, so no layer below has to guess.

In causal mode neither wrapper looks ahead: a conv pads on the left only, and a
transposed conv trims its overlap from the right. ``codec.coding.streaming`` runs these
same layers piece by piece, keeping their left context between calls.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrizations, parametrize


def _maybe_weight_norm(module: nn.Module, enabled: bool) -> nn.Module:
    return parametrizations.weight_norm(module) if enabled else module


def fold_weight_norm(model: nn.Module) -> nn.Module:
    """Replace every weight-norm parametrisation by its plain weight (for inference)."""
    for module in model.modules():
        if parametrize.is_parametrized(module, "weight"):
            # torch gives a deepcopy the same injected class as its original, and removal
            # deletes the ``weight`` property from that class, which would break the
            # original: fold a private copy of the class instead.
            cls = module.__class__
            module.__class__ = type(cls.__name__, cls.__bases__, dict(cls.__dict__))
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
    return model


def _split_padding(total: int, causal: bool) -> tuple[int, int]:
    """Causal: all padding on the left, so no output depends on future input; output
    frame i of a stride-s conv then sees input up to the end of its own frame, i*s + s."""
    if causal:
        return total, 0
    return total // 2, total - total // 2


class Conv1d(nn.Module):
    """1-D conv whose output has ``ceil(T / stride)`` frames for input length ``T``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *,
                 stride: int = 1, dilation: int = 1, causal: bool = False,
                 weight_norm: bool = True):
        super().__init__()
        self.conv = _maybe_weight_norm(
            nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride, dilation=dilation),
            weight_norm)
        effective_kernel = (kernel_size - 1) * dilation + 1
        self.padding = _split_padding(effective_kernel - stride, causal)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(nn.functional.pad(x, self.padding))


class ConvTranspose1d(nn.Module):
    """Transposed conv that maps ``T`` frames to exactly ``T * stride`` samples."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *,
                 stride: int, causal: bool = False, weight_norm: bool = True):
        super().__init__()
        self.conv = _maybe_weight_norm(
            nn.ConvTranspose1d(in_channels, out_channels, kernel_size, stride=stride),
            weight_norm)
        # A transposed conv yields (T - 1) * stride + kernel samples; trim the excess.
        # Causal trims it all from the right: those samples still wait for the next
        # frames' contributions, and output sample j then depends on frames <= j / stride.
        excess = kernel_size - stride
        self.trim = (0, excess) if causal else _split_padding(excess, causal=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        left, right = self.trim
        return y[..., left:y.shape[-1] - right]
