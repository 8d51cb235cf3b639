"""Spectral expansion: a post-filter on decoded audio that deepens what the decoder blurs.

A decoder trained on reconstruction terms gives, where the codes leave it unsure, the
mean of what the input might have been: peaks a little low, spectral valleys a little
full. Listeners (and PESQ) hear the filled valleys as noise. The filter raises each
short-time Fourier magnitude to a power above 1, keeping the phase, and then brings the
energy of each of a few bands back to the decoded audio's, frame by frame, so loud bins
come out louder than their neighbours by more than before while the level, the balance
between low and high bands and each band's envelope over time stay.

Its frames are long (about 85 ms): their bins, 12 Hz apart at 24 kHz, resolve the
harmonics of a low voice, so the expansion deepens the valleys between harmonics and not
only those between formants. The power is ``exponent`` under 1 kHz, where a voice's
harmonics stand apart and the decoder fills the valleys between them the most, and an
eighth as far above 1 from 2 kHz up, where the partials are weaker and noise-like and a
strong expansion only carves peaks into noise. The energy is kept over about 50 ms, near
the span of the band levels a file may carry; kept over a second instead, the expansion
also raises loud syllables against quiet ones, and the decoded envelope moves away from
the input's.

It is a decoding step only: the model trains without it (its terms would teach the
decoder to undo it), and the codes do not depend on it, so a file decodes with any
exponent. It looks ahead (its frames and the span over which energy is kept), so a
causal model, decoded frame by frame, takes the live post-filter in its place
(codec/coding/live_postfilter.py), whose frames look back only.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from codec.mel_scale import hz_to_mel, mel_to_hz

# Short-time Fourier frames of this length rounded to a power of two (2048 samples, 85 ms,
# at 24 kHz), at a quarter-frame hop. 20 ms frames, 47 Hz bins, blur the harmonics of a
# voice together.
FRAME_SECONDS = 0.08
# The energy of the filtered audio follows the decoded audio's over this long, rounded to
# an odd number of hops (3 at 24 kHz: 64 ms).
ENERGY_SECONDS = 0.05
# The energy is kept in each of this many bands, equally wide on the mel scale. Kept
# over the whole band instead, the expansion also moves energy from quiet bands to loud
# ones, and the faint upper bands of decoded speech sink far under the input's.
ENERGY_BANDS = 8
# The power is the full exponent under FULL_HZ, and from TAPERED_HZ up it rises above 1 by
# UPPER_SHARE of what the exponent does (1.1 for 1.8), linearly in between.
FULL_HZ = 1000.0
TAPERED_HZ = 2000.0
UPPER_SHARE = 0.125
# Magnitudes are floored before the power, so that digital silence stays finite.
MAGNITUDE_FLOOR = 1e-7


def check_exponent(exponent: float) -> str | None:
    """Why ``exponent`` cannot be a post-filter's, or None."""
    if not (math.isfinite(exponent) and 1.0 <= exponent <= 4.0):
        return f"the post-filter's exponent must be in [1, 4] (1: off), got {exponent}"
    return None


def _frame_size(sample_rate: int) -> int:
    return 2 ** round(math.log2(FRAME_SECONDS * sample_rate))


