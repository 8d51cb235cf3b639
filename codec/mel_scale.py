"""The mel scale (HTK's, which torchaudio's mel transforms use by default): band edges
equally wide to the ear, for the post-filter's and band levels' bands and the mel axis of
TensorBoard's images."""
from __future__ import annotations

import math

import torch


def hz_to_mel(hertz: float) -> float:
    return 2595 * math.log10(1 + hertz / 700)


def mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`hz_to_mel`, for a tensor of mel values."""
    return 700 * (10 ** (mel / 2595) - 1)
