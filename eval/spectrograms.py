"""Spectrograms of a listening excerpt for the report: for each system, the original,
the decoded audio and their difference side by side, so that what a codec drops or adds
(a missing band, smeared attacks, noise in the gaps) shows before it is heard.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

N_FFT = 1024
HOP = 256
FLOOR_DB = -100.0
DIFFERENCE_DB = 20.0  # the difference view's colour range, +- this many dB


def log_spectrogram(audio: torch.Tensor) -> np.ndarray:
    """``audio [C, T]`` (first channel) -> magnitude in dB ``[freq, frames]``."""
    mono = audio.detach().float().cpu()[0]
    if mono.numel() < N_FFT:
        mono = torch.nn.functional.pad(mono, (0, N_FFT - mono.numel()))
    stft = torch.stft(mono, N_FFT, HOP, window=torch.hann_window(N_FFT), return_complex=True)
    return (20 * torch.log10(stft.abs().clamp(min=1e-5))).clamp(min=FLOOR_DB).numpy()


def write_excerpt_figure(audio: dict[str, torch.Tensor], sample_rate: int,
                         systems: Sequence[tuple[str, str]], path: str | Path) -> Path:
    """A PNG at ``path``: one row per system present in ``audio`` (keyed like
    ``systems``' keys, plus ``"original"``) with original | decoded | decoded minus
    original (dB)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    original = log_spectrogram(audio["original"])
    present = [(key, label) for key, label in systems if key in audio]
    seconds = audio["original"].shape[-1] / sample_rate
    extent = (0, seconds, 0, sample_rate / 2000)
    figure, axes = plt.subplots(len(present), 3, figsize=(13, 2.6 * len(present)),
                                squeeze=False, sharex=True, sharey=True)
    top = float(original.max())
    for row, (key, label) in enumerate(present):
        decoded = log_spectrogram(audio[key])
        frames = min(decoded.shape[1], original.shape[1])
        decoded = decoded[:, :frames]
        views = [(original[:, :frames], "original", "magma", (top - 90, top)),
                 (decoded, label, "magma", (top - 90, top)),
                 (decoded - original[:, :frames], f"{label} minus original (dB)", "coolwarm",
                  (-DIFFERENCE_DB, DIFFERENCE_DB))]
        for axis, (image, title, cmap, (low, high)) in zip(axes[row], views, strict=True):
            shown = axis.imshow(image, origin="lower", aspect="auto", cmap=cmap, vmin=low,
                                vmax=high, extent=extent, interpolation="nearest")
            axis.set_title(title, fontsize=9)
            if row == len(present) - 1:
                axis.set_xlabel("seconds")
        axes[row][0].set_ylabel("kHz")
        figure.colorbar(shown, ax=axes[row][2], fraction=0.05)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path
