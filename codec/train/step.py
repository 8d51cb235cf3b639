"""One training step: forward, discriminator step on detached output, generator losses,
backward, clip, step; a step whose loss or gradient is not finite changes nothing.
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Iterator

import torch
from torch import nn

from codec.coding import band_levels
from codec.errors import CodecError
from codec.network.model import Codec
from codec.train.losses import (
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
    weighted_sum,
)
from codec.train.trainer import (
    OUTPUT_LOSSES,
    Trainer,
)


def _clip(parameters: Any, max_norm: float) -> torch.Tensor:
    """Clip to ``max_norm`` (<= 0: no clipping) and return the norm before clipping."""
    return torch.nn.utils.clip_grad_norm_(list(parameters), max_norm if max_norm > 0 else math.inf)


def _finite(*values: torch.Tensor) -> bool:
    return all(bool(torch.isfinite(v).all()) for v in values)


@contextlib.contextmanager
def _frozen(module: nn.Module) -> Iterator[None]:
    """No gradients into ``module``'s parameters (the generator's pass through the
    discriminator must not accumulate discriminator gradients)."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags, strict=True):
            p.requires_grad_(flag)


def _codebook_snapshot(codec: Codec) -> dict[str, torch.Tensor]:
    return {name: buf.clone() for name, buf in codec.quantizer.named_buffers()}


def _restore_codebooks(codec: Codec, snapshot: dict[str, torch.Tensor]) -> None:
    for name, buf in codec.quantizer.named_buffers():
        buf.copy_(snapshot[name])


def _skip_step(t: Trainer, snapshot: dict[str, torch.Tensor], part: str) -> dict[str, float]:
    """Undo what a non-finite step did (codebook EMA) and count it; stop after too many."""
    _restore_codebooks(t.codec, snapshot)
    t.optimizer.zero_grad(set_to_none=True)
    if t.disc_optimizer is not None:
        t.disc_optimizer.zero_grad(set_to_none=True)
    t.bad_steps += 1
    t.skipped_steps += 1
    limit = t.config.train.max_bad_steps
    if t.bad_steps >= limit:
        raise CodecError(
            f"stopped at step {t.step + 1}: {t.bad_steps} steps in a row had a non-finite "
            f"{part} loss or gradient norm (train.max_bad_steps={limit}). The weights were "
            f"never updated from them; lower train.lr, check the data for NaN or silent "
            f"files, or resume from an earlier checkpoint.")
    return {"skipped": 1.0}


def at_band_levels(t: Trainer, decoded: list[torch.Tensor],
                   audio: torch.Tensor) -> list[torch.Tensor]:
    """Each of ``decoded`` (``[B, C, T]`` outputs of one pass) with the same
    ``train.loss_at_band_levels`` share of its items (drawn afresh each step) brought to
    the band levels of ``audio``, differentiably."""
    share = t.config.train.loss_at_band_levels
    if not share:
        return decoded
    grid = band_levels.grid_for(t.config.coding, t.codec.sample_rate, t.codec.hop_length,
                                t.config.data.target_lufs)
    chosen = torch.rand(audio.shape[0]) < share
    if not chosen.any():
        return decoded
    levels = band_levels.measure(audio[chosen].reshape(-1, audio.shape[-1]), grid)
    return [_brought_to(output, chosen, levels, grid) for output in decoded]


def _brought_to(decoded: torch.Tensor, chosen: torch.Tensor, levels: torch.Tensor,
                grid: band_levels.LevelGrid) -> torch.Tensor:
    rows = decoded[chosen].float()
    flat = rows.reshape(-1, rows.shape[-1])
    matched = band_levels.brought_to(flat, levels, grid).reshape(rows.shape)
    out = decoded.clone()
    out[chosen] = matched.to(decoded.dtype)
    return out


