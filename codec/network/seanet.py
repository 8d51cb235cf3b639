"""SEANet-style encoder and decoder: strided 1-D convs with residual units.

Shapes: the encoder maps audio ``[B, C, T]`` (T a multiple of the hop) to latents
``[B, D, T / hop]``; the decoder maps them back to ``[B, C, T]``.
The decoder is unbounded on purpose: no tanh and no learned output scale, a
plain conv last. Amplitude comes from loudness-normalised data and the conv
weights, so loud inputs are not clipped and quiet ones are not squashed.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from codec.network.nn import Conv1d, ConvTranspose1d, make_activation


class ResidualUnit(nn.Module):
    """x + conv1x1(act(conv_k(act(x)))) with a bottleneck of half the width."""

    def __init__(self, width: int, kernel_size: int, dilation: int, activation: str,
                 causal: bool, weight_norm: bool):
        super().__init__()
        hidden = max(width // 2, 1)
        self.block = nn.Sequential(
            make_activation(activation, width),
            Conv1d(width, hidden, kernel_size, dilation=dilation, causal=causal,
                   weight_norm=weight_norm),
            make_activation(activation, hidden),
            Conv1d(hidden, width, 1, weight_norm=weight_norm),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


def _residual_stack(width: int, dilations: Sequence[int], kernel_size: int, activation: str,
                    causal: bool, weight_norm: bool) -> list[nn.Module]:
    return [ResidualUnit(width, kernel_size, d, activation, causal, weight_norm)
            for d in dilations]


class SEANetEncoder(nn.Module):
    """Audio ``[B, C, T]`` -> latents ``[B, latent_dim, T / prod(strides)]``.

    ``widths[i]`` is the channel count entering stage ``i``; ``widths[-1]`` is the
    width after the last downsampling. Strides run from fine to coarse. Stages before
    ``first_residual_stage`` (the highest rates) only downsample: a residual unit there
    costs the most time per parameter, because small convs and activations over many
    samples are memory-bound.
    """

    def __init__(self, *, channels: int, strides: Sequence[int], widths: Sequence[int],
                 latent_dim: int, dilations: Sequence[int], kernel_size: int,
                 residual_kernel_size: int, activation: str, causal: bool, weight_norm: bool,
                 first_residual_stage: int = 0):
        super().__init__()
        if len(widths) != len(strides) + 1:
            raise ValueError(f"widths needs len(strides) + 1 = {len(strides) + 1} entries, "
                             f"got {len(widths)}")
        opts = dict(causal=causal, weight_norm=weight_norm)
        layers: list[nn.Module] = [Conv1d(channels, widths[0], kernel_size, **opts)]
        for stage, stride in enumerate(strides):
            width, next_width = widths[stage], widths[stage + 1]
            if stage >= first_residual_stage:
                layers += _residual_stack(width, dilations, residual_kernel_size, activation,
                                          **opts)
            layers += [make_activation(activation, width),
                       Conv1d(width, next_width, 2 * stride, stride=stride, **opts)]
        layers += [make_activation(activation, widths[-1]),
                   Conv1d(widths[-1], latent_dim, kernel_size, **opts)]
        self.layers = nn.Sequential(*layers)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.layers(audio)


class SEANetDecoder(nn.Module):
    """Latents ``[B, latent_dim, F]`` -> audio ``[B, C, F * prod(strides)]``, unbounded.

    The mirror of :class:`SEANetEncoder`, with the same ``first_residual_stage``.
    """

    def __init__(self, *, channels: int, strides: Sequence[int], widths: Sequence[int],
                 latent_dim: int, dilations: Sequence[int], kernel_size: int,
                 residual_kernel_size: int, activation: str, causal: bool, weight_norm: bool,
                 first_residual_stage: int = 0):
        super().__init__()
        opts = dict(causal=causal, weight_norm=weight_norm)
        layers: list[nn.Module] = [Conv1d(latent_dim, widths[-1], kernel_size, **opts)]
        for stage in reversed(range(len(strides))):
            width, next_width = widths[stage + 1], widths[stage]
            layers += [make_activation(activation, width),
                       ConvTranspose1d(width, next_width, 2 * strides[stage],
                                       stride=strides[stage], **opts)]
            if stage >= first_residual_stage:
                layers += _residual_stack(next_width, dilations, residual_kernel_size,
                                          activation, **opts)
        # Plain conv last: no tanh, no output scale (see module docstring).
        layers += [make_activation(activation, widths[0]),
                   Conv1d(widths[0], channels, kernel_size, **opts)]
        self.layers = nn.Sequential(*layers)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.layers(latents)