def _smooth(energy: torch.Tensor, frames: int) -> torch.Tensor:
    """``[N, B, F]`` frame energies averaged over ``frames`` neighbours (fewer at the ends)."""
    return F.avg_pool1d(energy, frames, 1, frames // 2, count_include_pad=False)


def _energy_frames(sample_rate: int, hop: int) -> int:
    return 2 * round(ENERGY_SECONDS * sample_rate / hop / 2) + 1


def reach(sample_rate: int, exponent: float) -> int:
    """Samples each side of an output sample that the filter reads: half the energy
    average, half a frame for each of the three transforms it passes through (rounded
    up to two frames), and a hop for the frame grid; none when it is off (exponent 1
    leaves the audio as it is)."""
    if exponent == 1.0:
        return 0
    n_fft = _frame_size(sample_rate)
    hop = n_fft // 4
    return _energy_frames(sample_rate, hop) // 2 * hop + 2 * n_fft + hop


def band_members(sample_rate: int, n_fft: int, bands: int = ENERGY_BANDS) -> torch.Tensor:
    """``[bins, bands]``: 1 where an STFT bin lies in one of ``bands`` bands equally wide
    on the mel scale (fewer when the lowest are narrower than a bin)."""
    edges_hz = mel_to_hz(torch.linspace(0, hz_to_mel(sample_rate / 2), bands + 1))
    edges = (edges_hz / sample_rate * n_fft).round().long().unique()  # sorted, merged
    band = torch.bucketize(torch.arange(n_fft // 2 + 1), edges[1:-1], right=True)
    return F.one_hot(band, len(edges) - 1).float()


def powers(sample_rate: int, n_fft: int, exponent: float) -> torch.Tensor:
    """``[bins, 1]``: the power each STFT bin's magnitude is raised to."""
    hz = torch.arange(n_fft // 2 + 1) * sample_rate / n_fft
    full = ((TAPERED_HZ - hz) / (TAPERED_HZ - FULL_HZ)).clamp(0.0, 1.0)
    share = UPPER_SHARE + (1.0 - UPPER_SHARE) * full
    return (1.0 + (exponent - 1.0) * share).unsqueeze(1)


def spectral_expansion(audio: torch.Tensor, sample_rate: int, exponent: float,
                       offset: int = 0) -> torch.Tensor:
    """``audio`` ``[..., T]`` with its STFT magnitudes raised to ``exponent`` (less above
    ``FULL_HZ``: :func:`powers`) and the energy of each band over each ``ENERGY_SECONDS``
    kept; unchanged for exponent 1 or audio shorter than one frame.

    ``offset`` is where ``audio`` starts in a longer signal. The frames then fall where
    they fall on the whole signal, so a piece filtered with ``reach`` samples of the
    signal each side has a centre equal to the whole signal's, as chunked decoding needs.
    """
    n_fft = _frame_size(sample_rate)
    if exponent == 1.0 or audio.shape[-1] <= n_fft:
        return audio
    hop = n_fft // 4
    lead = offset % hop  # samples before the first frame centre of the whole signal's grid
    flat = F.pad(audio.reshape(-1, audio.shape[-1]).float(), (lead, 0))
    length = flat.shape[-1]
    window = torch.hann_window(n_fft, device=audio.device)

    def stft(signal: torch.Tensor) -> torch.Tensor:
        return torch.stft(signal, n_fft, hop, window=window, return_complex=True)

    def istft(spectra: torch.Tensor) -> torch.Tensor:
        return torch.istft(spectra, n_fft, hop, window=window, length=length)

    spectra = stft(flat)
    magnitude = spectra.abs()
    # Each magnitude is taken relative to its frame's root mean square before the power:
    # the power differs between bins, so on the magnitudes themselves the balance within
    # a band would move with the audio's level.
    frame_rms = magnitude.pow(2).mean(dim=-2, keepdim=True).sqrt()
    relative = magnitude.clamp(min=MAGNITUDE_FLOOR) / frame_rms.clamp(min=MAGNITUDE_FLOOR)
    boost = relative.pow(powers(sample_rate, n_fft, exponent).to(audio.device) - 1.0)
    filtered = istft(spectra * boost)
    # The energy is measured on the filtered audio's own STFT, not on the expanded
    # magnitudes: they are no STFT of any signal, and the inverse transform loses some
    # of their energy.
    again = stft(filtered)
    members = band_members(sample_rate, n_fft).to(audio.device)
    frames = _energy_frames(sample_rate, hop)

    def band_energy(power: torch.Tensor) -> torch.Tensor:  # [N, bins, F] -> [N, bands, F]
        return _smooth(torch.einsum("nft,fb->nbt", power, members), frames)

    before = band_energy(magnitude.pow(2))
    after = band_energy(again.abs().pow(2))
    tiny = torch.finfo(after.dtype).tiny
    gain = ((before + tiny) / (after + tiny)).sqrt()
    # The gain follows the energy frame by frame, so each frame takes its own.
    restored = istft(again * torch.einsum("nbt,fb->nft", gain, members))
    return restored[:, lead:].reshape(audio.shape).to(audio.dtype)