def train_step(t: Trainer, audio: torch.Tensor) -> dict[str, float]:
    """One update on a batch ``[B, C, T]``; returns the scalars to log.

    A step whose loss or gradient norm is not finite (on any process) changes nothing:
    no optimiser step, and the quantiser's EMA codebooks, which update inside the
    forward pass, are put back. (If only the generator's part is non-finite, the
    discriminator's update of that step stands.)
    """
    weights = t.loss_weights()
    snapshot = _codebook_snapshot(t.codec)
    phase_only_hz = t.config.train.waveform_phase_only_hz
    with t.autocast():
        out = t.model(audio) if phase_only_hz is None else \
            t.model(audio, phase_only_above_hz=phase_only_hz)
    logs: dict[str, float] = dict(out.metrics)
    outputs = [out.audio] if out.phase_audio is None else [out.audio, out.phase_audio]
    decoded, *phase = at_band_levels(t, outputs, audio)

    use_disc = t.disc is not None and t.step >= t.config.train.disc_start_step
    if use_disc:
        disc_logs = _discriminator_step(t, audio, decoded)
        if disc_logs is None:
            return _skip_step(t, snapshot, "discriminator")
        logs.update(disc_logs)

    losses = _generator_losses(t, out.losses["commit"], decoded, audio, use_disc,
                               phase[0] if phase else None)
    total = weighted_sum(losses, weights)
    logs.update(_backward(t, losses, total, decoded))
    grad_norm = _clip(t.codec.parameters(), t.config.train.grad_clip)
    values = t.dist.mean(torch.stack([total.detach().float()]
                                     + [v.detach().float() for v in losses.values()]))
    if not _finite(values, grad_norm):
        return _skip_step(t, snapshot, "generator")
    t.optimizer.step()
    t.scheduler.step()
    if t.weight_average is not None:
        t.weight_average.update(t.codec)
    t.bad_steps = 0

    logs.update({f"loss/{name}": float(v) for name, v in zip(losses, values[1:], strict=True)})
    logs.update({"loss/total": float(values[0]), "grad_norm": float(grad_norm),
                 "lr": t.optimizer.param_groups[0]["lr"], "skipped": 0.0,
                 "late_loss": float(t.late_loss_active())})
    return logs


def _discriminator_step(t: Trainer, audio: torch.Tensor,
                        decoded: torch.Tensor) -> dict[str, float] | None:
    """Update the discriminator on real audio and the detached output (so that its loss
    never trains the codec); its logs, or None when its loss or gradient is not finite
    (nothing updated)."""
    train = t.config.train
    with t.autocast():
        d_loss = discriminator_loss(t.disc_model(audio), t.disc_model(decoded.detach()),
                                    train.adv_loss)
    t.disc_optimizer.zero_grad(set_to_none=True)
    d_loss.backward()
    d_norm = _clip(t.disc.parameters(), train.grad_clip)
    d_loss = t.dist.mean(d_loss.detach())
    if not _finite(d_loss, d_norm):
        return None
    t.disc_optimizer.step()
    t.disc_scheduler.step()
    return {"disc/loss": float(d_loss), "disc/grad_norm": float(d_norm)}


def _generator_losses(t: Trainer, commit: torch.Tensor, decoded: torch.Tensor,
                      audio: torch.Tensor, use_disc: bool,
                      phase_decoded: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Reconstruction terms (the waveform terms on ``phase_decoded`` when there is one),
    commitment, and the discriminator's verdict when it plays."""
    losses = dict(t.recon(decoded, audio, waveform_estimate=phase_decoded), commit=commit)
    if use_disc:
        with _frozen(t.disc), t.autocast():
            fake = t.disc(decoded)
            with torch.no_grad():
                real = t.disc(audio)
        losses["adv"] = generator_adversarial_loss(fake, t.config.train.adv_loss)
        losses["feat"] = feature_matching_loss(real, fake)
    return losses


def _backward(t: Trainer, losses: dict[str, torch.Tensor], total: torch.Tensor,
              decoded: torch.Tensor) -> dict[str, float]:
    """Gradients of ``total`` into the codec, or of each output loss rescaled by the
    balancer (whose gradient norms are returned to log)."""
    t.optimizer.zero_grad(set_to_none=True)
    if t.balancer is None:
        total.backward()
        return {}
    weights = t.loss_weights()
    commit = losses["commit"] * weights.commit if weights.commit else None
    balanced = {k: v for k, v in losses.items() if k in OUTPUT_LOSSES}
    norms = t.balancer.backward(balanced, decoded, other=commit)
    return {f"balancer/{k}_grad_norm": v for k, v in norms.items()}
