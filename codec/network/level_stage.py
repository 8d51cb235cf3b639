"""The level stage: a causal spectral model's decoded audio brought to its frame levels
by a short transform of its own, after the decoder's crossfade.

Why: a decoder's frames are not what is heard. A decoder trained on waveform terms puts
much of what it cannot predict at its frames' crossfaded edges, where the neighbours'
edges cancel it, so levels met on the frames (codec/network/frame_levels.py) still leave
the audio short. Measured on the decoded audio itself, with the same window on the
input, a level is met where it sounds (docs/notebook/live.md has the measurements).

The stage's frame ``i`` covers the ``hop + overlap`` samples that end ``delay`` samples
before frame ``i``'s hop ends (``delay`` the decoder's crossfade: those samples are the
last the decoder has made final once it has frame ``i``). Its window rises over
``overlap`` samples (sin), is flat, and falls over the last ``overlap`` (cos); applied
at analysis and at synthesis, neighbours a hop apart add up to 1. The encoder measures
the input's levels on the same frames, so nothing waits for later input; the decoded
audio waits ``overlap`` samples more, for the next frame's rise. The last ``delay``
samples of a signal lie in no frame and pass as decoded.

Shapes: audio ``[B, C, T]`` with ``T = F * hop``; level vectors ``[B, C * bands, F]`` in
the frame levels' units.
"""
from __future__ import annotations

import torch
from torch import nn

from codec.network import frame_levels


def stage_window(hop: int, overlap: int) -> torch.Tensor:
    """``hop + overlap`` samples: sin ramp up over ``overlap``, flat, cos ramp down."""
    ramp = torch.sin(torch.pi / 2 * (torch.arange(overlap, device="cpu") + 0.5) / overlap)
    return torch.cat([ramp, torch.ones(hop - overlap, device="cpu"), ramp.flip(0)])


class LevelStage(nn.Module):
    """Measures level vectors on its frames (:meth:`input_levels`) and brings decoded
    audio to them (``forward``); the module docstring has the geometry."""

    def __init__(self, *, hop: int, overlap: int, delay: int, sample_rate: int, bands: int):
        super().__init__()
        if not 1 <= overlap <= hop or not 0 <= delay < hop:
            raise ValueError(f"the level stage's overlap must be 1 to the hop ({hop}) samples "
                             f"and its delay under the hop; got {overlap} and {delay}")
        self.hop, self.overlap, self.delay = hop, overlap, delay
        self.size, self.sample_rate, self.bands = hop + overlap, sample_rate, bands
        window = stage_window(hop, overlap)
        self.scale = float(window.pow(2).sum().sqrt())
        self.register_buffer("window", window, persistent=False)

    @property
    def lead(self) -> int:
        """Samples before a signal's start in its first frame."""
        return self.delay + self.overlap

    def spectra(self, signal: torch.Tensor, frames: int) -> torch.Tensor:
        """``[N, L]`` samples from a frame's start -> spectra ``[N, bins, frames]`` of the
        first ``frames`` frames in them."""
        cut = signal[:, :(frames - 1) * self.hop + self.size]
        windowed = cut.float().unfold(-1, self.size, self.hop) * self.window
        return torch.fft.rfft(windowed, dim=-1).transpose(1, 2) / self.scale

    def _padded(self, audio: torch.Tensor) -> torch.Tensor:
        flat = audio.reshape(-1, audio.shape[-1])
        return nn.functional.pad(flat, (self.lead, 0))

    def input_levels(self, audio: torch.Tensor) -> torch.Tensor:
        """Audio ``[B, C, F * hop]`` -> its level vectors ``[B, C * bands, F]``."""
        return self.levels_of(self.spectra(self._padded(audio), audio.shape[-1] // self.hop),
                              audio.shape[0])

    def levels_of(self, spectra: torch.Tensor, batch: int) -> torch.Tensor:
        """Spectra ``[B * C, bins, F]`` -> level vectors ``[B, C * bands, F]``."""
        spectra = spectra.reshape(batch, -1, *spectra.shape[-2:])
        return frame_levels.levels_of(spectra, self.sample_rate, self.bands)

    def brought_frames(self, spectra: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
        """Decoded spectra ``[B * C, bins, F]`` and level vectors ``[B, C * bands, F]`` ->
        the frames brought to them, windowed for the overlap-add, ``[B * C, size, F]``."""
        power = spectra.abs().pow(2).reshape(levels.shape[0], -1, *spectra.shape[-2:])
        gains = frame_levels.bin_gains(power, levels, self.sample_rate)
        brought = spectra * gains.flatten(0, 1)
        return torch.fft.irfft(brought * self.scale, n=self.size, dim=1) * self.window[:, None]

    def overlap_add(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Windowed frames ``[N, size, F]`` -> (their overlap-added sum, the squared
        windows' sum), both over the ``(F - 1) * hop + size`` samples they cover."""
        count = frames.shape[-1]
        weights = self.window.pow(2)[None, :, None].expand(1, -1, count)
        return self._fold(frames), self._fold(weights)

    def _fold(self, frames: torch.Tensor) -> torch.Tensor:
        length = (frames.shape[-1] - 1) * self.hop + self.size
        return nn.functional.fold(frames, output_size=(1, length), kernel_size=(1, self.size),
                                  stride=(1, self.hop)).flatten(1)

    def forward(self, audio: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
        """Decoded audio ``[B, C, F * hop]`` brought to ``levels``, differentiably."""
        count = audio.shape[-1] // self.hop
        padded = self._padded(audio)
        summed, weights = self.overlap_add(self.brought_frames(self.spectra(padded, count),
                                                               levels))
        covered = summed.shape[-1] - self.lead  # all but the last `delay` samples
        brought = summed[:, self.lead:] / weights[:, self.lead:]
        flat = padded[:, self.lead:]
        out = torch.cat([brought, flat[:, covered:].float()], dim=-1)
        return out.reshape(audio.shape).to(audio.dtype)
