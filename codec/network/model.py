"""The codec: encoder -> residual VQ -> unbounded decoder.

Shapes: audio ``[B, C, T]`` (C = model channels), codes ``[B, n_q, F]`` with
``F = ceil(T / hop)``.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from codec.config import ConfigError, ModelConfig
from codec.network.frame_levels import MAX_BANDS, LevelledRVQ
from codec.network.nn import ACTIVATIONS
from codec.network.quantize import ResidualVQ
from codec.network.seanet import SEANetDecoder, SEANetEncoder
from codec.network.spectral import (
    SpectralDecoder,
    SpectralEncoder,
    overlap_problem,
    window_problem,
)
from codec.network.stereo import layout_problem

# Bounds on a model configuration read from a file that may be hostile, checked before
# anything is allocated. Far above any useful codec: the large preset holds 26M values.
MAX_MODEL_VALUES = 2 * 10 ** 9  # parameters and buffers: 8 GB of float32
MAX_STAGES = 16
MAX_WIDTH = 1 << 14
MAX_KERNEL = 1 << 10
_FIELD_LIMITS = {"sample_rate": 768_000, "channels": 64, "latent_dim": MAX_WIDTH,
                 "kernel_size": MAX_KERNEL, "residual_kernel_size": MAX_KERNEL, "n_q": 64,
                 "codebook_size": 1 << 16, "n_fft": 1 << 16}
_LIST_LIMITS = {"strides": (MAX_STAGES, MAX_KERNEL), "widths": (MAX_STAGES + 1, MAX_WIDTH),
                "dilations": (MAX_STAGES, MAX_KERNEL)}


def check_model_size(config: ModelConfig) -> None:
    """ConfigError unless ``config`` describes a model of sane size: every size field
    within its limit, and an upper bound on its parameters and buffers, reckoned from
    the fields alone, at most ``MAX_MODEL_VALUES``."""
    for name, limit in _FIELD_LIMITS.items():
        if not 1 <= getattr(config, name) <= limit:
            raise ConfigError(f"model.{name} = {getattr(config, name)} is outside [1, {limit}]")
    for name, (length, limit) in _LIST_LIMITS.items():
        values = getattr(config, name)
        if len(values) > length or not all(1 <= v <= limit for v in values):
            raise ConfigError(f"model.{name} must hold at most {length} values in "
                              f"[1, {limit}], got {list(values)[:20]}")
    if len(config.widths) != len(config.strides) + 1:
        raise ConfigError(f"model.widths needs len(strides) + 1 = {len(config.strides) + 1} "
                          f"entries, got {len(config.widths)}")
    check_arch(config)
    values = _size_bound(config)
    if values > MAX_MODEL_VALUES:
        raise ConfigError(f"model config describes up to {values:,} parameters and buffers; "
                          f"the limit is {MAX_MODEL_VALUES:,}")


def check_arch(config: ModelConfig) -> None:
    """ConfigError unless ``model.arch`` names an architecture that can take the rest."""
    if config.arch not in ARCHITECTURES:
        raise ConfigError(f"unknown model.arch {config.arch!r:.40}; choices: "
                          f"{sorted(ARCHITECTURES)}")
    if config.activation not in ACTIVATIONS:
        raise ConfigError(f"unknown model.activation {config.activation!r:.40}; choices: "
                          f"{sorted(ACTIVATIONS)}")
    if config.level_bands and not (config.arch == "stft" and config.n_q > config.level_codebooks
                                   and 1 <= config.level_bands <= MAX_BANDS):
        raise ConfigError(f"model.level_bands (frame levels, coded by the first "
                          f"model.level_codebooks codebooks) needs arch stft, n_q over "
                          f"level_codebooks and at most {MAX_BANDS} bands; got arch "
                          f"{config.arch!r:.20}, n_q {config.n_q}, level_codebooks "
                          f"{config.level_codebooks}, level_bands {config.level_bands}")
    if config.level_codebooks < 1:
        raise ConfigError(f"model.level_codebooks must be at least 1, got "
                          f"{config.level_codebooks}")
    _check_level_overlap(config)
    if not 0 <= config.level_dropout <= 1 or (config.level_dropout and not config.level_bands):
        raise ConfigError(f"model.level_dropout is the share of training items decoded "
                          f"without their frame levels, in [0, 1], and needs "
                          f"model.level_bands; got {config.level_dropout} with level_bands "
                          f"{config.level_bands}")
    stereo_problem = layout_problem(config.stereo, config.channels, config.arch)
    if stereo_problem:
        raise ConfigError(stereo_problem)
    if config.arch != "stft":
        if config.synthesis_overlap:
            raise ConfigError("model.synthesis_overlap is for a causal spectral model "
                              "(arch stft) only")
        return
    hop = math.prod(config.strides)
    if config.causal:
        problem = overlap_problem(config.synthesis_overlap, hop)
        if not problem and config.n_fft < hop:
            problem = f"n_fft must be at least the hop ({hop}), got {config.n_fft}"
    else:
        problem = window_problem(config.n_fft, hop)
        if not problem and config.synthesis_overlap:
            problem = ("synthesis_overlap is for a causal model: an offline one overlaps "
                       "by its window")
    if problem:
        raise ConfigError(f"model.{problem}")


def _size_bound(config: ModelConfig) -> int:
    """At least the parameters and buffers of ``Codec(config)``: the conv weights of the
    encoder and the decoder (each conv's bias, weight-norm gain and the activation
    before it hold no more than its weight, hence the factor 3), and the codebooks with
    their running statistics."""
    widths, kernel = config.widths, config.kernel_size
    if config.arch == "stft":  # convs from and to the spectrum, at the last width
        features = config.channels * (config.n_fft + 2)
        weights = (features + config.latent_dim) * widths[-1] * kernel
    else:
        weights = config.channels * widths[0] * kernel + widths[-1] * config.latent_dim * kernel
        weights += sum(a * b * 2 * s
                       for a, b, s in zip(widths[:-1], widths[1:], config.strides, strict=True))
        weights += sum(len(config.dilations) * w * w * (config.residual_kernel_size + 1)
                       for w in widths)
    codebooks = 4 * config.n_q * config.codebook_size * (config.latent_dim + 1)
    return 3 * 2 * weights + codebooks


@dataclass
class CodecOutput:
    """audio ``[B, C, T]``; codes ``[B, n_q, F]``; named losses; logging metrics; and,
    when the forward pass was asked for one, ``phase_audio``: the same audio through the
    decoder's phase-only path (``SpectralDecoder.with_phase_path``)."""
    audio: torch.Tensor
    codes: torch.Tensor
    losses: dict[str, torch.Tensor] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    phase_audio: torch.Tensor | None = None


