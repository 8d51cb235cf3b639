"""Resampling with bounded cost for any pair of rates, whole or streamed.

torchaudio's polyphase filter turns each run of ``in_step = orig/g`` input samples into
``out_step = new/g`` output samples (g = gcd) and holds ``out_step`` filters of about
``in_step`` taps each: its memory grows with the product of the reduced rates. For the
usual rates that product is small (44.1 kHz -> 24 kHz is 147 -> 80), but rates that
share little with each other blow it up: 11,999 Hz -> 24 kHz is 11999 -> 24000, a
288-million-tap filter and 9.6 GB. :func:`rate_ratio` keeps the exact ratio while
``in_step * out_step <= MAX_FILTER_TAPS`` (every common rate pair, so their output is
torchaudio's, bit for bit) and otherwise resamples at the closest ratio within that
bound, a relative rate error of about 1e-4 at most (11,999 Hz is taken as 12,000 Hz),
far below what anyone hears. The output length is always that of the exact ratio,
``ceil(n * new / orig)``: the last few samples are cut, or zeros added.
"""
from __future__ import annotations

import math
from fractions import Fraction

import torch
import torchaudio.functional as AF
from torchaudio.transforms import Resample

# The largest in_step * out_step resampled exactly: a filter of about 4 MB.
MAX_FILTER_TAPS = 1 << 20


def rate_ratio(orig_rate: int, new_rate: int) -> tuple[int, int]:
    """(in_step, out_step): each ``in_step`` input samples become ``out_step`` outputs.
    The exact reduced ratio when its filter fits ``MAX_FILTER_TAPS``, else the closest
    fraction that fits (see the module's docstring)."""
    if orig_rate < 1 or new_rate < 1:
        raise ValueError(f"sample rates must be positive, got {orig_rate} and {new_rate}")
    g = math.gcd(orig_rate, new_rate)
    in_step, out_step = orig_rate // g, new_rate // g
    if in_step * out_step <= MAX_FILTER_TAPS:
        return in_step, out_step
    low, high = sorted((orig_rate, new_rate))
    ratio = Fraction(low, high)  # <= 1; a fraction a/b of it costs about ratio * b**2
    bound = math.isqrt(int(MAX_FILTER_TAPS / ratio))
    while True:
        near = ratio.limit_denominator(bound)
        if near.numerator * near.denominator <= MAX_FILTER_TAPS and near > 0:
            break
        bound = bound * 9 // 10
    a, b = near.numerator, near.denominator
    return (b, a) if orig_rate > new_rate else (a, b)


def resampled_length(length: int, orig_rate: int, new_rate: int) -> int:
    """Samples that resampling ``length`` samples yields (torchaudio rounds up)."""
    return -(-length * new_rate // orig_rate)


def _fit_length(audio: torch.Tensor, length: int) -> torch.Tensor:
    """``audio [C, n]`` cut or zero-padded at the end to ``length`` samples."""
    if audio.shape[-1] >= length:
        return audio[..., :length]
    return torch.nn.functional.pad(audio, (0, length - audio.shape[-1]))


def resample(audio: torch.Tensor, orig_rate: int, new_rate: int) -> torch.Tensor:
    """``audio [..., T]`` from ``orig_rate`` to ``new_rate``: ``ceil(T * new / orig)``
    samples, through :func:`rate_ratio`."""
    if orig_rate == new_rate:
        return audio
    in_step, out_step = rate_ratio(orig_rate, new_rate)
    out = AF.resample(audio, in_step, out_step)
    if (in_step, out_step) == _reduced(orig_rate, new_rate):
        return out
    return _fit_length(out, resampled_length(audio.shape[-1], orig_rate, new_rate))


def _reduced(orig_rate: int, new_rate: int) -> tuple[int, int]:
    g = math.gcd(orig_rate, new_rate)
    return orig_rate // g, new_rate // g


class StreamResampler:
    """Resample a signal fed in blocks ``[C, n]``; the concatenated output equals
    :func:`resample` of the whole signal (up to float rounding).

    The polyphase filter turns each run of ``in_step`` input samples into ``out_step``
    output samples and reads at most ``width + in_step`` samples beyond the run.
    Cutting the stream at multiples of ``in_step`` and giving each piece that much real
    context on both sides reproduces the whole-signal result. When ``length`` is given
    (the output length wanted, known to the caller), nothing beyond it is returned and
    ``flush`` pads with zeros up to it.
    """

    def __init__(self, orig_rate: int, new_rate: int, length: int | None = None):
        self.orig_rate, self.new_rate = orig_rate, new_rate
        self.in_step, self.out_step = rate_ratio(orig_rate, new_rate)
        # torchaudio's filter half-width for lowpass_filter_width=6, rolloff=0.99.
        width = math.ceil(6 * self.in_step / (0.99 * min(self.in_step, self.out_step)))
        self.context = self.in_step * (math.ceil((width + self.in_step) / self.in_step) + 1)
        self.identity = orig_rate == new_rate
        # The transform computes its filter once, not once a block.
        self.resample = None if self.identity else Resample(self.in_step, self.out_step)
        self.length = length
        self.returned = 0  # output samples returned so far
        self.buffer: torch.Tensor | None = None
        self.buffer_start = 0  # input index of buffer[:, 0]
        self.done = 0  # input samples whose output has been returned

    def push(self, block: torch.Tensor) -> torch.Tensor:
        if self.identity:
            return self._limit(block)
        self.buffer = block if self.buffer is None else torch.cat([self.buffer, block], dim=-1)
        end = self.buffer_start + self.buffer.shape[-1]
        ready = (end - self.context) // self.in_step * self.in_step
        if ready <= self.done:
            return block[:, :0]
        return self._limit(self._emit(ready, ready + self.context))

    def flush(self) -> torch.Tensor:
        """The output of the rest; call once, after the last push."""
        if self.identity or self.buffer is None:
            rest = torch.zeros(0 if self.buffer is None else self.buffer.shape[0], 0)
        else:
            rest = self._emit(None, self.buffer_start + self.buffer.shape[-1])
        if self.length is not None and self.returned + rest.shape[-1] < self.length:
            rest = _fit_length(rest, self.length - self.returned)
        return self._limit(rest)

    def _limit(self, out: torch.Tensor) -> torch.Tensor:
        """``out`` cut so that no more than ``length`` samples are returned in all."""
        if self.length is not None:
            out = out[:, :max(self.length - self.returned, 0)]
        self.returned += out.shape[-1]
        return out

    def _emit(self, stop: int | None, segment_end: int) -> torch.Tensor:
        segment_start = max(0, self.done - self.context)
        segment = self.buffer[:, segment_start - self.buffer_start:segment_end - self.buffer_start]
        out = self.resample(segment)
        offset = (self.done - segment_start) // self.in_step * self.out_step
        if stop is None:
            out = out[:, offset:]
        else:
            out = out[:, offset:offset + (stop - self.done) // self.in_step * self.out_step]
            self.done = stop
            keep_from = max(self.buffer_start, self.done - self.context)
            self.buffer = self.buffer[:, keep_from - self.buffer_start:]
            self.buffer_start = keep_from
        return out
