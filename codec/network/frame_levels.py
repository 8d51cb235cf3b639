"""Frame levels: the input's level in a few bands, one vector per frame, coded by the
first codebook, and the decoder's frames brought to them before its inverse transform.

Why: at a low bitrate the codes carry what the waveform terms pay for, which is the low
bands; the decoded speech above about 1 kHz comes out tens of dB too faint. Band levels
sent beside the codes fix that offline (codec/coding/band_levels.py), but they are
measured over spans, smoothed across neighbours and applied by a transform that looks a
hop ahead: a live decoder cannot wait for them. Here the level of each band is measured
on the encoder's own analysis frame (which looks only back), vector-quantised by one
more codebook (row 0 of the codes, learned by EMA like the others) and applied to the
decoder's spectrum of the same frame. Nothing waits for a later frame, so the model's
latency is what it was, and streamed coding equals offline coding as for every other
code.

Levels are mean power per bin, in dB, in ``bands`` bands equally wide on the mel scale;
the vector is quantised in units of 10 dB above :data:`FLOOR_DB` (so distances between
codewords are in tens of dB) and a band at or under the floor is sent as the floor. The
decoder scales each bin by the gain that brings its band to the level, interpolated
between band centres (in dB) so that no bin steps at a band's edge, and never by more
than :data:`MAX_BOOST_DB`. A causal decoder measures the level it makes on the middle of
each frame, as it will sound (:func:`heard_operator`).

Shapes: spectra ``[B, C, bins, F]`` (complex) or decoder parts ``[B, C, 2, bins, F]``;
level vectors ``[B, C * bands, F]`` in the quantiser's units.
"""
from __future__ import annotations

import functools

import torch
from torch import nn

from codec.mel_scale import hz_to_mel, mel_to_hz
from codec.network.quantize import (
    QuantizedResult,
    ResidualVQ,
    VectorQuantizer,
    check_codes,
)

# Mean power per bin (full scale 1, after the transforms' window normalisation) below
# which a band is silent; levels are coded in UNIT_DB steps above it.
FLOOR_DB = -100.0
UNIT_DB = 10.0
MAX_BOOST_DB = 40.0
TINY = 1e-20
MIN_BANDS, MAX_BANDS = 1, 64


@functools.lru_cache(maxsize=16)
def band_edges(bins: int, sample_rate: int, bands: int) -> tuple[int, ...]:
    """Bin indices where each of ``bands`` mel-wide bands starts, and the end: every band
    at least one bin wide, the first from bin 0, the last to the Nyquist bin."""
    nyquist = sample_rate / 2
    mels = torch.linspace(0, hz_to_mel(nyquist), bands + 1, dtype=torch.float64)
    edges = (mel_to_hz(mels) / nyquist * (bins - 1)).round().long().tolist()
    edges[0], edges[-1] = 0, bins
    for i in range(1, bands + 1):  # at least one bin each, as far as the bins go
        edges[i] = min(max(edges[i], edges[i - 1] + 1), bins - (bands - i))
    edges[-1] = bins
    return tuple(edges)


@functools.lru_cache(maxsize=16)
@torch.inference_mode(False)  # cached: made during inference, it must still serve training
def _members(bins: int, sample_rate: int, bands: int) -> torch.Tensor:
    """``[bands, bins]``: 1 / width over a band's bins, so a product gives mean power."""
    edges = band_edges(bins, sample_rate, bands)
    matrix = torch.zeros(bands, bins)
    for band, (start, end) in enumerate(zip(edges[:-1], edges[1:], strict=False)):
        matrix[band, start:end] = 1.0 / (end - start)
    return matrix


@functools.lru_cache(maxsize=16)
@torch.inference_mode(False)  # likewise
def _spread(bins: int, sample_rate: int, bands: int) -> torch.Tensor:
    """``[bins, bands]``: each bin's weights on the band gains, linear between band
    centres and flat beyond the outer ones; every row sums to 1."""
    edges = torch.tensor(band_edges(bins, sample_rate, bands), dtype=torch.float64)
    centres = (edges[:-1] + edges[1:] - 1) / 2
    position = torch.arange(bins, dtype=torch.float64).clamp(centres[0], centres[-1])
    # The first centre above each bin (a comparison, not searchsorted: ONNX lacks it).
    upper = (position[:, None] >= centres[None, :]).sum(dim=1).clamp(1, max(bands - 1, 1))
    matrix = torch.zeros(bins, bands, dtype=torch.float64)
    if bands == 1:
        matrix[:, 0] = 1.0
        return matrix.float()
    lower = upper - 1
    share = ((position - centres[lower]) / (centres[upper] - centres[lower])).clamp(0, 1)
    rows = torch.arange(bins)
    matrix[rows, lower] = 1 - share
    matrix[rows, upper] += share
    return matrix.float()


