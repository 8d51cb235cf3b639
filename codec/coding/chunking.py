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

from codec.coding import live_postfilter, postfilter
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


def _encoder_frames(model: Codec) -> int:
    """Frames on each side of a frame that its code depends on (the encoder's receptive
    field, summed over every conv as if in series, so it errs on the generous side)."""
    hop = model.hop_length
    span, jump = 0, 1  # in samples
    for window in filter(None, map(_window_of, model.encoder.modules())):
        kernel, stride, dilation = window
        span += (kernel - 1) * dilation * jump
        jump *= stride
    return math.ceil(span / hop)


def _decoder_span(model: Codec) -> float:
    """Frames on each side of a decoded frame that it depends on, as ``_encoder_frames``."""
    span, jump = 0.0, 1.0  # in frames
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
    return span


def context_frames(model: Codec, postfilter_exponent: float = 1.0) -> int:
    """Frames of context that cover the receptive field of encoder and decoder on each
    side, and the reach of a post-filter with ``postfilter_exponent`` (1: none)."""
    reach = (live_postfilter.reach(model, postfilter_exponent) if model.config.causal
             else postfilter.reach(model.sample_rate, postfilter_exponent))
    span = _decoder_span(model) + math.ceil(reach / model.hop_length)
    return max(_encoder_frames(model), math.ceil(span)) + 1


def network_reach(model: Codec, decoding: bool) -> int:
    """Frames of context the encoder (``decoding``: the decoder) alone needs on each side:
    an output frame further than this from either end of its input is what the whole
    signal would give, whatever lies beyond those ends."""
    return (math.ceil(_decoder_span(model)) if decoding else _encoder_frames(model)) + 1


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


def chunk_windows(frames: int, chunk_frames: int,
                  context: int) -> Iterator[tuple[int, int, int, int]]:
    """``(first, start, stop, last)`` for each chunk of a signal of ``frames`` frames:
    frames ``start..stop`` are coded from frames ``first..last``, up to ``context`` more
    on each side (the windows :class:`ChunkEncoder` encodes, and :func:`decode_chunks`
    decodes)."""
    for start in range(0, frames, chunk_frames):
        stop = min(start + chunk_frames, frames)
        yield max(0, start - context), start, stop, min(frames, stop + context)


def decoded_piece(model: Codec, decoded: torch.Tensor, item: int, window: tuple[int, ...],
                  length: int, levels: BandLevels | None = None,
                  postfilter_exponent: float = 1.0) -> torch.Tensor:
    """Item ``item``'s audio ``[1, C, n]`` for the chunk of ``window`` (from
    :func:`chunk_windows`), from the decoder's output over the whole window: through the
    post-filter, brought to ``levels``, cut to the chunk (``length`` samples in all)."""
    first, start, stop, _ = window
    hop = model.hop_length
    decoded = postfiltered(model, decoded, postfilter_exponent, first * hop)
    if levels is not None:
        decoded = levels.apply(decoded.cpu(), item, first)
    offset, keep = (start - first) * hop, min(stop * hop, length) - start * hop
    return decoded[..., offset:offset + keep].float().cpu()


def postfiltered(model: Codec, decoded: torch.Tensor, exponent: float,
                 offset: int = 0) -> torch.Tensor:
    """Decoded audio ``[..., n]`` that starts ``offset`` samples into its signal, through
    the post-filter with ``exponent``: the live one, whose frames look back only, for a
    causal model."""
    if exponent == 1.0:  # off: no filter to build for each piece
        return decoded
    if model.config.causal:
        return live_postfilter.for_model(model, exponent).apply(decoded, offset)
    return postfilter.spectral_expansion(decoded, model.sample_rate, exponent, offset)


def decode_chunks(model: Codec, codes: np.ndarray, length: int, chunk_frames: int, context: int,
                  progress: tqdm | None = None, levels: BandLevels | None = None,
                  postfilter_exponent: float = 1.0) -> Iterator[torch.Tensor]:
    """Model-rate audio ``[items, model_channels, n]`` of codes ``[items, n_q, frames]``,
    chunk by chunk, ``length`` samples in all, through the post-filter with
    ``postfilter_exponent`` (1: off) and then brought to ``levels`` if given."""
    device = _device_of(model)
    if levels is not None:
        context += levels.grid.reach_frames
    for window in chunk_windows(codes.shape[-1], chunk_frames, context):
        first, _, _, last = window
        pieces = []
        for index, item in enumerate(codes[..., first:last]):  # one at a time, as encoding
            decoded = model.decode(torch.from_numpy(item[None].astype(np.int64)).to(device))
            pieces.append(decoded_piece(model, decoded, index, window, length, levels,
                                        postfilter_exponent))
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
