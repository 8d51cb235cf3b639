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
transform looks ``(n_fft - hop) / 2`` samples ahead: such a model codes offline only.

The causal (low-delay) layout looks only back. A frame's analysis window ends with the
last sample of its hop: it rises over the ``n_fft - hop`` samples before the hop, which
give the frame its frequency resolution, and is flat over the hop itself, so that the
newest samples weigh in fully (the decoder cannot wait for the next frame to hear
them). The decoder's frames are ``hop + overlap`` samples long and end with their hop:
flat over most of it, crossfaded with the neighbours over ``overlap`` samples, as
low-delay transform codecs do. A decoded sample is then final once the frame after it
has arrived: the whole delay is ``hop + overlap`` samples. The frame-rate convs are
causal too.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from codec.network import frame_levels, stereo
from codec.network.level_stage import LevelStage
from codec.network.nn import Conv1d, make_activation
from codec.network.seanet import ResidualUnit

# Exponent of the encoder's magnitude compression, and the floor that keeps its
# slope finite in silence.
COMPRESSION = 0.5
COMPRESSION_FLOOR = 1e-6
# The phase-only path's floor under a bin's magnitude (magnitudes_held).
MAGNITUDE_FLOOR = 1e-6


def window_problem(n_fft: int, hop: int) -> str | None:
    """Why ``n_fft`` cannot go with ``hop``, or None. Every sample must lie inside two
    windows (the overlap-add divides by their squares' sum, zero at a window's ends),
    and the padding on either side must be whole samples."""
    if n_fft < 2 * hop or (n_fft - hop) % 2:
        return (f"n_fft must be at least twice the hop ({hop}) and differ from it by an "
                f"even number, got {n_fft}")
    return None


# Windows are made on the CPU, whatever the default device: their scale is read as a
# number, which a model sketched on the meta device (to check a file's shapes) needs too.
def _window(n_fft: int) -> torch.Tensor:
    return torch.hann_window(n_fft, periodic=True, device="cpu")


def overlap_problem(overlap: int, hop: int) -> str | None:
    """Why a causal decoder's crossfade of ``overlap`` samples cannot go with ``hop``."""
    if not 1 <= overlap <= hop:
        return f"synthesis_overlap must be 1 to the hop ({hop}) samples, got {overlap}"
    return None


def causal_analysis_window(n_fft: int, hop: int) -> torch.Tensor:
    """Rising (half a Hann window) over the ``n_fft - hop`` samples before a frame's hop,
    flat over the hop."""
    rise = torch.hann_window(2 * (n_fft - hop), periodic=True, device="cpu")[:n_fft - hop]
    return torch.cat([rise, torch.ones(hop, device="cpu")])


def crossfade_window(hop: int, overlap: int) -> torch.Tensor:
    """``hop + overlap`` samples: rising over ``overlap`` (sin^2), flat, falling over the
    last ``overlap`` (cos^2); neighbours a hop apart add up to 1. No value is 0, so the
    last frame of a signal, with no neighbour after it, divides back out exactly."""
    ramp = torch.sin(torch.pi / 2 * (torch.arange(overlap, device="cpu") + 0.5) / overlap)
    return torch.cat([ramp.pow(2), torch.ones(hop - overlap, device="cpu"), ramp.pow(2).flip(0)])


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


class CausalSTFTAnalysis(nn.Module):
    """Audio ``[B, C, T]`` -> complex spectra ``[B, C, n_fft // 2 + 1, T / hop]``, frame
    ``i`` over samples ``[(i + 1) * hop - n_fft, (i + 1) * hop)`` under
    :func:`causal_analysis_window` (zeros before the start): no frame looks ahead."""

    def __init__(self, n_fft: int, hop: int):
        super().__init__()
        if n_fft < hop:
            raise ValueError(f"n_fft must be at least the hop ({hop}), got {n_fft}")
        window = causal_analysis_window(n_fft, hop)
        self.n_fft, self.hop = n_fft, hop
        self.scale = float(window.pow(2).sum().sqrt())
        self.register_buffer("window", window, persistent=False)

    def transform(self, signal: torch.Tensor) -> torch.Tensor:
        """``[N, L]`` samples, the look-back included -> spectra ``[N, bins, frames]`` of
        every whole frame in them."""
        return torch.stft(signal.float(), self.n_fft, self.hop, window=self.window,
                          center=False, return_complex=True) / self.scale

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        batch, channels, length = audio.shape
        flat = nn.functional.pad(audio.reshape(batch * channels, length),
                                 (self.n_fft - self.hop, 0))
        spectra = self.transform(flat)
        return spectra.reshape(batch, channels, *spectra.shape[-2:])