def band_db(power: torch.Tensor, sample_rate: int, bands: int) -> torch.Tensor:
    """Power per bin ``[B, C, bins, F]`` -> mean power per band in dB ``[B, C, bands, F]``,
    floored at :data:`FLOOR_DB`."""
    members = _members(power.shape[-2], sample_rate, bands).to(power.device)
    mean = torch.einsum("kb,ncbf->nckf", members, power.float())
    return (10 * torch.log10(mean + TINY)).clamp(min=FLOOR_DB)


def levels_of(spectra: torch.Tensor, sample_rate: int, bands: int) -> torch.Tensor:
    """Complex spectra ``[B, C, bins, F]`` -> level vectors ``[B, C * bands, F]``."""
    levels = (band_db(spectra.abs().pow(2), sample_rate, bands) - FLOOR_DB) / UNIT_DB
    return levels.flatten(1, 2)


@torch.inference_mode(False)  # made while loading for inference, it must still serve training
def heard_operator(window: torch.Tensor) -> torch.Tensor:
    """``[2 * bins, 2 * bins]``: a causal decoder's parts (real and imaginary, flattened)
    -> the spectrum of the middle of the frame its synthesis makes of them, where
    ``window`` (the crossfade window, ``size`` samples, ``bins = size // 2 + 1``) is flat
    and no neighbour sounds, in the analysis's scale (a stationary signal has the same
    power per bin in both).

    The decoder's parts alone do not say how loud a frame will sound. A decoder trained
    on waveform terms learns to put what it cannot predict at the frame's edges, where
    the crossfade hides it and the neighbour's edge can cancel it (the live model's
    bands above 1 kHz lost 10 to 25 dB that way, and more once levels were imposed on
    the whole frame). The middle is heard as it is, so levels measured there hold. A
    fixed linear map (inverse transform, the middle, transform): one product per frame,
    the same in the ONNX graph.
    """
    window = window.detach().to("cpu", torch.float64)
    size = window.shape[0]
    bins, scale = size // 2 + 1, window.pow(2).sum().sqrt()
    middle = (window == 1.0).to(torch.float64)
    if not middle.any():  # a crossfade over the whole hop: no part sounds alone
        middle = window
    # Column j: the j-th unit vector of the flattened parts, through the synthesis.
    unit = torch.eye(2 * bins, dtype=torch.float64, device="cpu").reshape(2, bins, 2 * bins)
    frames = torch.fft.irfft(torch.complex(unit[0], unit[1]) * scale, n=size, dim=0)
    spectra = torch.fft.rfft(frames * middle[:, None], dim=0) / middle.pow(2).sum().sqrt()
    return torch.cat([spectra.real, spectra.imag]).float()


def bring_to(parts: torch.Tensor, levels: torch.Tensor, sample_rate: int,
             heard: torch.Tensor | None = None) -> torch.Tensor:
    """Decoder parts ``[B, C, 2, bins, F]`` with each band brought to ``levels``
    (``[B, C * bands, F]``, quantiser units), differentiably in ``parts``; the level
    made is measured on ``heard`` (:func:`heard_operator`) times the parts when given,
    else on the parts themselves."""
    sounding = parts.float()
    if heard is not None:
        flat = torch.einsum("ij,ncjf->ncif", heard.to(parts.device), sounding.flatten(2, 3))
        sounding = flat.reshape(parts.shape)
    gains = bin_gains(sounding.pow(2).sum(dim=2), levels, sample_rate)
    return parts * gains.unsqueeze(2).to(parts.dtype)


