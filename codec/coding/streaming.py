"""Stateful frame-by-frame coding with a causal model, equal to offline coding.

:class:`StreamingEncoder` takes audio ``[B, C, n]`` in blocks of any size and returns
the codes ``[B, n_q, f]`` of every frame completed so far; :class:`StreamingDecoder`
takes codes ``[B, n_q, f]`` and returns their audio ``[B, C, f * hop]`` at once. The
concatenated results equal ``Codec.encode`` (the same codes) and ``Codec.decode`` (the
same audio up to float rounding) of the whole signal.

How: every layer of a causal model looks only backwards, so each one can be run on
the new input alone once it is given the left context it kept from the last call.
A conv keeps the input it has not used up (at the start: the zeros it pads with); a
transposed conv keeps the partial sums its last frames spilled into the next
frames' samples (overlap-add); a residual unit and an activation keep nothing of
their own. A causal spectral model's analysis keeps the samples its next frames look
back at, and its synthesis the crossfade of its last frame, which waits for the next
frame (or for :meth:`StreamingDecoder.flush`); a level stage keeps the same two things
for its own frames. The layer wrappers (codec.network.nn,
codec.network.spectral) define the geometry; this module alone holds the state.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from codec.coding import live_postfilter
from codec.coding.postfilter import check_exponent
from codec.errors import CodecError
from codec.network.level_stage import LevelStage
from codec.network.model import Codec
from codec.network.nn import Conv1d, ConvTranspose1d, Snake
from codec.network.seanet import ResidualUnit
from codec.network.spectral import (
    CausalSTFTAnalysis,
    CrossfadeSynthesis,
    SpectralDecoder,
    SpectralEncoder,
)

# Layers that act on each sample alone, and so stream as they are.
POINTWISE = (Snake, nn.ELU, nn.GELU, nn.Identity)

Step = Callable[[torch.Tensor], torch.Tensor]


class StreamingError(CodecError, ValueError):
    """A model or an input that cannot be coded frame by frame."""


class _ConvStep:
    """A causal :class:`Conv1d` fed in pieces ``[B, C, n]``: returns every output frame
    its input so far completes, and keeps the input that later frames still need."""

    def __init__(self, layer: Conv1d):
        left, right = layer.padding
        if right:
            raise StreamingError("a conv pads on the right (looks ahead): not causal")
        self.conv = layer.conv
        self.stride = self.conv.stride[0]
        self.span = (self.conv.kernel_size[0] - 1) * self.conv.dilation[0] + 1
        self.left = left
        self.pending: torch.Tensor | None = None
        # A conv on a few frames takes torch's general paths (a dilated one about 15 times
        # the time of the same products as one matrix multiply, on one frame); it is run
        # as one product of its kernel's taps instead (see :meth:`_by_taps`).
        conv = self.conv
        self.by_taps = self.stride == 1 and conv.groups == 1
        self.matrix: torch.Tensor | None = None
        self.bias: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.span == 1 and self.by_taps:  # a 1x1 conv keeps no context
            return self._by_taps(x, x.shape[-1])
        if self.pending is None:  # the zeros offline coding pads the start with
            self.pending = x.new_zeros(*x.shape[:-1], self.left)
        x = torch.cat([self.pending, x], dim=-1)
        frames = max(0, (x.shape[-1] - self.span) // self.stride + 1)
        self.pending = x[..., frames * self.stride:]
        if frames == 0:
            return x.new_zeros(x.shape[0], self.conv.out_channels, 0)
        x = x[..., :(frames - 1) * self.stride + self.span]
        return self._by_taps(x, frames) if self.by_taps else self.conv(x)

    def _by_taps(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        """The conv of ``x`` ``[B, C, span + frames - 1]`` as one matrix product: each
        output frame's inputs (its kernel's taps, ``dilation`` apart) side by side. The
        matrix and bias are kept from the first call: per frame, every small tensor op
        saved is a measurable share of the frame's time."""
        kernel, dilation = self.conv.kernel_size[0], self.conv.dilation[0]
        if self.matrix is None or self.matrix.dtype != x.dtype:  # [out, kernel * in], tap-major
            self.matrix = self.conv.weight.detach().transpose(1, 2).flatten(1).to(x.dtype)
            bias = self.conv.bias
            self.bias = None if bias is None else bias.detach()[:, None].to(x.dtype)
        taps = x if kernel == 1 else torch.cat(
            [x[..., j * dilation:j * dilation + frames] for j in range(kernel)], dim=1)
        batch, width = taps.shape[:2]
        # One item (a call's usual case) skips the views that lay items side by side:
        # about 10% of a 512-wide conv's time on one frame.
        flat = taps[0] if batch == 1 else taps.transpose(0, 1).reshape(width, batch * frames)
        if self.bias is None:  # one product for all items
            out = self.matrix @ flat
        else:
            out = torch.addmm(self.bias, self.matrix, flat)
        if batch == 1:
            return out[None]
        return out.reshape(out.shape[0], batch, frames).transpose(0, 1)


