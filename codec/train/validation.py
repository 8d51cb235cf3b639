"""Validation: the crops coded exactly as ``codec encode`` codes them, at each bitrate of
``train.valid_kbps``.

Each crop goes through :func:`codec.compress.encode` and :func:`codec.compress.decode`
with the run's loudness target and coding settings: the codebooks that ``--kbps`` picks
(codec/coding/bitrate.py), the band levels beside them, the level match and the
post-filter. So the 6 kbps curve in TensorBoard is of the file a user gets from
``codec encode --kbps 6`` with the run's checkpoint, and its figures are those
``eval.evaluate`` gives on the same audio. A bitrate is named by its nominal rate, codes
and band levels together (``valid/6kbps/...``); all codebooks are always validated.
"""
from __future__ import annotations

import contextlib
from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from codec import compress, metrics
from codec.coding import bitstream
from codec.coding.bitrate import codebooks_for_kbps, coded_kbps
from codec.errors import CodecError
from codec.network.model import Codec
from codec.network.quantize import codebook_usage
from codec.pretrained import PretrainedModel
from codec.train.monitor import Monitor
from codec.train.trainer import Trainer

# Validation crops the latent diagnostics look at: enough for a stable PCA and relevance
# probe, few enough to cost little next to validation itself.
DIAGNOSTIC_CROPS = 16
# The figures logged for each bitrate.
FIGURES = ("snr", "si_sdr", "rms_ratio", "mel_distance")


@dataclass(frozen=True)
class ValidRate:
    """A bitrate validation codes at: ``n_q`` codebooks, ``kbps`` with the band levels."""
    n_q: int
    kbps: float

    @property
    def label(self) -> str:
        return f"{self.kbps:g}kbps"


def valid_rates(model: PretrainedModel, kbps: Sequence[float]) -> list[ValidRate]:
    """The rates to validate: the codebooks ``codec encode --kbps`` picks for each
    ``train.valid_kbps`` entry the model can reach, and always all codebooks; by
    codebook count, without repeats."""
    network, coding = model.network, model.coding
    counts = {network.config.n_q}
    for rate in kbps:
        with contextlib.suppress(CodecError):  # below the model's lowest bitrate
            counts.add(codebooks_for_kbps(network, coding, rate))
    return [ValidRate(n_q, coded_kbps(network, coding, n_q)) for n_q in sorted(counts)]


def coding_model(t: Trainer, network: Codec) -> PretrainedModel:
    """``network`` as ``codec encode`` loads it from this run's checkpoints: coding at the
    run's loudness target with its coding settings."""
    return PretrainedModel.from_network(network, target_lufs=t.config.data.target_lufs,
                                        coding=t.config.coding)


def code_crop(model: PretrainedModel, crop: torch.Tensor,
              n_q: int) -> tuple[torch.Tensor, np.ndarray]:
    """A crop ``[C, T]`` at the model rate encoded to a ``.qca`` file's bytes and decoded
    back: (the decoded audio ``[C, T]``, the file's codes ``[items, n_q, frames]``)."""
    data = compress.encode(model, crop, model.sample_rate, n_q=n_q)
    decoded, _ = compress.decode(model, data)
    header, payload = bitstream.parse(data)
    return decoded, compress.payload_codes(header, payload[:header.codes_bytes], None)


def crop_figures(model: PretrainedModel, crops: Sequence[torch.Tensor],
                 rate: ValidRate) -> tuple[dict[str, float], list[np.ndarray]]:
    """The mean of each of ``FIGURES`` over ``crops`` coded at ``rate``, the decoded
    audio's peak, and the codes of each crop."""
    sums: dict[str, float] = defaultdict(float)
    peak, codes = 0.0, []
    for crop in crops:
        crop = crop.float().cpu()
        decoded, crop_codes = code_crop(model, crop, rate.n_q)
        found = metrics.measure(crop, decoded, model.sample_rate)
        for name in FIGURES:
            sums[name] += found[name]
        peak = max(peak, float(decoded.abs().max()))
        codes.append(crop_codes)
    figures = {name: sums[name] / max(len(crops), 1) for name in FIGURES}
    return figures | {"peak": peak}, codes


