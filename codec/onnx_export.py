"""ONNX graphs of a codec: ``encoder.onnx`` (audio -> codes) and ``decoder.onnx`` (codes ->
audio), for runtimes without torch (onnxruntime, browsers, phones).

    codec export exp/run --onnx DIR

- ``encoder.onnx``: ``audio`` float32 ``[batch, channels, samples]`` at the model's rate,
  already brought to its training loudness -> ``codes`` int64 ``[batch, n_q, frames]``,
  ``frames = ceil(samples / hop)`` (the graph pads to a whole hop with zeros, as
  ``Codec.encode`` does). It always gives every codebook: a residual quantiser's first
  ``k`` codes do not depend on the later ones, so keeping the first ``k`` rows is coding
  with ``k`` codebooks.
- ``decoder.onnx``: ``codes`` int64 ``[batch, k, frames]`` with any ``1 <= k <= n_q`` ->
  ``audio`` float32 ``[batch, channels, frames * hop]`` (cut it to the input's length).
  Codes must lie in ``[0, codebook_size)``: the graph does not check them.
- ``codec.json`` beside them: sample rate, channels, hop, n_q, codebook size, model id,
  training loudness, and the steps that stay outside the graphs (``OUTSIDE``).

Batch, samples, frames and ``k`` are dynamic axes. The graphs hold the network as
``Codec.encode`` and ``Codec.decode`` run it, weight norm folded. Outside them stays
what ``codec encode``/``decode`` do around the network: resampling to and from the
model's rate, the loudness gain (and the level match folded into it), band levels,
the post-filter, entropy coding and the ``.qca`` container.

``torch.stft`` and the inverse transform do not export, so the spectral architecture's
ends are rewritten as fixed linear maps computing the same sums: the analysis as a
strided conv whose kernels are the windowed DFT basis (real and imaginary parts), the
synthesis as a strided transposed conv whose kernels are the windowed inverse real DFT
basis (overlap-add), divided by the overlap-added window envelope as the model does.
They differ from the FFT only in float rounding. A model with frame levels (the live
preset; codec/network/frame_levels.py) measures them in the encoder graph (its first row
of codes) and brings the decoder's frames to them in the decoder graph, as the model does.

Float rounding also differs between runtimes (a few 1e-7 on a tiny model's latents), so
a code can differ from torch's only where two codewords are that nearly equally near
(codewords k-means left identical, in an undertrained model, are such ties).

The graphs are written by torch's TorchScript exporter (``dynamo=False``): the newer
``torch.export``-based one needs one more package (onnxscript), and these graphs need
nothing it adds.
"""
from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import warnings
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from codec.errors import CodecError
from codec.network import frame_levels, stereo
from codec.network.model import Codec, compute_model_id
from codec.network.nn import fold_weight_norm
from codec.network.spectral import (
    COMPRESSION,
    COMPRESSION_FLOOR,
    CausalSTFTAnalysis,
    CrossfadeSynthesis,
    ISTFTSynthesis,
    STFTAnalysis,
)

ENCODER_FILE, DECODER_FILE, INFO_FILE = "encoder.onnx", "decoder.onnx", "codec.json"
FILES = (ENCODER_FILE, DECODER_FILE, INFO_FILE)
OPSET = 17
OUTSIDE = ("resampling to and from sample_rate",
           "loudness gain: input brought to target_lufs, output back to the input's level",
           "band levels (coding.band_levels)",
           "post-filter (coding.postfilter)",
           "entropy coding and the .qca container",
           "cutting the decoded audio to the input's length")


def _angles(size: int, bins: int) -> torch.Tensor:
    """``2 pi k n / size`` for bin ``k`` and sample ``n``, ``[bins, size]`` float64 (the
    product taken modulo ``size`` first, so large ones lose no precision)."""
    product = torch.arange(bins, dtype=torch.float64)[:, None] * torch.arange(size)
    return 2 * math.pi * torch.remainder(product, size) / size


