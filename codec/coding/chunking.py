"""Receptive-field chunked coding: long signals coded a chunk at a time in constant memory.

Encoder and decoder are stacks of convolutions, so each output depends only on inputs
within their receptive field. A chunk coded with at least that much real audio (or
codes) on both sides has a centre that is exactly what the whole signal would give,
so chunked and unchunked coding agree up to float rounding and there is no seam to
hide. Memory is bounded by the chunk length.

Also here: the channel layout coding uses, ``[C, n]`` audio <-> ``[items,
model_channels, n]`` batch items (a mono model codes each channel as its own item).
"""
from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from codec.coding import postfilter
from codec.coding.band_levels import BandLevels
from codec.errors import CodecError
from codec.network.model import Codec
from codec.network.nn import Conv1d, ConvTranspose1d
from codec.network.spectral import (
    CausalSTFTAnalysis,
    CrossfadeSynthesis,
    ISTFTSynthesis,
    STFTAnalysis,
)

# Audio coded at a time, by default: what fits this working-memory budget. One chunk
# needs about 12 float32 tensors of the first layer's width at the model rate alive at
# once (measured: ~35 MB per second of audio for the base preset), so the default is
# ~5 s for base, ~11 s for small and ~3 s for large; 1 to 30 s in any case.
WORK_MEMORY_BYTES = 192 << 20
LIVE_TENSORS = 12


def _window_of(module: nn.Module) -> tuple[int, int, int] | None:
    """``(kernel, stride, dilation)`` of a layer that slides a window along time: a conv,
    a transposed conv, or a spectral model's transform (n_fft wide, a hop apart)."""
    if isinstance(module, (Conv1d, ConvTranspose1d)):
        conv = module.conv
        return conv.kernel_size[0], conv.stride[0], conv.dilation[0]
    if isinstance(module, (STFTAnalysis, ISTFTSynthesis, CausalSTFTAnalysis)):
        return module.n_fft, module.hop, 1
    if isinstance(module, CrossfadeSynthesis):
        return module.size, module.hop, 1
    return None


def context_frames(model: Codec, postfilter_exponent: float = 1.0) -> int:
    """Frames of context that cover the receptive field of encoder and decoder on each
    side (summed over every conv as if in series, so it errs on the generous side), and
    the reach of a post-filter with ``postfilter_exponent`` (1: none)."""
    hop = model.hop_length
    span, jump = 0, 1  # encoder, in samples
    for window in filter(None, map(_window_of, model.encoder.modules())):
        kernel, stride, dilation = window
        span += (kernel - 1) * dilation * jump
        jump *= stride
    encoder_frames = math.ceil(span / hop)
    span, jump = 0.0, 1.0  # decoder, in frames
    for module in model.decoder.modules():
        window = _window_of(module)
        if window is None:
            continue
        kernel, stride, dilation = window
        if isinstance(module, (ConvTranspose1d, ISTFTSynthesis, CrossfadeSynthesis)):
            span += math.ceil(kernel / stride) * jump
            jump /= stride
        else:
            span += (kernel - 1) * dilation * jump
    span += math.ceil(postfilter.reach(model.sample_rate, postfilter_exponent) / hop)
    return max(encoder_frames, math.ceil(span)) + 1


def default_chunk_seconds(model: Codec) -> float:
    # The widest tensor at the model rate: the first stage's, or for a spectral model
    # its windowed frames before overlap-add (n_fft / hop values per sample).
    width = (model.config.n_fft / model.hop_length if model.config.arch == "stft"
             else model.config.widths[0])
    per_second = LIVE_TENSORS * 4 * width * model.sample_rate
    return min(30.0, max(1.0, WORK_MEMORY_BYTES / per_second))


def chunk_frames_for(model: Codec, chunk_seconds: float | None) -> int:
    """Frames per chunk; ``None`` picks :func:`default_chunk_seconds`."""
    if chunk_seconds is None:
        chunk_seconds = default_chunk_seconds(model)
    if not 0 < chunk_seconds < math.inf:
        raise CodecError(f"chunk length must be a positive number of seconds, "
                         f"got {chunk_seconds}")
    return max(1, round(chunk_seconds * model.frame_rate))


def _device_of(model: Codec) -> torch.device:
    return next(model.parameters()).device


