"""The post-filter for a causal model: spectral expansion by filters that look back only.

The offline post-filter (codec/coding/postfilter.py) reads 85 ms frames centred on each
sample and keeps each band's energy over 50 ms around it: it looks ahead, which a live
decoder cannot. This one measures a long frame too (43 ms at 24 kHz), but one that
*ends* where the decoded audio so far ends, and turns what it measures into a filter
that is applied forwards in time only:

- In each frame (its power spectrum averaged with the frames' before it) every bin's
  magnitude, taken relative to the frame's root mean square, gets the offline filter's
  gain (its power above 1: the full exponent under 1 kHz, tapering above), and each of 8
  mel bands is brought back to the energy it had, measured on the frame filtered, so
  the balance between bands and the envelope over time stay as decoded.
- That gain becomes a minimum-phase filter (through the cepstrum): the same magnitudes
  with all of the impulse response after its start, so that an output sample reads no
  input after it.
- The frame's last hop of audio is filtered by the previous frame's filter and by its
  own, and crossfaded from the one to the other; the frames end where the decoder leaves
  its audio after each frame (``held_back`` samples before each multiple of the hop).

So a hop of audio is filtered as soon as the decoder has made it final: the filter adds
no latency. Filtering in the frequency domain and synthesising short windows instead
was measured first: windows short enough for no added wait cut the long filters' tails
unevenly from sample to sample, and that modulation filled the valleys it was meant to
deepen.

Audio after the last whole frame is filtered by the last frame's filter, so that
:class:`LivePostFilterStep` fed any blocks gives what :meth:`LivePostFilter.apply` gives
on the whole signal.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from codec.coding import postfilter
from codec.network.model import Codec

# The analysis frame, rounded to a power of two (1024 samples at 24 kHz: bins 23 Hz
# apart, fine enough for a voice's harmonics). Frames of 85 ms, the offline filter's,
# scored the same on validation speech and cost half again as much per frame.
ANALYSIS_SECONDS = 0.04
# A gain's range is limited before it becomes a filter: the deepest valley is taken down
# by at most this much against the band's level, so that the filter stays short enough
# for its frame (a minimum-phase filter of a very deep notch rings for long).
DEPTH_DB = 30.0
# Each frame's power spectrum is averaged with those of the frames before it, this many
# in all (67 ms at 75 frames a second): filters that change little from frame to frame.
# Crossfading between two filters that differ where the decoded noise differs from frame
# to frame modulates the audio at the frame rate, and the modulation fills the valleys.
AVERAGE_FRAMES = 5


class LivePostFilter:
    """Spectral expansion by ``exponent`` (1: none) through minimum-phase filters
    measured on frames ``hop`` apart that end ``held_back`` samples before each multiple
    of the hop; the module docstring has the design."""

    def __init__(self, sample_rate: int, hop: int, exponent: float, held_back: int = 0,
                 analysis: int | None = None, average_frames: int = AVERAGE_FRAMES):
        self.sample_rate, self.hop, self.exponent = sample_rate, hop, exponent
        self.average_frames = average_frames
        # Where a decoder that holds back that many samples (its crossfades) leaves its
        # audio after each frame, so that a frame is filtered as soon as it is decoded.
        self.held_back = held_back
        self.size = analysis or 2 ** round(math.log2(ANALYSIS_SECONDS * sample_rate))
        if self.size < 2 * hop or not 0 <= held_back < hop or average_frames < 1:
            raise ValueError(f"a live post-filter needs a frame of at least two hops "
                             f"({2 * hop}), under a hop ({hop}) held back and at least "
                             f"one frame averaged; got frame {self.size}, {held_back} held "
                             f"back, {average_frames} averaged")
        fall = hop // 4
        rise = self.size - fall
        self.analysis_window = torch.cat([
            torch.sin(torch.pi / 2 * (torch.arange(rise) + 0.5) / rise).pow(2),
            torch.cos(torch.pi / 2 * (torch.arange(fall) + 0.5) / fall).pow(2)])
        # Filtering a hop needs the filter's length of audio before it: one FFT size
        # holds both without the circular wrap reaching the hop's samples.
        self.segment = self.size + hop - 1
        self.fft_size = 1 << (self.segment - 1).bit_length()
        self.fade = (torch.arange(hop) + 0.5) / hop
        self.powers = postfilter.powers(sample_rate, self.size, exponent)[:, 0] - 1.0
        self.members = postfilter.band_members(sample_rate, self.size)
        # The cepstrum folded onto its causal half: quefrency 0 and size / 2 once, those
        # between twice, the rest none.
        half = self.size // 2
        self.fold = torch.cat([torch.ones(1), torch.full((half - 1,), 2.0), torch.ones(1),
                               torch.zeros(half - 1)])

    @property
    def active(self) -> bool:
        return self.exponent != 1.0

    @property
    def padding(self) -> int:
        """Zeros before a signal: its first frame ends ``hop - held_back`` samples in, and
        the filter of the hop before it reads ``size - 1`` samples further back."""
        return self.segment - self.hop + self.held_back

    def _to(self, device: torch.device) -> None:
        """Its windows and tables on ``device`` (the audio's)."""
        if self.fade.device != device:
            for name in ("analysis_window", "fade", "powers", "members", "fold"):
                setattr(self, name, getattr(self, name).to(device))

    def powers_of(self, frames: torch.Tensor) -> torch.Tensor:
        """Analysis frames ``[..., size]`` -> their power spectra ``[..., bins]``."""
        spectra = torch.fft.rfft(frames * self.analysis_window, dim=-1)
        return spectra.real.pow(2) + spectra.imag.pow(2)

    def averaged(self, values: torch.Tensor,
                 earlier: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames' values ``[N, F, X]``, each averaged with up to ``average_frames - 1``
        before it (``earlier`` ``[N, E, X]``: the last ones before these; None at the
        start) -> (the averages, the values the next frames average with)."""
        frames = self.average_frames
        known = values if earlier is None else torch.cat([earlier, values], dim=1)
        before = known.shape[1] - values.shape[1]
        padded = F.pad(known, (0, 0, frames - 1 - before, 0))
        sums = padded.unfold(1, frames, 1).sum(-1)
        counts = (torch.arange(values.shape[1], device=values.device) + 1 + before).clamp(
            max=frames)
        return sums / counts[:, None], known[:, max(0, known.shape[1] - (frames - 1)):]

    def expansion(self, power: torch.Tensor) -> torch.Tensor:
        """Power spectra ``[..., bins]`` -> the expansion's log gains, each band's
        power-weighted mean gain 1."""
        floor = postfilter.MAGNITUDE_FLOOR ** 2
        relative = power.clamp(min=floor) / power.mean(dim=-1, keepdim=True).clamp(min=floor)
        log_gain = 0.5 * self.powers * relative.log()  # power ratios: half the exponent
        weights = power + torch.finfo(power.dtype).tiny
        mean_gain = ((weights * (2 * log_gain).exp()) @ self.members) / (weights @ self.members)
        log_gain = log_gain - 0.5 * (mean_gain.log() @ self.members.T)
        return log_gain.clamp(min=-DEPTH_DB / 20 * math.log(10.0))

    def filters(self, audio: torch.Tensor, power: torch.Tensor, averaged: torch.Tensor,
                earlier: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Segments' spectra ``[N, F, fft bins]``, their frames' power spectra and their
        averages ``[N, F, bins]`` -> (the filters' spectra ``[N, F, fft bins]``, the
        level corrections the next frames average with), each band's level correction
        averaged as the power is, with ``earlier``.

        A tone's gain is the filter's at its frequency, more than the power-weighted
        mean over the bins its window spreads it on: so each band's gain is measured
        again on the frame's audio through the filter, and set right."""
        log_gain = self.expansion(averaged)
        trial = torch.fft.irfft(audio * self._minimum_phase(log_gain), n=self.fft_size,
                                dim=-1)[..., self.segment - self.size:self.segment]
        tiny = torch.finfo(power.dtype).tiny
        ratio = (power @ self.members + tiny) / (self.powers_of(trial) @ self.members + tiny)
        correction, kept = self.averaged(0.5 * ratio.log(), earlier)
        return self._minimum_phase(log_gain + correction @ self.members.T), kept

    def _minimum_phase(self, log_gain: torch.Tensor) -> torch.Tensor:
        """Log magnitudes ``[..., size // 2 + 1]`` -> the spectrum, ``fft_size`` points,
        of the causal filter with those magnitudes whose energy comes first."""
        folded = torch.fft.irfft(log_gain, n=self.size, dim=-1) * self.fold
        response = torch.fft.irfft(torch.fft.rfft(folded, dim=-1).exp(), n=self.size, dim=-1)
        return torch.fft.rfft(response, n=self.fft_size, dim=-1)

    def filtered_hops(self, rows: torch.Tensor, count: int, state: tuple | None
                      ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """``[N, L]`` samples from ``padding`` before the first hop's start -> (the first
        ``count`` hops filtered, ``[N, count * hop]``; the state after them: the last
        frame's filter, and the powers and level corrections the next frames average
        with). ``state`` is the state before the first hop
        (None: the stream's start, where the audio passes as it is)."""
        self._to(rows.device)
        segments = rows[:, :(count - 1) * self.hop + self.segment].unfold(
            -1, self.segment, self.hop)  # [N, count, segment]: a hop and what it reads
        earlier_filter, earlier_power, earlier_correction = (None,) * 3 if state is None else state
        power = self.powers_of(segments[..., -self.size:])
        averaged, kept_power = self.averaged(power, earlier_power)
        audio = torch.fft.rfft(segments, n=self.fft_size, dim=-1)
        spectra, kept_correction = self.filters(audio, power, averaged, earlier_correction)
        before = (torch.ones_like(spectra[:, :1]) if earlier_filter is None
                  else earlier_filter[:, None])
        earlier = torch.cat([before, spectra[:, :-1]], dim=1)
        new = torch.fft.irfft(audio * spectra, n=self.fft_size, dim=-1)
        old = torch.fft.irfft(audio * earlier, n=self.fft_size, dim=-1)
        hops = slice(self.segment - self.hop, self.segment)
        out = old[..., hops] + self.fade * (new[..., hops] - old[..., hops])
        return out.flatten(1), (spectra[:, -1], kept_power, kept_correction)

    def filtered_tail(self, rows: torch.Tensor, spectrum: torch.Tensor) -> torch.Tensor:
        """The last ``n < hop`` of ``rows`` ``[N, size - 1 + n]`` through one filter."""
        n = rows.shape[-1] - (self.size - 1)
        out = torch.fft.irfft(torch.fft.rfft(rows, n=self.fft_size, dim=-1) * spectrum,
                              n=self.fft_size, dim=-1)
        return out[..., rows.shape[-1] - n:rows.shape[-1]]

    def apply(self, audio: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """``audio`` ``[..., T]`` filtered whole (itself when the filter is off).

        ``offset`` is where ``audio`` starts in a longer signal: frames fall on that
        signal's hop grid, as chunked decoding needs (its pieces start on frame
        boundaries, so with the model's hop this is no shift)."""
        if not self.active:
            return audio
        shift = offset % self.hop
        rows = F.pad(audio.reshape(-1, audio.shape[-1]).float(), (shift + self.padding, 0))
        count = (rows.shape[-1] - self.segment) // self.hop + 1
        if count < 1:  # shorter than the first frame: nothing is filtered
            return audio
        first = self.padding - self.segment + self.hop  # = held_back: before the signal
        hops, (last, _, _) = self.filtered_hops(rows, count, None)
        tail = rows[:, (count - 1) * self.hop + self.segment - (self.size - 1):]
        out = torch.cat([hops, self.filtered_tail(tail, last)], dim=-1)[:, first + shift:]
        return out.reshape(audio.shape).to(audio.dtype)


class LivePostFilterStep:
    """A :class:`LivePostFilter` fed decoded audio ``[B, C, n]`` in blocks of any size:
    each hop filtered once its frame ends. It keeps the samples its next frames read and
    its last frame's filter. :meth:`flush` ends the stream."""

    def __init__(self, live: LivePostFilter):
        self.live = live
        self.pending: torch.Tensor | None = None  # from the next hop's segment start
        self.state: tuple | None = None  # the last frame's filter, power and correction
        self.emitted = 0  # samples given so far, before the signal's start included
        self.shape: tuple[int, int] | None = None

    def __call__(self, audio: torch.Tensor) -> torch.Tensor:
        if not self.live.active:
            return audio
        live = self.live
        self.shape = audio.shape[:2]
        rows = audio.flatten(0, 1).float()
        if self.pending is None:  # the zeros offline filtering pads the start with
            self.pending = rows.new_zeros(rows.shape[0], live.padding)
        rows = torch.cat([self.pending, rows], dim=-1)
        count = max(0, (rows.shape[-1] - live.segment) // live.hop + 1)
        if count == 0:
            self.pending = rows
            return audio.new_zeros(*self.shape, 0, dtype=torch.float32)
        hops, self.state = live.filtered_hops(rows, count, self.state)
        self.pending = rows[:, count * live.hop:]
        skip = max(0, live.held_back - self.emitted)  # the first frame starts before it
        self.emitted += hops.shape[-1]
        return hops[:, skip:].reshape(*self.shape, -1)

    def flush(self, tail: torch.Tensor | None = None) -> torch.Tensor:
        """The samples after the last whole frame (``tail``, the decoder's own held-back
        samples, first pushed through) through the last frame's filter; then reset."""
        if tail is None:
            tail = torch.zeros(*(self.shape or (1, 1)), 0)
        if not self.live.active:
            return tail
        held = self(tail)
        if self.state is None:  # no whole frame: the audio passes as it is
            out = self.pending[:, self.live.padding:]
        else:  # the pending samples start the frame's reach before the tail
            out = self.live.filtered_tail(self.pending, self.state[0])
        out = out.reshape(*self.shape, -1)
        self.pending = self.state = None
        self.emitted = 0
        return torch.cat([held, out], dim=-1)


def for_model(model: Codec, exponent: float) -> LivePostFilter:
    """The live post-filter of a causal ``model``: frames at its hop, ending where its
    decoder leaves each frame's audio."""
    return LivePostFilter(model.sample_rate, model.hop_length, exponent,
                          held_back=model.latency_samples - model.hop_length)


def reach(model: Codec, exponent: float) -> int:
    """Samples each side of an output sample that the filter reads (none when off):
    before it, its hop's segment and the frames averaged into its filter (twice: the
    power and the level correction); after it, the rest of its hop."""
    if exponent == 1.0:
        return 0
    live = for_model(model, exponent)
    return live.segment + 2 * (live.average_frames - 1) * live.hop
