"""Streamed resampling whose output equals resampling the whole signal at once."""
from __future__ import annotations

import math

import torch
from torchaudio.transforms import Resample


class StreamResampler:
    """Resample a signal fed in blocks ``[C, n]``; the concatenated output equals
    ``codec.audio.resample`` of the whole signal (up to float rounding).

    torchaudio's polyphase filter turns each run of ``orig/g`` input samples into
    ``new/g`` output samples (g = gcd) and reads at most ``width + orig/g`` samples
    beyond the run. Cutting the stream at multiples of ``orig/g`` and giving each
    piece that much real context on both sides reproduces the whole-signal result.
    """

    def __init__(self, orig_rate: int, new_rate: int):
        self.orig_rate, self.new_rate = orig_rate, new_rate
        g = math.gcd(orig_rate, new_rate)
        self.in_step, self.out_step = orig_rate // g, new_rate // g
        # torchaudio's filter half-width for lowpass_filter_width=6, rolloff=0.99.
        width = math.ceil(6 * self.in_step / (0.99 * min(self.in_step, self.out_step)))
        self.context = self.in_step * (math.ceil((width + self.in_step) / self.in_step) + 1)
        self.resample = None if orig_rate == new_rate else Resample(orig_rate, new_rate)
        self.buffer: torch.Tensor | None = None
        self.buffer_start = 0  # input index of buffer[:, 0]
        self.done = 0  # input samples whose output has been returned

    def push(self, block: torch.Tensor) -> torch.Tensor:
        if self.resample is None:
            return block
        self.buffer = block if self.buffer is None else torch.cat([self.buffer, block], dim=-1)
        end = self.buffer_start + self.buffer.shape[-1]
        ready = (end - self.context) // self.in_step * self.in_step
        if ready <= self.done:
            return block[:, :0]
        return self._emit(ready, ready + self.context)

    def flush(self) -> torch.Tensor:
        """The output of the rest; call once, after the last push."""
        if self.resample is None or self.buffer is None:
            return torch.zeros(0, 0)
        return self._emit(None, self.buffer_start + self.buffer.shape[-1])

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