def _seanet_options(config: ModelConfig) -> dict:
    return dict(channels=config.channels, strides=config.strides, widths=config.widths,
                latent_dim=config.latent_dim, dilations=config.dilations,
                kernel_size=config.kernel_size,
                residual_kernel_size=config.residual_kernel_size,
                activation=config.activation, causal=config.causal,
                weight_norm=config.weight_norm, first_residual_stage=config.first_residual_stage)


def _spectral_options(config: ModelConfig) -> dict:
    """The hop is the strides' product; the frame-rate width is the last width."""
    return dict(channels=config.channels, hop=math.prod(config.strides), n_fft=config.n_fft,
                width=config.widths[-1], latent_dim=config.latent_dim,
                dilations=config.dilations, kernel_size=config.kernel_size,
                residual_kernel_size=config.residual_kernel_size,
                activation=config.activation, weight_norm=config.weight_norm,
                causal=config.causal, overlap=config.synthesis_overlap,
                sample_rate=config.sample_rate, level_bands=config.level_bands,
                stereo_layout=config.stereo, level_overlap=config.level_overlap)


def _decoder_options(config: ModelConfig) -> dict:
    """The spectral decoder's options: the encoder's and the level dropout."""
    return dict(_spectral_options(config), level_dropout=config.level_dropout)


