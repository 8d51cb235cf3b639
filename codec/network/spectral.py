"""Spectral encoder and decoder: a short-time Fourier transform at each end, and
residual convs at the frame rate between them.

Shapes: the encoder maps audio ``[B, C, T]`` (T a multiple of the hop) to latents
``[B, D, T / hop]``; the decoder maps them back to ``[B, C, T]``.

Why: a time-domain encoder must learn its own filterbank and the decoder must learn
to put every sample's phase back, which takes many steps. Here the transform does
both, so every learned layer runs at the frame rate (75 frames/s at 24 kHz, hop 320)
and the network learns a map between spectra. That buys far more updates per
CPU-hour than convs over 24,000 samples a second.

The encoder sees the complex spectrum, power-compressed (magnitude to the power 0.5,
phase kept) so that quiet bins are not lost beside loud ones. The decoder ends in a
plain conv that gives the real and imaginary parts, then the inverse transform
(windowed overlap-add): unbounded like the SEANet decoder, with no tanh and no
output scale. Each frame's window is centred on the hop of samples it codes, so the
transform looks ``(n_fft - hop) / 2`` samples ahead: these models code offline only.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from codec.network.nn import Conv1d, make_activation
from codec.network.seanet import ResidualUnit

# Exponent of the encoder's magnitude compression, and the floor that keeps its
# slope finite in silence.
COMPRESSION = 0.5
COMPRESSION_FLOOR = 1e-6


def window_problem(n_fft: int, hop: int) -> str | None:
    """Why ``n_fft`` cannot go with ``hop``, or None. Every sample must lie inside two
    windows (the overlap-add divides by their squares' sum, zero at a window's ends),
    and the padding on either side must be whole samples."""
    if n_fft < 2 * hop or (n_fft - hop) % 2:
        return (f"n_fft must be at least twice the hop ({hop}) and differ from it by an "
                f"even number, got {n_fft}")
    return None


def _window(n_fft: int) -> torch.Tensor:
    return torch.hann_window(n_fft, periodic=True)


def _root_energy(n_fft: int) -> float:
    """The window's root energy: the analysis divides spectra by it, the synthesis
    multiplies them back."""
    return float(_window(n_fft).pow(2).sum().sqrt())


class STFTAnalysis(nn.Module):
    """Audio ``[B, C, T]`` -> complex spectra ``[B, C, n_fft // 2 + 1, T / hop]``.

    Frame ``i`` is centred on samples ``[i * hop, (i + 1) * hop)``; the signal is
    zero-padded by ``(n_fft - hop) / 2`` on each side. Spectra are divided by the
    window's root energy, so white noise keeps its RMS in every bin.
    """

    def __init__(self, n_fft: int, hop: int):
        super().__init__()
        problem = window_problem(n_fft, hop)
        if problem:
            raise ValueError(problem)
        self.n_fft, self.hop, self.scale = n_fft, hop, _root_energy(n_fft)
        self.register_buffer("window", _window(n_fft), persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        batch, channels, length = audio.shape
        side = (self.n_fft - self.hop) // 2
        flat = nn.functional.pad(audio.reshape(batch * channels, length), (side, side))
        spectra = torch.stft(flat.float(), self.n_fft, self.hop, window=self.window,
                             center=False, return_complex=True)
        spectra = spectra / self.scale
        return spectra.reshape(batch, channels, *spectra.shape[-2:])


class ISTFTSynthesis(nn.Module):
    """Real and imaginary parts ``[B, C, 2, n_fft // 2 + 1, F]`` -> audio ``[B, C, F * hop]``.

    The inverse of :class:`STFTAnalysis`: windowed overlap-add divided by the
    overlap-added squared windows, so that the analysis of any signal synthesises it
    again, edges included. (``torch.istft`` refuses these frames: the squared windows
    add up to zero at the padded ends, which it checks before trimming them.)
    """

    def __init__(self, n_fft: int, hop: int):
        super().__init__()
        self.n_fft, self.hop, self.scale = n_fft, hop, _root_energy(n_fft)
        self.register_buffer("window", _window(n_fft), persistent=False)

    def _overlap_add(self, frames: torch.Tensor) -> torch.Tensor:
        """``[N, n_fft, F]`` -> ``[N, (F - 1) * hop + n_fft]``."""
        length = (frames.shape[-1] - 1) * self.hop + self.n_fft
        return nn.functional.fold(frames, output_size=(1, length), kernel_size=(1, self.n_fft),
                                  stride=(1, self.hop)).flatten(1)

    def forward(self, parts: torch.Tensor) -> torch.Tensor:
        batch, channels, _, bins, frames = parts.shape
        spectra = torch.complex(parts[:, :, 0].float(), parts[:, :, 1].float())
        spectra = spectra * self.scale  # undo the analysis's division
        windowed = torch.fft.irfft(spectra.reshape(batch * channels, bins, frames),
                                   n=self.n_fft, dim=1) * self.window[:, None]
        envelope = self._overlap_add(self.window.pow(2)[None, :, None].expand(1, -1, frames))
        # Trim before dividing: the envelope is zero at the padded ends.
        side = (self.n_fft - self.hop) // 2
        keep = slice(side, envelope.shape[-1] - side)
        audio = self._overlap_add(windowed)[:, keep] / envelope[:, keep]
        return audio.reshape(batch, channels, -1).to(parts.dtype)


def _frame_stack(width: int, dilations: Sequence[int], kernel_size: int, activation: str,
                 weight_norm: bool) -> list[nn.Module]:
    return [ResidualUnit(width, kernel_size, d, activation, causal=False,
                         weight_norm=weight_norm) for d in dilations]


class SpectralEncoder(nn.Module):
    """Audio ``[B, C, T]`` -> latents ``[B, latent_dim, T / hop]``."""

    def __init__(self, *, channels: int, hop: int, n_fft: int, width: int, latent_dim: int,
                 dilations: Sequence[int], kernel_size: int, residual_kernel_size: int,
                 activation: str, weight_norm: bool):
        super().__init__()
        self.analysis = STFTAnalysis(n_fft, hop)
        features = channels * 2 * (n_fft // 2 + 1)
        self.layers = nn.Sequential(
            Conv1d(features, width, kernel_size, weight_norm=weight_norm),
            *_frame_stack(width, dilations, residual_kernel_size, activation, weight_norm),
            make_activation(activation, width),
            Conv1d(width, latent_dim, kernel_size, weight_norm=weight_norm))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        spectra = self.analysis(audio)  # [B, C, bins, F]
        compressed = spectra * (spectra.abs() + COMPRESSION_FLOOR).pow(COMPRESSION - 1)
        parts = torch.stack((compressed.real, compressed.imag), dim=2)  # [B, C, 2, bins, F]
        return self.layers(parts.flatten(1, 3).to(audio.dtype))


class SpectralDecoder(nn.Module):
    """Latents ``[B, latent_dim, F]`` -> audio ``[B, C, F * hop]``, unbounded."""

    def __init__(self, *, channels: int, hop: int, n_fft: int, width: int, latent_dim: int,
                 dilations: Sequence[int], kernel_size: int, residual_kernel_size: int,
                 activation: str, weight_norm: bool):
        super().__init__()
        self.channels, self.bins = channels, n_fft // 2 + 1
        self.layers = nn.Sequential(
            Conv1d(latent_dim, width, kernel_size, weight_norm=weight_norm),
            *_frame_stack(width, dilations, residual_kernel_size, activation, weight_norm),
            make_activation(activation, width),
            # Plain conv last: linear real and imaginary parts (see module docstring).
            Conv1d(width, channels * 2 * self.bins, kernel_size, weight_norm=weight_norm))
        self.synthesis = ISTFTSynthesis(n_fft, hop)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        parts = self.layers(latents)
        batch, _, frames = parts.shape
        return self.synthesis(parts.reshape(batch, self.channels, 2, self.bins, frames))