class ConvAnalysis(nn.Module):
    """:class:`STFTAnalysis` or :class:`CausalSTFTAnalysis` followed by
    ``SpectralEncoder.features``: audio ``[B, C, T]`` -> compressed real and imaginary
    parts ``[B, C * 2 * bins, T / hop]``, the transform as a strided conv."""

    def __init__(self, analysis: STFTAnalysis | CausalSTFTAnalysis):
        super().__init__()
        n_fft, self.hop = analysis.n_fft, analysis.hop
        self.bins = n_fft // 2 + 1
        if isinstance(analysis, CausalSTFTAnalysis):
            self.padding = (n_fft - self.hop, 0)
        else:
            side = (n_fft - self.hop) // 2
            self.padding = (side, side)
        angles = _angles(n_fft, self.bins)
        window = analysis.window.double() / analysis.scale
        basis = torch.cat([angles.cos() * window, -angles.sin() * window])
        self.register_buffer("basis", basis[:, None, :].float())

    def spectra(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Audio ``[B, C, T]`` -> the real and imaginary parts ``[B * C, bins, F]``."""
        batch, channels, length = audio.shape
        flat = nn.functional.pad(audio.reshape(batch * channels, 1, length), self.padding)
        parts = nn.functional.conv1d(flat, self.basis, stride=self.hop)
        return parts[:, :self.bins], parts[:, self.bins:]

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        batch, channels = audio.shape[:2]
        real, imag = self.spectra(audio)
        magnitude = torch.sqrt(real * real + imag * imag)
        scale = (magnitude + COMPRESSION_FLOOR).pow(COMPRESSION - 1)
        compressed = torch.cat([real * scale, imag * scale], dim=1)
        return compressed.reshape(batch, channels * 2 * self.bins, -1)


class ConvSynthesis(nn.Module):
    """:class:`ISTFTSynthesis` or :class:`CrossfadeSynthesis` on the decoder's last conv:
    real and imaginary parts ``[B, C * 2 * bins, F]`` -> audio ``[B, C, F * hop]``, the
    inverse transform and overlap-add as one strided transposed conv."""

    def __init__(self, synthesis: ISTFTSynthesis | CrossfadeSynthesis, channels: int):
        super().__init__()
        self.hop, self.channels = synthesis.hop, channels
        window = synthesis.window.double()
        if isinstance(synthesis, CrossfadeSynthesis):
            size, envelope, self.trim = synthesis.size, window, (synthesis.overlap, 0)
        else:
            side = (synthesis.n_fft - self.hop) // 2
            size, envelope, self.trim = synthesis.n_fft, window.pow(2), (side, side)
        self.bins = size // 2 + 1
        # The inverse real DFT counts every bin but DC and Nyquist twice.
        counts = torch.full((self.bins, 1), 2.0, dtype=torch.float64)
        counts[0] = 1.0
        if size % 2 == 0:
            counts[-1] = 1.0
        angles = _angles(size, self.bins)
        weight = counts / size * window * synthesis.scale
        basis = torch.cat([angles.cos() * weight, -angles.sin() * weight])
        self.register_buffer("basis", basis[:, None, :].float())
        self.register_buffer("envelope", envelope[None, None, :].float())

    def forward(self, parts: torch.Tensor) -> torch.Tensor:
        batch = parts.shape[0]
        flat = parts.reshape(batch * self.channels, 2 * self.bins, -1)
        summed = nn.functional.conv_transpose1d(flat, self.basis, stride=self.hop)
        ones = torch.ones_like(flat[:1, :1])
        weights = nn.functional.conv_transpose1d(ones, self.envelope, stride=self.hop)
        left, right = self.trim
        keep = slice(left, -right if right else None)
        audio = summed[..., keep] / weights[..., keep]
        return audio.reshape(batch, self.channels, -1)


def _nearest(vectors: torch.Tensor, embed: torch.Tensor) -> torch.Tensor:
    """Nearest codeword of each vector ``[B, F, D]`` as VectorQuantizer.quantize finds it
    (same sums, same order)."""
    return (vectors @ (2 * embed.t()) - embed.pow(2).sum(dim=1)).argmax(dim=-1)


class LevelMeter(nn.Module):
    """The frame levels of a model that sends them (codec.network.frame_levels), from
    the transform's real and imaginary parts ``[B * C, bins, F]`` -> ``[B, F, C * bands]``."""

    def __init__(self, model: Codec, bins: int):
        super().__init__()
        self.channels = model.config.channels
        members = frame_levels._members(bins, model.sample_rate, model.config.level_bands)
        self.register_buffer("members", members.clone())

    def forward(self, real: torch.Tensor, imag: torch.Tensor) -> torch.Tensor:
        mean = self.members @ (real * real + imag * imag)  # [B * C, bands, F]
        db = (10 / math.log(10)) * torch.log(mean + frame_levels.TINY)
        floor = frame_levels.FLOOR_DB
        levels = (db.clamp(min=floor) - floor) / frame_levels.UNIT_DB
        batch = levels.shape[0] // self.channels
        return levels.reshape(batch, -1, levels.shape[-1]).transpose(1, 2)


class EncoderGraph(nn.Module):
    """Audio ``[B, C, T]`` -> codes ``[B, n_q, ceil(T / hop)]``, as ``Codec.encode``."""

    def __init__(self, model: Codec):
        super().__init__()
        self.hop, self.layout = model.hop_length, model.config.stereo
        encoder = model.encoder
        self.meter = None
        if model.config.arch == "stft":
            analysis = ConvAnalysis(encoder.analysis)
            self.network = nn.Sequential(analysis, encoder.layers)
            if model.config.level_bands:
                self.analysis, self.meter = analysis, LevelMeter(model, analysis.bins)
                self.register_buffer("level_codebook", model.quantizer.levels.embed.detach()
                                     .float().clone())
        else:
            self.network = encoder
        self.register_buffer("codebooks", _codebooks(model))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        extra = (self.hop - audio.shape[-1] % self.hop) % self.hop
        # Mid/side on the audio is mid/side on its spectra: the maps are linear.
        audio = stereo.to_coded(nn.functional.pad(audio, (0, extra)), self.layout)
        residual = self.network(audio).transpose(1, 2)  # [B, F, D]
        codes = []
        if self.meter is not None:
            codes.append(_nearest(self.meter(*self.analysis.spectra(audio)),
                                  self.level_codebook))
        for embed in self.codebooks:
            layer_codes = _nearest(residual, embed)
            residual = residual - nn.functional.embedding(layer_codes, embed)
            codes.append(layer_codes)
        return torch.stack(codes, dim=1)


class DecoderGraph(nn.Module):
    """Codes ``[B, k, F]`` (any ``k`` up to n_q) -> audio ``[B, C, F * hop]``, as
    ``Codec.decode``."""

    def __init__(self, model: Codec):
        super().__init__()
        decoder = model.decoder
        self.levelled = bool(model.config.level_bands)
        self.layout = model.config.stereo
        if model.config.arch == "stft":
            self.layers = decoder.layers
            self.synthesis = ConvSynthesis(decoder.synthesis, model.config.channels)
            self.channels, self.bins = decoder.channels, decoder.bins
            self.sample_rate = model.sample_rate
            self.register_buffer("heard", decoder.heard)
        else:
            self.network = decoder
        codebooks = _codebooks(model)
        self.codebook_size = codebooks.shape[1]
        # One table of every codebook, each code offset by its codebook's start.
        self.register_buffer("table", codebooks.flatten(0, 1))
        if self.levelled:
            self.register_buffer("level_codebook", model.quantizer.levels.embed.detach()
                                 .float().clone())

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        levels = None
        if self.levelled:  # the first row codes the frame levels, the rest the latents
            levels = nn.functional.embedding(codes[:, 0], self.level_codebook).transpose(1, 2)
            codes = codes[:, 1:]
        offsets = torch.arange(codes.shape[1], device=codes.device) * self.codebook_size
        vectors = nn.functional.embedding(codes + offsets[:, None], self.table)  # [B, k, F, D]
        latents = vectors.sum(dim=1).transpose(1, 2)
        if not hasattr(self, "layers"):
            return self.network(latents)
        out = self.layers(latents)
        if levels is not None:
            parts = out.reshape(out.shape[0], self.channels, 2, self.bins, out.shape[-1])
            out = frame_levels.bring_to(parts, levels, self.sample_rate,
                                        self.heard).flatten(1, 3)
        return stereo.from_coded(self.synthesis(out), self.layout)


def _codebooks(model: Codec) -> torch.Tensor:
    """The quantiser's codebooks of the latents, ``[n_q, codebook_size, dim]`` (with frame
    levels, the first codebook is apart: it codes the levels)."""
    layers = model.quantizer.layers[1:] if model.config.level_bands else model.quantizer.layers
    return torch.stack([layer.embed.detach().float() for layer in layers])


def _inference_copy(model: Codec) -> Codec:
    return fold_weight_norm(copy.deepcopy(model)).float().cpu().eval()


def _export(module: nn.Module, example: torch.Tensor, path: Path, names: tuple[str, str],
            axes: dict[str, dict[int, str]]) -> None:
    """Write ``module`` as ONNX at ``path`` (through a temporary file beside it)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with warnings.catch_warnings(), torch.no_grad():
            # The tracer warns about shape arithmetic it records as graph ops anyway, and
            # about the slices of dynamic padding it cannot fold; neither changes the graph.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message="Constant folding")
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX")
            warnings.filterwarnings("ignore", message="The feature will be removed")
            torch.onnx.export(module, (example,), str(tmp), dynamo=False, opset_version=OPSET,
                              input_names=[names[0]], output_names=[names[1]],
                              dynamic_axes=axes)
        os.replace(tmp, path)
    except OSError as error:
        raise CodecError(f"{path}: cannot write ({error.strerror or error})") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def describe(model: Codec, target_lufs: Optional[float]) -> dict:
    """What ``codec.json`` holds: how to feed the graphs, and what they leave out."""
    config = model.config
    return {"format": "codec-onnx", "format_version": 1,
            "sample_rate": config.sample_rate, "channels": config.channels,
            "hop": model.hop_length, "n_q": config.n_q,
            "codebook_size": config.codebook_size, "model_id": compute_model_id(model),
            "target_lufs": target_lufs, "opset": OPSET,
            "encoder": {"input": "audio float32 [batch, channels, samples]",
                        "output": "codes int64 [batch, n_q, ceil(samples / hop)]"},
            "decoder": {"input": "codes int64 [batch, k <= n_q, frames]",
                        "output": "audio float32 [batch, channels, frames * hop]"},
            "outside_the_graphs": list(OUTSIDE)}


def export_onnx(model: Codec, folder: str | Path, *,
                target_lufs: Optional[float] = None) -> dict[str, Path]:
    """Write ``encoder.onnx``, ``decoder.onnx`` and ``codec.json`` for ``model`` into
    ``folder``; ``target_lufs``: the loudness input must be brought to (recorded only)."""
    if model.config.level_bands and (model.config.level_codebooks > 1
                                     or model.config.level_overlap):
        raise CodecError("ONNX export takes frame levels coded by one codebook and met on "
                         "the decoder's frames: this model has model.level_codebooks "
                         f"{model.config.level_codebooks} and model.level_overlap "
                         f"{model.config.level_overlap}; code it with codec encode / decode "
                         "or stream-encode / stream-decode")
    try:
        import onnx  # noqa: F401  torch's exporter writes its files through it
    except ImportError:
        raise CodecError("ONNX export needs the onnx package: pip install onnx (or pip "
                         "install -e '.[onnx]', which brings onnxruntime too)") from None
    folder = Path(folder)
    model = _inference_copy(model)
    frames = 3
    audio = torch.zeros(1, model.config.channels, frames * model.hop_length)
    codes = torch.zeros(1, model.config.n_q, frames, dtype=torch.long)
    paths = {name: folder / name for name in FILES}
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CodecError(f"{folder}: cannot write ({error.strerror or error})") from None
    _export(EncoderGraph(model).eval(), audio, paths[ENCODER_FILE], ("audio", "codes"),
            {"audio": {0: "batch", 2: "samples"}, "codes": {0: "batch", 2: "frames"}})
    _export(DecoderGraph(model).eval(), codes, paths[DECODER_FILE], ("codes", "audio"),
            {"codes": {0: "batch", 1: "n_q", 2: "frames"},
             "audio": {0: "batch", 2: "samples"}})
    info = json.dumps(describe(model, target_lufs), indent=2) + "\n"
    try:
        paths[INFO_FILE].write_text(info)
    except OSError as error:
        raise CodecError(f"{paths[INFO_FILE]}: cannot write ({error.strerror or error})"
                         ) from None
    return paths