# model.arch -> (encoder, decoder, the encoder's and the decoder's keyword arguments
# from the config)
ARCHITECTURES = {"seanet": (SEANetEncoder, SEANetDecoder, _seanet_options, _seanet_options),
                 "stft": (SpectralEncoder, SpectralDecoder, _spectral_options,
                          _decoder_options)}


def _quantizer(config: ModelConfig) -> ResidualVQ | LevelledRVQ:
    """The residual VQ; with frame levels, one whose first codebook codes them."""
    options = dict(dim=config.latent_dim, n_q=config.n_q, codebook_size=config.codebook_size,
                   decay=config.ema_decay, kmeans_iters=config.kmeans_iters,
                   dead_code_threshold=config.dead_code_threshold,
                   dropout=config.quantizer_dropout)
    if config.level_bands:
        return LevelledRVQ(level_dim=config.channels * config.level_bands,
                           level_codebooks=config.level_codebooks, **options)
    return ResidualVQ(**options)


class Codec(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        check_arch(config)
        encoder, decoder, encoder_options, decoder_options = ARCHITECTURES[config.arch]
        self.encoder = encoder(**encoder_options(config))
        self.quantizer = _quantizer(config)
        self.decoder = decoder(**decoder_options(config))

    @property
    def hop_length(self) -> int:
        return math.prod(self.config.strides)

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def frame_rate(self) -> float:
        return self.config.sample_rate / self.hop_length

    @property
    def latency_samples(self) -> int | None:
        """Algorithmic latency of frame-by-frame coding, in samples at the model rate: from
        an input sample to the decoded sample in its place, with every frame coded as
        soon as its last sample has arrived.

        A causal model's code for a frame needs the frame's last sample and nothing
        later. A time-domain decoder yields the frame's audio at once: one hop in all. A
        causal spectral decoder crossfades each frame into the next over
        ``synthesis_overlap`` samples, which wait for that next frame: a hop and the
        overlap; its level stage, when it has one, crossfades over ``level_overlap``
        samples more. None for a non-causal model, which looks ahead and codes offline only.
        """
        if not self.config.causal:
            return None
        return self.hop_length + self.config.synthesis_overlap + self.config.level_overlap

    @property
    def bits_per_code(self) -> float:
        return math.log2(self.config.codebook_size)

    def bitrate(self, n_q: int | None = None) -> float:
        """Nominal bits per second with ``n_q`` codebooks (all of them by default)."""
        return self.frame_rate * self.quantizer.check_n_q(n_q) * self.bits_per_code

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def check_audio(self, audio: torch.Tensor) -> None:
        """Raise ValueError naming the problem if ``audio`` is not ``[B, C, T>0]`` finite."""
        if not isinstance(audio, torch.Tensor):
            raise TypeError(f"audio must be a torch.Tensor, got {type(audio).__name__}")
        if audio.dim() != 3:
            raise ValueError(f"audio must have shape [batch, channels, samples], "
                             f"got {audio.dim()}-D shape {tuple(audio.shape)}")
        if audio.shape[1] != self.config.channels:
            raise ValueError(f"audio has {audio.shape[1]} channel(s); this model codes "
                             f"{self.config.channels}")
        if audio.shape[-1] == 0:
            raise ValueError("audio is empty (zero samples)")
        if not audio.is_floating_point():
            raise ValueError(f"audio must be floating point, got {audio.dtype}")
        if not torch.isfinite(audio).all():
            raise ValueError("audio contains NaN or infinite samples")

    def _pad_to_hop(self, audio: torch.Tensor) -> torch.Tensor:
        extra = -audio.shape[-1] % self.hop_length
        return nn.functional.pad(audio, (0, extra))

    def forward(self, audio: torch.Tensor, n_q: int | None = None,
                phase_only_above_hz: float | None = None) -> CodecOutput:
        """Training pass: reconstruction of the same length, codes, losses, metrics;
        with ``phase_only_above_hz`` (a spectral decoder only), the phase-only path's
        audio as well."""
        self.check_audio(audio)
        latents = self.encoder(self._pad_to_hop(audio))
        result = self.quantizer(latents, n_q)
        length = audio.shape[-1]
        if phase_only_above_hz is None:
            decoded = self.decoder(result.quantized)[..., :length]
            return CodecOutput(decoded, result.codes, result.losses, result.metrics)
        decoded, phase = self.decoder.with_phase_path(result.quantized, phase_only_above_hz)
        return CodecOutput(decoded[..., :length], result.codes, result.losses,
                           result.metrics, phase[..., :length])

    @torch.no_grad()
    def encode(self, audio: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        """Audio ``[B, C, T]`` -> codes ``[B, n_q, ceil(T / hop)]`` (int64)."""
        self.check_audio(audio)
        return self.quantizer.encode(self.encoder(self._pad_to_hop(audio)), n_q)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """Codes ``[B, n_q, F]`` -> audio ``[B, C, F * hop]``, cut to ``length`` if given."""
        audio = self.decoder(self.quantizer.decode(codes))
        return audio if length is None else audio[..., :length]


def _check_level_overlap(config: ModelConfig) -> None:
    """ConfigError unless ``model.level_overlap`` (the level stage's crossfade) fits."""
    overlap = config.level_overlap
    if not overlap:
        return
    hop = math.prod(config.strides)
    if not (config.arch == "stft" and config.causal and config.level_bands
            and config.stereo == "lr" and 1 <= overlap <= hop - config.synthesis_overlap):
        raise ConfigError(f"model.level_overlap (the level stage's crossfade) needs a causal "
                          f"arch stft model with model.level_bands, channels as they come "
                          f"(stereo lr), and 1 to the hop less model.synthesis_overlap "
                          f"({hop - config.synthesis_overlap}) samples; got {overlap}")


def _id_fields(config: ModelConfig) -> dict:
    """The config as the model id hashes it. ``arch`` and ``n_fft`` came after models
    and compressed files were in use; a time-domain model leaves both out, so its id,
    and every file coded with it, stays what it was; so does every model without
    ``synthesis_overlap``, ``level_bands``, ``level_dropout``, more than one level codebook,
    ``level_overlap`` or a mid/side ``stereo``."""
    fields = asdict(config)
    if fields["arch"] == "seanet":
        del fields["arch"], fields["n_fft"]
    if not fields["synthesis_overlap"]:  # came after spectral models were in use
        del fields["synthesis_overlap"]
    if not fields["level_bands"]:  # likewise
        del fields["level_bands"]
    if not fields["level_dropout"]:  # likewise
        del fields["level_dropout"]
    if fields["level_codebooks"] == 1:  # likewise
        del fields["level_codebooks"]
    if not fields["level_overlap"]:  # likewise
        del fields["level_overlap"]
    if fields["stereo"] == "lr":  # likewise: channels as they come, as before it existed
        del fields["stereo"]
    return fields


def compute_model_id(model: Codec) -> str:
    """16 hex digits identifying a model's config and codebooks.

    Codes are only meaningful with the codebooks that made them, so the
    compressed file carries this id and decoding with another model is refused.
    Weight-norm folding and half-precision export leave the codebooks (float32
    buffers) and the config unchanged, so an exported model keeps its id.
    """
    digest = hashlib.sha256(json.dumps(_id_fields(model.config), sort_keys=True).encode())
    for layer in model.quantizer.layers:
        digest.update(layer.embed.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]