def bin_gains(power: torch.Tensor, levels: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Power per bin ``[B, C, bins, F]`` and level vectors ``[B, C * bands, F]`` -> the
    gain per bin ``[B, C, bins, F]`` (amplitude) that brings each band to its level,
    interpolated between band centres and never above :data:`MAX_BOOST_DB`."""
    batch, channels, bins, frames = power.shape
    bands = levels.shape[1] // channels
    target = levels.reshape(batch, channels, bands, frames) * UNIT_DB + FLOOR_DB
    gain_db = (target - band_db(power, sample_rate, bands)).clamp(max=MAX_BOOST_DB)
    spread = _spread(bins, sample_rate, bands).to(power.device)
    return torch.pow(10.0, torch.einsum("ik,nckf->ncif", spread, gain_db) / 20)


class LevelledRVQ(nn.Module):
    """A residual VQ whose first ``level_codebooks`` codebooks code the frame levels, each
    quantising what the ones before it left.

    Its input is the encoder's latents with the level vectors after them, ``[B,
    latent_dim + level_dim, F]``, and so is its output. Codes ``[B, n_q, F]``: the level
    rows first, then the latents' residual codebooks; ``n_q`` counts both, so the
    bitrate rule, the files and the streams treat the level codebooks as any other. Up
    to ``level_codebooks`` codebooks code the levels alone (the latents are then zero).
    """

    def __init__(self, *, dim: int, level_dim: int, n_q: int, codebook_size: int,
                 decay: float = 0.99, kmeans_iters: int = 10, dead_code_threshold: float = 0.1,
                 dropout: float = 1.0, level_codebooks: int = 1):
        super().__init__()
        if not 1 <= level_codebooks < n_q:
            raise ValueError(f"frame levels take the first {level_codebooks} codebooks: n_q "
                             f"must be more than that, got {n_q}")
        self.n_q, self.codebook_size, self.dim, self.level_dim = n_q, codebook_size, dim, \
            level_dim
        self.level_rows = level_codebooks
        options = dict(codebook_size=codebook_size, decay=decay, kmeans_iters=kmeans_iters,
                       dead_code_threshold=dead_code_threshold)
        # The levels are measured, not learned by the encoder: every level codebook is
        # used by every item, and no commitment pulls on them.
        levels = ResidualVQ(dim=level_dim, n_q=level_codebooks, dropout=0.0, **options)
        residual = ResidualVQ(dim=dim, n_q=n_q - level_codebooks, dropout=dropout, **options)
        # Every codebook in code-row order, the level codebooks first, so that the weights
        # are named as in a plain residual VQ; the two residual VQs share its layers and
        # are kept out of the module tree (they hold nothing else).
        self.layers = nn.ModuleList([*levels.layers, *residual.layers])
        object.__setattr__(self, "_levels", levels)
        object.__setattr__(self, "_residual", residual)

    @property
    def levels(self) -> VectorQuantizer:
        """The first level codebook."""
        return self.layers[0]

    @property
    def level_vq(self) -> ResidualVQ:
        """The level codebooks, in the mode this module is in."""
        return self._levels.train(self.training)

    @property
    def residual(self) -> ResidualVQ:
        """The latents' codebooks, in the mode this module is in."""
        return self._residual.train(self.training)

    def check_n_q(self, n_q: int | None) -> int:
        n_q = self.n_q if n_q is None else int(n_q)
        if not 1 <= n_q <= self.n_q:
            raise ValueError(f"n_q must be between 1 and {self.n_q} (codebooks in this model, "
                             f"the level codebooks included), got {n_q}")
        return n_q

    def _split(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return latents[:, :self.dim], latents[:, self.dim:]

    def _level_metrics(self, metrics: dict) -> dict:
        """The level codebooks' metrics under their own names (the first as ``levels``)."""
        named = {}
        for row in range(self.level_rows):
            name = "levels" if row == 0 else f"levels{row}"
            for key in ("usage", "perplexity", "revived"):
                named[f"codebook/{name}/{key}"] = metrics[f"codebook/{row}/{key}"]
        return named

    def forward(self, latents: torch.Tensor, n_q: int | None = None) -> QuantizedResult:
        n_q = self.check_n_q(n_q)
        latents, levels = self._split(latents)
        level_n_q = min(n_q, self.level_rows)
        coded = self.level_vq(levels, level_n_q)
        metrics = self._level_metrics(coded.metrics)
        if n_q == level_n_q:
            return QuantizedResult(torch.cat([torch.zeros_like(latents), coded.quantized], dim=1),
                                   coded.codes, {"commit": latents.new_zeros(())}, metrics)
        inner = self.residual(latents, n_q - level_n_q)
        metrics.update(inner.metrics)
        return QuantizedResult(torch.cat([inner.quantized, coded.quantized], dim=1),
                               torch.cat([coded.codes, inner.codes], dim=1),
                               inner.losses, metrics)

    def encode(self, latents: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        """Latents and level vectors -> codes ``[B, n_q, F]`` (no codebook updates)."""
        n_q = self.check_n_q(n_q)
        latents, levels = self._split(latents)
        level_n_q = min(n_q, self.level_rows)
        level_codes = self.level_vq.encode(levels.float(), level_n_q)
        if n_q == level_n_q:
            return level_codes
        return torch.cat([level_codes, self.residual.encode(latents, n_q - level_n_q)], dim=1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, n_q, F]`` -> quantised latents and level vectors."""
        check_codes(codes, self.check_n_q, self.codebook_size)
        levels = self.level_vq.decode(codes[:, :self.level_rows])
        if codes.shape[1] <= self.level_rows:
            latents = levels.new_zeros(codes.shape[0], self.dim, codes.shape[-1])
        else:
            latents = self.residual.decode(codes[:, self.level_rows:])
        return torch.cat([latents, levels], dim=1)
