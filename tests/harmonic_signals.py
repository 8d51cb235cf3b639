"""Test signals for the post-filters: harmonics with noise in the valleys between them,
and how much of their energy lies in those valleys."""
from __future__ import annotations

import math

import torch


def harmonics_in_noise(rate: int, f0: float, seconds: float = 2.0,
                       noise: float = 0.02) -> torch.Tensor:
    """Harmonics of f0 with white noise filling the valleys between them, [1, 1, T]."""
    t = torch.arange(int(seconds * rate)) / rate
    tones = sum(torch.sin(2 * math.pi * f0 * k * t) / k for k in range(1, 9))
    hiss = noise * torch.randn(t.shape, generator=torch.Generator().manual_seed(0))
    return (0.1 * tones + hiss).reshape(1, 1, -1)


def valley_share(audio: torch.Tensor, rate: int, f0: float, low_hz: float = 0.0,
                 high_hz: float | None = None) -> float:
    """The share of the energy from low_hz to high_hz (default: under the ninth harmonic)
    that lies more than f0 / 8 away from the harmonics."""
    spectrum = torch.fft.rfft(audio.flatten()).abs().pow(2)
    hz = torch.fft.rfftfreq(audio.shape[-1], 1 / rate)
    band = (hz >= low_hz) & (hz < (8.5 * f0 if high_hz is None else high_hz))
    near = ((hz / f0 - (hz / f0).round()).abs() < 1 / 8) & band
    return float(spectrum[band & ~near].sum() / spectrum[band].sum())