class _ConvTransposeStep:
    """A causal :class:`ConvTranspose1d` fed frames ``[B, C, n]``: returns their
    ``n * stride`` samples, which no later frame touches, and keeps the partial sums
    (without bias) that the last frames add to the next ``kernel - stride`` samples."""

    def __init__(self, layer: ConvTranspose1d):
        self.conv = layer.conv
        self.stride = self.conv.stride[0]
        overlap = self.conv.kernel_size[0] - self.stride
        if layer.trim != (0, overlap):
            raise StreamingError("a transposed conv keeps samples of later frames: "
                                 "not causal")
        self.carry: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] == 0:
            return x.new_zeros(x.shape[0], self.conv.out_channels, 0)
        y = self.conv(x)
        if self.carry is not None:
            overlap = self.carry.shape[-1]
            y = torch.cat([y[..., :overlap] + self.carry, y[..., overlap:]], dim=-1)
        ready = x.shape[-1] * self.stride
        self.carry = y[..., ready:]
        if self.conv.bias is not None:  # the next call's output brings the bias again
            self.carry = self.carry - self.conv.bias[:, None]
        return y[..., :ready]


class _AnalysisStep:
    """A :class:`CausalSTFTAnalysis` fed audio ``[B, C, n]``: the spectra ``[B, C, bins,
    f]`` of every frame the input so far completes; it keeps the samples later frames
    look back at (at the start, the zeros offline coding pads with)."""

    def __init__(self, analysis: CausalSTFTAnalysis):
        self.analysis = analysis
        self.pending: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        hop, n_fft = self.analysis.hop, self.analysis.n_fft
        if self.pending is None:
            self.pending = x.new_zeros(*x.shape[:-1], n_fft - hop)
        x = torch.cat([self.pending, x], dim=-1)
        frames = max(0, (x.shape[-1] - n_fft) // hop + 1)
        self.pending = x[..., frames * hop:]
        batch, channels = x.shape[:2]
        bins = n_fft // 2 + 1
        if frames == 0:
            return torch.zeros(batch, channels, bins, 0, dtype=torch.complex64,
                               device=x.device)
        spectra = self.analysis.transform(x[..., :(frames - 1) * hop + n_fft].flatten(0, 1))
        return spectra.reshape(batch, channels, bins, frames)


def _completed(summed: torch.Tensor, weights: torch.Tensor,
               carry: tuple[torch.Tensor, torch.Tensor] | None, overlap: int, ready: int,
               first: int) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """Overlap-added frames ``[N, n]`` and their windows' sum, with the last call's
    ``carry`` added to their first ``overlap`` samples -> (the samples up to ``ready``,
    divided by the windows; from ``first`` when there is no carry, at a stream's start)
    and the carry for the next call: what lies past ``ready``."""
    weights = weights.expand_as(summed)
    start = first
    if carry is not None:
        summed[:, :overlap] += carry[0]
        weights = weights.clone()
        weights[:, :overlap] += carry[1]
        start = 0
    audio = summed[:, start:ready] / weights[:, start:ready]
    return audio, (summed[:, ready:], weights[:, ready:])


class _SynthesisStep:
    """A :class:`CrossfadeSynthesis` fed parts ``[B, C, 2, bins, f]``: the samples they
    complete, ``f * hop`` (``overlap`` fewer at the start of a stream); it keeps the
    last frame's crossfade, which the next frame completes, or :meth:`flush` ends."""

    def __init__(self, synthesis: CrossfadeSynthesis):
        self.synthesis = synthesis
        self.carry: tuple[torch.Tensor, torch.Tensor] | None = None  # (sums, weights)
        self.shape: tuple[int, int] | None = None

    def __call__(self, parts: torch.Tensor) -> torch.Tensor:
        batch, channels = parts.shape[:2]
        self.shape = (batch, channels)
        hop, overlap = self.synthesis.hop, self.synthesis.overlap
        if parts.shape[-1] == 0:
            return parts.new_zeros(batch, channels, 0, dtype=torch.float32)
        summed, weights = self.synthesis.overlap_add(self.synthesis.frames(parts))
        # The first frame's crossfade lies before the stream.
        audio, self.carry = _completed(summed, weights, self.carry, overlap,
                                       parts.shape[-1] * hop, first=overlap)
        return audio.reshape(batch, channels, -1)

    def flush(self) -> torch.Tensor:
        """The last frame's crossfade on its own, divided by its window; then reset."""
        if self.carry is None:
            return torch.zeros(*(self.shape or (1, 1)), 0)
        summed, weights = self.carry
        self.carry = None
        return (summed / weights).reshape(*self.shape, -1)


class _LevelFramesStep:
    """A :class:`LevelStage` measuring the input's levels, fed audio ``[B, C, n]`` and how
    many frames the analysis completed: their level vectors ``[B, C * bands, f]``. It
    keeps the samples later frames start from (at the start, the zeros offline coding
    pads with)."""

    def __init__(self, stage: LevelStage):
        self.stage = stage
        self.pending: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor, count: int) -> torch.Tensor:
        rows = x.flatten(0, 1)
        if self.pending is None:
            self.pending = rows.new_zeros(rows.shape[0], self.stage.lead)
        rows = torch.cat([self.pending, rows], dim=-1)
        self.pending = rows[:, count * self.stage.hop:]
        if count == 0:
            return x.new_zeros(x.shape[0], x.shape[1] * self.stage.bands, 0)
        return self.stage.levels_of(self.stage.spectra(rows, count), x.shape[0])