class ChunkEncoder:
    """Codes ``[items, n_q, frames]`` of a model-rate signal fed in blocks
    ``[items, model_channels, n]``, encoded ``chunk_frames`` at a time with context."""

    def __init__(self, model: Codec, n_q: int, chunk_frames: int, context: int,
                 progress: tqdm | None = None):
        self.model, self.n_q = model, n_q
        self.hop, self.chunk, self.context = model.hop_length, chunk_frames, context
        self.device = _device_of(model)
        self.progress = progress
        self.buffer: torch.Tensor | None = None
        self.buffer_start = 0  # sample index of buffer[..., 0]
        self.next_frame = 0
        self.codes: list[np.ndarray] = []

    @property
    def _end(self) -> int:
        return self.buffer_start + (0 if self.buffer is None else self.buffer.shape[-1])

    def push(self, block: torch.Tensor) -> None:
        if block.shape[-1] == 0:
            return
        self.buffer = block if self.buffer is None else torch.cat([self.buffer, block], dim=-1)
        while (self.next_frame + self.chunk + self.context) * self.hop <= self._end:
            stop = self.next_frame + self.chunk
            self._encode(stop, (stop + self.context) * self.hop)

    def finish(self) -> np.ndarray:
        total = self._end
        frames = -(-total // self.hop)
        while self.next_frame < frames:
            stop = min(self.next_frame + self.chunk, frames)
            self._encode(stop, min((stop + self.context) * self.hop, total))
        return np.concatenate(self.codes, axis=-1)

    def _encode(self, stop: int, segment_end: int) -> None:
        first = max(0, self.next_frame - self.context)
        segment = self.buffer[..., first * self.hop - self.buffer_start:
                              segment_end - self.buffer_start]
        # One item at a time: peak memory does not grow with the channel count.
        codes = torch.cat([self.model.encode(item[None].to(self.device), self.n_q)
                           for item in segment])
        kept = codes[..., self.next_frame - first:stop - first]
        self.codes.append(kept.cpu().numpy().astype(np.uint16))
        self.next_frame = stop
        keep_from = max(self.buffer_start, (stop - self.context) * self.hop)
        self.buffer = self.buffer[..., keep_from - self.buffer_start:]
        self.buffer_start = keep_from
        if self.progress is not None:
            self.progress.update(1)


def decode_chunks(model: Codec, codes: np.ndarray, length: int, chunk_frames: int, context: int,
                  progress: tqdm | None = None, levels: BandLevels | None = None,
                  postfilter_exponent: float = 1.0) -> Iterator[torch.Tensor]:
    """Model-rate audio ``[items, model_channels, n]`` of codes ``[items, n_q, frames]``,
    chunk by chunk, ``length`` samples in all, through the post-filter with
    ``postfilter_exponent`` (1: off) and then brought to ``levels`` if given."""
    hop, frames, device = model.hop_length, codes.shape[-1], _device_of(model)
    if levels is not None:
        context += levels.grid.reach_frames
    for start in range(0, frames, chunk_frames):
        stop = min(start + chunk_frames, frames)
        first, last = max(0, start - context), min(frames, stop + context)
        keep = min(stop * hop, length) - start * hop
        offset = (start - first) * hop
        pieces = []
        for index, item in enumerate(codes[..., first:last]):  # one at a time, as encoding
            window = torch.from_numpy(item[None].astype(np.int64)).to(device)
            decoded = postfilter.spectral_expansion(model.decode(window), model.sample_rate,
                                                    postfilter_exponent, first * hop)
            if levels is not None:
                decoded = levels.apply(decoded.cpu(), index, first)
            pieces.append(decoded[..., offset:offset + keep].float().cpu())
        yield torch.cat(pieces)
        if progress is not None:
            progress.update(1)


def items_from_channels(audio: torch.Tensor, model_channels: int) -> torch.Tensor:
    """``[C, n]`` -> ``[items, model_channels, n]``: a mono model codes each channel
    as a batch item; a multichannel model takes matching audio whole (mono is repeated)."""
    channels = audio.shape[0]
    if model_channels == 1:
        return audio[:, None]
    if channels == model_channels:
        return audio[None]
    if channels == 1:
        return audio.expand(model_channels, -1)[None]
    raise CodecError(f"cannot code {channels} channels with a {model_channels}-channel model")


def channels_from_items(audio: torch.Tensor, channels: int) -> torch.Tensor:
    """Inverse of :func:`items_from_channels`: ``[items, model_channels, n]`` -> ``[C, n]``."""
    if audio.shape[1] == 1:
        return audio[:, 0]
    if audio.shape[1] == channels:
        return audio[0]
    return audio[0].mean(dim=0, keepdim=True)