class CrossfadeSynthesis(nn.Module):
    """Real and imaginary parts ``[B, C, 2, bins, F]`` (``bins = (hop + overlap) // 2 +
    1``) -> audio ``[B, C, F * hop]``: frame ``i``'s inverse transform covers samples
    ``[i * hop - overlap, (i + 1) * hop)`` under :func:`crossfade_window`; frames are
    overlap-added and divided by the windows' sum (1 but where the signal ends).

    Frame by frame (:meth:`frames`, :meth:`overlap_add`), a hop's last ``overlap``
    samples wait for the next frame: ``codec.coding.streaming`` keeps them.
    """

    def __init__(self, hop: int, overlap: int):
        super().__init__()
        problem = overlap_problem(overlap, hop)
        if problem:
            raise ValueError(problem)
        self.hop, self.overlap, self.size = hop, overlap, hop + overlap
        self.scale = float(crossfade_window(hop, overlap).pow(2).sum().sqrt())
        self.register_buffer("window", crossfade_window(hop, overlap), persistent=False)

    def frames(self, parts: torch.Tensor) -> torch.Tensor:
        """``[B, C, 2, bins, F]`` -> windowed frames ``[B * C, size, F]``."""
        batch, channels, _, bins, count = parts.shape
        spectra = torch.complex(parts[:, :, 0].float(), parts[:, :, 1].float()) * self.scale
        return torch.fft.irfft(spectra.reshape(batch * channels, bins, count), n=self.size,
                               dim=1) * self.window[:, None]

    def overlap_add(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Windowed frames ``[N, size, F]`` -> (their overlap-added sum, the windows'
        sum), both over the ``F * hop + overlap`` samples from the first frame's start."""
        count = frames.shape[-1]
        weights = self.window[None, :, None].expand(1, -1, count)
        return self._fold(frames), self._fold(weights)

    def _fold(self, frames: torch.Tensor) -> torch.Tensor:
        """``[N, size, F]`` -> their overlap-added sum ``[N, (F - 1) * hop + size]``."""
        length = (frames.shape[-1] - 1) * self.hop + self.size
        return nn.functional.fold(frames, output_size=(1, length), kernel_size=(1, self.size),
                                  stride=(1, self.hop)).flatten(1)

    def forward(self, parts: torch.Tensor) -> torch.Tensor:
        batch, channels = parts.shape[:2]
        summed, weights = self.overlap_add(self.frames(parts))
        audio = summed[:, self.overlap:] / weights[:, self.overlap:]
        return audio.reshape(batch, channels, -1).to(parts.dtype)


def _level_stage(hop: int, overlap: int, level_overlap: int, sample_rate: int,
                 bands: int) -> LevelStage | None:
    """A causal model's level stage after its decoder's crossfade (``overlap``), or None
    when the model has none."""
    if not level_overlap:
        return None
    return LevelStage(hop=hop, overlap=level_overlap, delay=overlap, sample_rate=sample_rate,
                      bands=bands)


def _frame_stack(width: int, dilations: Sequence[int], kernel_size: int, activation: str,
                 weight_norm: bool, causal: bool) -> list[nn.Module]:
    return [ResidualUnit(width, kernel_size, d, activation, causal=causal,
                         weight_norm=weight_norm) for d in dilations]


class SpectralEncoder(nn.Module):
    """Audio ``[B, C, T]`` -> latents ``[B, latent_dim, T / hop]``, and with ``level_bands``
    each frame's level vector after them (codec/network/frame_levels.py)."""

    def __init__(self, *, channels: int, hop: int, n_fft: int, width: int, latent_dim: int,
                 dilations: Sequence[int], kernel_size: int, residual_kernel_size: int,
                 activation: str, weight_norm: bool, causal: bool = False, overlap: int = 0,
                 sample_rate: int = 24000, level_bands: int = 0, stereo_layout: str = "lr",
                 level_overlap: int = 0):
        super().__init__()
        self.sample_rate, self.level_bands = sample_rate, level_bands
        self.stereo_layout = stereo_layout
        self.analysis = CausalSTFTAnalysis(n_fft, hop) if causal else STFTAnalysis(n_fft, hop)
        # With a level stage, the levels are measured on its frames of the input.
        self.level_frames = _level_stage(hop, overlap, level_overlap, sample_rate, level_bands)
        features = channels * 2 * (n_fft // 2 + 1)
        self.layers = nn.Sequential(
            Conv1d(features, width, kernel_size, causal=causal, weight_norm=weight_norm),
            *_frame_stack(width, dilations, residual_kernel_size, activation, weight_norm,
                          causal),
            make_activation(activation, width),
            Conv1d(width, latent_dim, kernel_size, causal=causal, weight_norm=weight_norm))

    @staticmethod
    def features(spectra: torch.Tensor) -> torch.Tensor:
        """Spectra ``[B, C, bins, F]`` -> power-compressed real and imaginary parts
        ``[B, C * 2 * bins, F]``, each frame on its own."""
        compressed = spectra * (spectra.abs() + COMPRESSION_FLOOR).pow(COMPRESSION - 1)
        parts = torch.stack((compressed.real, compressed.imag), dim=2)  # [B, C, 2, bins, F]
        return parts.flatten(1, 3)

    def from_spectra(self, spectra: torch.Tensor, dtype: torch.dtype, layers=None,
                     levels: torch.Tensor | None = None) -> torch.Tensor:
        """Spectra ``[B, C, bins, F]`` -> the encoder's output in ``dtype``; ``layers``
        stands in for the frame-rate layers (a streaming step), ``levels`` for the frame
        levels measured on the spectra (a level stage's). A mid/side model maps the
        spectra to mid and side first, so its features and frame levels are of those
        (codec/network/stereo.py)."""
        layers = layers or self.layers
        spectra = stereo.to_coded(spectra, self.stereo_layout)
        latents = layers(self.features(spectra).to(dtype))
        if not self.level_bands:
            return latents
        if levels is None:
            levels = frame_levels.levels_of(spectra, self.sample_rate, self.level_bands)
        return torch.cat([latents, levels.to(latents.dtype)], dim=1)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        levels = None if self.level_frames is None else self.level_frames.input_levels(audio)
        return self.from_spectra(self.analysis(audio), audio.dtype, levels=levels)


class SpectralDecoder(nn.Module):
    """Latents ``[B, latent_dim, F]`` (with ``level_bands``, the level vectors after them)
    -> audio ``[B, C, F * hop]``, unbounded."""

    def __init__(self, *, channels: int, hop: int, n_fft: int, width: int, latent_dim: int,
                 dilations: Sequence[int], kernel_size: int, residual_kernel_size: int,
                 activation: str, weight_norm: bool, causal: bool = False, overlap: int = 0,
                 sample_rate: int = 24000, level_bands: int = 0, stereo_layout: str = "lr",
                 level_dropout: float = 0.0, level_overlap: int = 0):
        super().__init__()
        self.latent_dim, self.sample_rate, self.level_bands = latent_dim, sample_rate, \
            level_bands
        self.level_dropout = level_dropout
        self.stereo_layout = stereo_layout
        size = hop + overlap if causal else n_fft
        self.channels, self.bins = channels, size // 2 + 1
        self.layers = nn.Sequential(
            Conv1d(latent_dim, width, kernel_size, causal=causal, weight_norm=weight_norm),
            *_frame_stack(width, dilations, residual_kernel_size, activation, weight_norm,
                          causal),
            make_activation(activation, width),
            # Plain conv last: linear real and imaginary parts (see module docstring).
            Conv1d(width, channels * 2 * self.bins, kernel_size, causal=causal,
                   weight_norm=weight_norm))
        self.synthesis = (CrossfadeSynthesis(hop, overlap) if causal
                          else ISTFTSynthesis(n_fft, hop))
        # With a level stage, the decoded audio is brought to the levels, not the parts.
        self.level_stage = _level_stage(hop, overlap, level_overlap, sample_rate, level_bands)
        # A causal decoder's parts are raw frames that the crossfade window weighs: their
        # frame levels are measured as the frames will sound. (The non-causal parts are
        # already windowed, like the analysis's: measured as they are.)
        heard = (frame_levels.heard_operator(crossfade_window(hop, overlap))
                 if level_bands and causal and self.level_stage is None else None)
        self.register_buffer("heard", heard, persistent=False)

    def parts(self, latents: torch.Tensor, layers=None) -> torch.Tensor:
        """Latents -> real and imaginary parts ``[B, C, 2, bins, F]``, brought to the frame
        levels when the model sends them and has no level stage (in training, all but a
        ``level_dropout`` share of the items), then from a mid/side model's layout back to
        left/right (codec/network/stereo.py); ``layers`` stands in for the frame-rate
        layers (a streaming step)."""
        layers = layers or self.layers
        out = layers(latents[:, :self.latent_dim])
        parts = out.reshape(out.shape[0], self.channels, 2, self.bins, out.shape[-1])
        if self.level_bands and self.level_stage is None:
            levelled = frame_levels.bring_to(parts, latents[:, self.latent_dim:],
                                             self.sample_rate, self.heard)
            parts = self._drop_levels(parts, levelled) if self.training else levelled
        return stereo.from_coded(parts, self.stereo_layout)

    def _drop_levels(self, own: torch.Tensor, levelled: torch.Tensor) -> torch.Tensor:
        """``levelled`` with a ``level_dropout`` share of its items (drawn afresh) taken
        from ``own``: those are paid for every band's level, not only what lies within."""
        if not self.level_dropout:
            return levelled
        dropped = torch.rand(own.shape[0], device=own.device) < self.level_dropout
        return torch.where(dropped.view(-1, *[1] * (own.dim() - 1)), own, levelled)

    def first_bin_above(self, hz: float) -> int:
        """The first of the decoder's bins whose frequency is ``hz`` or more."""
        return min(self.bins, math.ceil(hz * 2 * (self.bins - 1) / self.sample_rate))

    def with_phase_path(self, latents: torch.Tensor,
                        phase_only_above_hz: float) -> tuple[torch.Tensor, torch.Tensor]:
        """The decoded audio twice, equal in value: as :meth:`forward` gives it, and
        through a path on which the parts' magnitudes from ``phase_only_above_hz`` up
        carry no gradient (:func:`magnitudes_held`). Training scores the waveform terms
        on the second, so that above that frequency they steer only the phase."""
        if self.level_stage is not None:
            raise ValueError("a phase-only path is not built for a decoder with a level "
                             "stage (model.level_overlap): its level dropout would draw "
                             "twice")
        parts = self.parts(latents)
        held = magnitudes_held(parts, self.first_bin_above(phase_only_above_hz))
        return self.synthesis(parts), self.synthesis(held)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        audio = self.synthesis(self.parts(latents))
        if self.level_stage is None:
            return audio
        levelled = self.level_stage(audio, latents[:, self.latent_dim:])
        return self._drop_levels(audio, levelled) if self.training else levelled


def magnitudes_held(parts: torch.Tensor, first_bin: int) -> torch.Tensor:
    """``parts`` ``[..., 2, bins, F]`` (real and imaginary) unchanged in value, with the
    gradient through each bin's magnitude removed from ``first_bin`` up: a loss of the
    result moves those bins' phases only.

    Why: a waveform term counts a band at the right level and the wrong phase as twice
    its energy in error, and leaving it out as once; so wherever the codes cannot carry
    the phase it pays the decoder to give nothing, and the decoded speech is a low-pass.
    Through this path the waveform terms still align what phase they can, while the
    magnitudes learn from the spectral terms alone."""
    if first_bin >= parts.shape[-2]:
        return parts
    upper = parts[..., first_bin:, :]
    # Floored before the root: the root's slope at an all-zero bin is infinite, and
    # a floor after it would multiply that by zero (NaN).
    magnitude = upper.pow(2).sum(dim=-3, keepdim=True).clamp_min(MAGNITUDE_FLOOR ** 2).sqrt()
    # magnitude.detach() / magnitude is 1 in value; its gradient removes, from each
    # bin's, the part along the bin's own direction (the radial part: its magnitude).
    held = upper * (magnitude.detach() / magnitude)
    return torch.cat([parts[..., :first_bin, :], held], dim=-2)