@torch.no_grad()
def validate(t: Trainer, clips: Sequence[torch.Tensor], monitor: Monitor,
             listening: Sequence[torch.Tensor] = ()) -> dict[str, float]:
    """Metrics over the validation crops at each validation bitrate, codebook usage,
    audio and mel images of the ``listening`` clips (the first
    ``train.valid_audio_clips`` crops without them), and the encoder's latent
    diagnostics (logged only).

    ``valid/score`` (lower is better; picks ``best`` unless ``train.best`` is
    ``latest``) is the mel distance averaged over the validated bitrates, so that a
    model good at one bitrate only does not win.

    Under ``train.weight_ema`` all of this is of the weight average, and the trained
    weights' metrics are logged beside it under ``valid_raw/``.
    """
    was_training = t.codec.training
    model = coding_model(t, t.validated_model())
    rates = valid_rates(model, t.config.train.valid_kbps)
    results = valid_metrics(model, clips, rates, "valid")
    if t.weight_average is not None:
        results |= valid_metrics(coding_model(t, t.codec), clips, rates, "valid_raw")
    monitor.scalars(results, t.step)
    _log_clips(t.step, model, listening or clips[:t.config.train.valid_audio_clips], rates,
               monitor)
    _log_latents(t.step, model.network, clips, monitor)
    monitor.flush()
    t.codec.train(was_training)
    return results


def valid_metrics(model: PretrainedModel, clips: Sequence[torch.Tensor],
                  rates: Sequence[ValidRate], prefix: str) -> dict[str, float]:
    """``validate``'s scalars for ``model``, named ``{prefix}/...``: each rate's figures
    under ``{prefix}/{rate.label}/``, the last (all codebooks) rate's also under
    ``{prefix}/``, the score, and each codebook's usage at the last rate."""
    results: dict[str, float] = {}
    codes: list[np.ndarray] = []
    for rate in rates:
        figures, codes = crop_figures(model, clips, rate)
        results |= {f"{prefix}/{rate.label}/{name}": value for name, value in figures.items()}
    results |= {f"{prefix}/{name}": results[f"{prefix}/{rates[-1].label}/{name}"]
                for name in (*FIGURES, "peak")}
    results[f"{prefix}/score"] = sum(
        results[f"{prefix}/{rate.label}/mel_distance"] for rate in rates) / len(rates)
    results |= _codebook_health(codes, model.config.codebook_size, prefix)
    return results


def _codebook_health(codes: list[np.ndarray], codebook_size: int,
                     prefix: str) -> dict[str, float]:
    """Usage and perplexity of each codebook over every crop's codes."""
    if not codes:
        return {}
    joined = torch.from_numpy(np.concatenate(
        [c.astype(np.int64).transpose(1, 0, 2).reshape(c.shape[1], -1) for c in codes], 1))
    results = {}
    for index in range(joined.shape[0]):
        usage, perplexity = codebook_usage(joined[index], codebook_size)
        results[f"codebook/{prefix}/{index}/usage"] = usage
        results[f"codebook/{prefix}/{index}/perplexity"] = perplexity
    return results


def _log_clips(step: int, model: PretrainedModel, clips: Sequence[torch.Tensor],
               rates: Sequence[ValidRate], monitor: Monitor) -> None:
    """Audio and mel images: originals once per process, decodings at every validation.
    Originals are ``0_original`` and decodings ``1_<kbps>``, so originals sort first."""
    if not monitor.enabled:
        return
    sample_rate = model.sample_rate
    first = not monitor.originals_logged
    for index, clip in enumerate(clips):
        clip = clip.float().cpu()
        if first:
            monitor.audio(f"audio/{index}/0_original", clip, sample_rate, step)
            monitor.mel_image(f"mel/{index}/0_original", clip, sample_rate, step)
        for rate in rates:
            decoded, _ = code_crop(model, clip, rate.n_q)
            tag = f"{index}/1_{rate.label}"
            monitor.audio(f"audio/{tag}", decoded, sample_rate, step)
            monitor.mel_image(f"mel/{tag}", decoded, sample_rate, step)
    monitor.originals_logged = True


def _log_latents(step: int, network: Codec, clips: Sequence[torch.Tensor],
                 monitor: Monitor) -> None:
    """Latent diagnostics (variance, PCA, rate, relevance; see codec.train.latents) on
    the first ``DIAGNOSTIC_CROPS`` validation crops of the first crop's length."""
    if not monitor.enabled or not clips:
        return
    crops = [c for c in clips[:DIAGNOSTIC_CROPS] if c.shape == clips[0].shape]
    if len(crops) >= 2:  # the relevance probe fits on half the crops, scores on the rest
        monitor.latent_diagnostics(network, torch.stack(crops), step)