class _LevelStageStep:
    """A :class:`LevelStage` fed the decoded audio ``[B, C, n]`` the synthesis completed
    and the level vectors of the frames it completed: the samples brought to them. It
    keeps the decoded samples its next frame starts from and its last frame's falling
    crossfade, which the next frame completes (or :meth:`flush` ends)."""

    def __init__(self, stage: LevelStage):
        self.stage = stage
        self.pending: torch.Tensor | None = None
        self.carry: tuple[torch.Tensor, torch.Tensor] | None = None  # (sums, weights)

    def __call__(self, audio: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
        batch, channels = audio.shape[:2]
        rows = audio.flatten(0, 1).float()
        if self.pending is None:
            self.pending = rows.new_zeros(rows.shape[0], self.stage.lead)
        rows = torch.cat([self.pending, rows], dim=-1)
        count = levels.shape[-1]
        if count == 0:
            self.pending = rows
            return audio.new_zeros(batch, channels, 0, dtype=torch.float32)
        frames = self.stage.brought_frames(self.stage.spectra(rows, count), levels)
        summed, weights = self.stage.overlap_add(frames)
        ready = count * self.stage.hop
        self.pending = rows[:, ready:]
        # The first frame starts before the stream.
        audio, self.carry = _completed(summed, weights, self.carry, self.stage.overlap, ready,
                                       first=self.stage.lead)
        return audio.reshape(batch, channels, -1)

    def flush(self, tail: torch.Tensor) -> torch.Tensor:
        """The last frame's falling crossfade divided by its window, then ``tail`` (the
        decoded samples no frame covers) as it is; then reset."""
        if self.carry is not None:
            summed, weights = self.carry
            faded = (summed / weights).reshape(*tail.shape[:2], -1)
            tail = torch.cat([faded, tail.float()], dim=-1)
        self.pending, self.carry = None, None
        return tail


def _chain(steps: list[Step]) -> Step:
    def run(x: torch.Tensor) -> torch.Tensor:
        for step in steps:
            x = step(x)
        return x
    return run


def _residual(unit: ResidualUnit) -> Step:
    # Its convs have stride 1, so the block returns as many samples as it is given.
    block = streaming_step(unit.block)
    return lambda x: x + block(x)


def streaming_step(module: nn.Module) -> Step:
    """A stateful function that runs ``module`` on its input piece by piece, giving
    the same output as one call on the whole input. StreamingError for a layer that
    looks ahead or that this module does not know."""
    if isinstance(module, Conv1d):
        return _ConvStep(module)
    if isinstance(module, ConvTranspose1d):
        return _ConvTransposeStep(module)
    if isinstance(module, ResidualUnit):
        return _residual(module)
    if isinstance(module, nn.Sequential):
        return _chain([streaming_step(layer) for layer in module])
    if isinstance(module, POINTWISE):
        return module
    raise StreamingError(f"cannot stream a {type(module).__name__} layer")


def encoder_step(encoder: nn.Module) -> Step:
    """Audio ``[B, C, n]`` -> latents of the frames completed so far, for either
    architecture's encoder."""
    if isinstance(encoder, SpectralEncoder):
        if not isinstance(encoder.analysis, CausalSTFTAnalysis):
            raise StreamingError("this spectral encoder's window looks ahead: not causal")
        analysis, layers = _AnalysisStep(encoder.analysis), streaming_step(encoder.layers)
        measure = None if encoder.level_frames is None else _LevelFramesStep(encoder.level_frames)

        def run(x: torch.Tensor) -> torch.Tensor:
            spectra = analysis(x)
            levels = None if measure is None else measure(x, spectra.shape[-1])
            return encoder.from_spectra(spectra, x.dtype, layers, levels=levels)
        return run
    return streaming_step(encoder.layers)


class _DecoderStep:
    """Latents ``[B, D, f]`` -> the audio they complete, for either architecture's
    decoder; :meth:`flush` gives what waits for a next frame (nothing for SEANet)."""

    def __init__(self, decoder: nn.Module):
        self.decoder = decoder
        self.layers = streaming_step(decoder.layers)
        self.batch = 1
        self.synthesis = self.level_stage = None
        if isinstance(decoder, SpectralDecoder):
            if not isinstance(decoder.synthesis, CrossfadeSynthesis):
                raise StreamingError("this spectral decoder's frames look ahead: not causal")
            self.synthesis = _SynthesisStep(decoder.synthesis)
            if decoder.level_stage is not None:
                self.level_stage = _LevelStageStep(decoder.level_stage)

    def __call__(self, latents: torch.Tensor) -> torch.Tensor:
        self.batch = latents.shape[0]
        if self.synthesis is None:
            return self.layers(latents)
        audio = self.synthesis(self.decoder.parts(latents, self.layers))
        if self.level_stage is None:
            return audio
        return self.level_stage(audio, latents[:, self.decoder.latent_dim:])

    def flush(self) -> torch.Tensor | None:
        """The held-back samples ``[B, C, n]``; None for a decoder that holds none."""
        if self.synthesis is None:
            return None
        tail = self.synthesis.flush()
        return tail if self.level_stage is None else self.level_stage.flush(tail)


def _check_causal(model: Codec) -> None:
    if not model.config.causal:
        raise StreamingError("streaming needs a causal model (model.causal: true); this "
                             "one looks ahead and codes offline only")


class StreamingEncoder:
    """Audio ``[B, C, n]`` in blocks of any size -> codes ``[B, n_q, f]`` of the frames
    completed so far. A frame's code is ready with its last sample: the latency is one
    hop. :meth:`flush` ends the stream."""

    def __init__(self, model: Codec, n_q: int | None = None):
        _check_causal(model)
        self.model = model
        self.n_q = model.quantizer.check_n_q(n_q)
        self.reset()

    def reset(self) -> None:
        """Forget the stream so far: the next push starts a new one."""
        self._step = encoder_step(self.model.encoder)
        self.samples = 0
        self._shape: tuple[int, int] | None = None

    @torch.no_grad()
    def push(self, audio: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, n_q, f]`` (int64) of the frames this block completes (f may be 0)."""
        self._check(audio)
        self.samples += audio.shape[-1]
        latents = self._step(audio)
        if latents.shape[-1] == 0:
            return torch.zeros(audio.shape[0], self.n_q, 0, dtype=torch.long,
                               device=audio.device)
        return self.model.quantizer.encode(latents, self.n_q)

    @torch.no_grad()
    def flush(self) -> torch.Tensor:
        """Codes of the last, partial frame, padded with zeros as ``Codec.encode`` pads
        it (``[B, n_q, 0]`` if the stream ended on a frame boundary); then reset."""
        batch, channels = self._shape or (1, self.model.config.channels)
        missing = -self.samples % self.model.hop_length
        device = next(self.model.parameters()).device
        codes = self.push(torch.zeros(batch, channels, missing, device=device))
        self.reset()
        return codes

    def _check(self, audio: torch.Tensor) -> None:
        if not isinstance(audio, torch.Tensor) or audio.dim() != 3:
            raise StreamingError(f"audio blocks must be [batch, channels, samples] tensors, "
                                 f"got {getattr(audio, 'shape', type(audio).__name__)}")
        shape = (audio.shape[0], audio.shape[1])
        if self._shape is not None and shape != self._shape:
            raise StreamingError(f"a block of {shape[0]} item(s) x {shape[1]} channel(s) in "
                                 f"a stream of {self._shape[0]} x {self._shape[1]}")
        if audio.shape[1] != self.model.config.channels:
            raise StreamingError(f"audio has {audio.shape[1]} channel(s); this model codes "
                                 f"{self.model.config.channels}")
        if not audio.is_floating_point() or not torch.isfinite(audio).all():
            raise StreamingError("audio must be finite floating-point samples")
        self._shape = shape


class StreamingDecoder:
    """Codes ``[B, n_q, f]`` -> the audio ``[B, C, n]`` they complete. A time-domain
    causal decoder completes a frame's ``hop`` samples at once; a causal spectral one
    holds back each frame's last ``synthesis_overlap`` samples until the next frame
    arrives (:meth:`flush` gives them at the end). Concatenated, the pushes and the
    flush give ``Codec.decode``'s audio, through the live post-filter with exponent
    ``postfilter`` (1: none), which filters each frame's audio as it comes and so adds
    no latency."""

    def __init__(self, model: Codec, postfilter: float = 1.0):
        _check_causal(model)
        problem = check_exponent(postfilter)
        if problem:
            raise StreamingError(problem)
        self.model = model
        self.postfilter = live_postfilter.for_model(model, postfilter)
        self.reset()

    def reset(self) -> None:
        """Forget the stream so far: the next push starts a new one."""
        self._step = _DecoderStep(self.model.decoder)
        self._filter = live_postfilter.LivePostFilterStep(self.postfilter)

    @torch.no_grad()
    def push(self, codes: torch.Tensor) -> torch.Tensor:
        try:
            latents = self.model.quantizer.decode(codes)
        except ValueError as error:
            raise StreamingError(str(error)) from None
        return self._filter(self._step(latents))

    @torch.no_grad()
    def flush(self) -> torch.Tensor:
        """The samples still held back at the end of the stream ``[B, C, n]`` (n = 0 for a
        time-domain model); then reset."""
        held, batch = self._step.flush(), self._step.batch
        if held is None:
            channels = self.model.config.channels
            held = torch.zeros(batch, channels, 0, device=next(self.model.parameters()).device)
        held = self._filter.flush(held)
        self.reset()
        return held
