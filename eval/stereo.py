"""Whether a stereo codec keeps each channel's level and the balance between channels.

- ``rms_ratio_left`` / ``rms_ratio_right``: each channel's decoded RMS over its input RMS
  over the whole file (1.0: the level kept), so that a codec cannot hide a quiet left
  channel behind a loud right one in the overall RMS ratio.
- ``ild_error_db``: the inter-channel level difference (ILD, left over right power in
  dB) of the decoded audio against the input's, the mean absolute difference over
  time-frequency tiles: frames of about 40 ms (half overlapping) in 20 mel bands.

Why tiles and not one figure per file: a file's ILD averages the panning of every
instrument over its whole length, so a codec that narrows a left-panned guitar and a
right-panned piano towards the centre at once, or swaps the balance between verses,
keeps it while the image collapses. Tiles of tens of milliseconds in bands about as wide
as hearing resolves are the scale at which parametric stereo coders measure and send
the ILD. Tiles whose input power is more than ``FLOOR_DB`` under the file's loudest tile
are left out (their ILD is noise), and ILDs are clamped to +-``MAX_ILD_DB``: beyond that a
source is heard at one side whatever the figure.
"""
from __future__ import annotations

import math

import torch

from codec import metrics
from codec.mel_scale import hz_to_mel, mel_to_hz

STEREO_METRICS = ("rms_ratio_left", "rms_ratio_right", "ild_error_db")
FRAME_SECONDS = 0.04
BANDS = 20
FLOOR_DB = 40.0
MAX_ILD_DB = 30.0


def _frame_size(sample_rate: int) -> int:
    """The power of two nearest FRAME_SECONDS at ``sample_rate`` (2048 at 44.1 kHz)."""
    return 2 ** round(math.log2(FRAME_SECONDS * sample_rate))


def band_powers(audio: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """``[C, T]`` -> each channel's power in BANDS mel bands per frame ``[C, BANDS, F]``."""
    size = _frame_size(sample_rate)
    audio = audio.double()
    if audio.shape[-1] < size:
        audio = torch.nn.functional.pad(audio, (0, size - audio.shape[-1]))
    spectra = torch.stft(audio, size, size // 2, window=torch.hann_window(size, dtype=audio.dtype),
                         center=False, return_complex=True).abs().square()
    edges = mel_to_hz(torch.linspace(0, hz_to_mel(sample_rate / 2), BANDS + 1))
    frequencies = torch.arange(size // 2 + 1) * sample_rate / size
    band = torch.bucketize(frequencies, edges[1:-1].to(frequencies.dtype))
    powers = torch.zeros(audio.shape[0], BANDS, spectra.shape[-1], dtype=spectra.dtype)
    return powers.index_add_(1, band, spectra)


def ild_error_db(reference: torch.Tensor, estimate: torch.Tensor, sample_rate: int) -> float:
    """Mean absolute ILD difference in dB over the input's audible tiles (see the module
    docstring); 0 when no tile is audible."""
    ours, theirs = band_powers(reference, sample_rate), band_powers(estimate, sample_rate)
    total = ours.sum(dim=0)
    audible = total > total.max() * 10 ** (-FLOOR_DB / 10)
    if not bool(audible.any()):
        return 0.0
    return float((_ild(theirs) - _ild(ours)).abs()[audible].mean())


def _ild(powers: torch.Tensor) -> torch.Tensor:
    """Left over right power in dB per tile, clamped to +-MAX_ILD_DB."""
    ratio = (powers[0] + metrics.EPS) / (powers[1] + metrics.EPS)
    return (10 * torch.log10(ratio)).clamp(-MAX_ILD_DB, MAX_ILD_DB)


def measure(reference: torch.Tensor, estimate: torch.Tensor, sample_rate: int,
            max_delay_seconds: float = 0.05) -> dict[str, float]:
    """The STEREO_METRICS of two-channel ``estimate`` against ``reference`` ``[2, T]``, a
    constant delay undone first as :func:`codec.metrics.measure` does."""
    if reference.shape[0] != 2 or estimate.shape[0] != 2:
        raise ValueError(f"stereo metrics need two channels, got {reference.shape[0]} and "
                         f"{estimate.shape[0]}")
    delay, _ = metrics.find_delay(reference, estimate, int(max_delay_seconds * sample_rate))
    reference, estimate = metrics.align(reference, estimate, delay)
    return {"rms_ratio_left": metrics.rms_ratio(reference[0], estimate[0]),
            "rms_ratio_right": metrics.rms_ratio(reference[1], estimate[1]),
            "ild_error_db": ild_error_db(reference, estimate, sample_rate)}
