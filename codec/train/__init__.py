"""Training: ``codec train CONFIG.yaml [key=value ...]`` (also ``python -m codec.train``).

The loop in one breath: build the model, the optional discriminator, their AdamW
optimisers and warmup+cosine schedules; resume from the run's newest readable
checkpoint if there is one, or else start from ``train.init_from``'s weights
(codec/train/finetune.py); then for each step take the batch whose indices are
``step * batch_size + j`` (so the step *is* the data position), run ``train_step``,
log, validate, checkpoint. Rerunning the same command resumes the run.

Randomness (quantiser dropout, k-means seeding) is reseeded at every step from
``(train.seed, step, rank)``, so a resumed run draws exactly what the uninterrupted
one would have, on any number of processes, without carrying RNG states around.

Distributed: start with ``torchrun --nproc_per_node N -m codec.train CONFIG``. Each
process takes its own slice of every batch (``data.batch_size`` is the global
batch); gradients are averaged by DistributedDataParallel; the quantiser averages
its EMA statistics itself; only rank 0 validates, logs and saves.
"""
from __future__ import annotations

import contextlib
import math
import os
import time
import warnings
from collections import defaultdict
from dataclasses import dataclass, field, fields, replace
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch
import torch.distributed as dist
from torch import nn

from codec import checkpoint as ckpt
from codec.coding import band_levels
from codec.config import Config, ConfigError, LossWeights, TrainConfig, save_yaml, to_yaml
from codec.errors import CodecError
from codec.network.model import Codec, compute_model_id
from codec.provenance import collect as collect_provenance
from codec.train import finetune
from codec.train.losses import (
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
    weighted_sum,
)
from codec.train.monitor import Monitor
from codec.train.step_rate import StepRate
from codec.train.threads import ThreadTuner
from codec.train.weight_average import WeightAverage

LR_DECAYS = ("cosine", "linear", "constant")
# Validation crops the latent diagnostics look at: enough for a stable PCA and relevance
# probe, few enough to cost little next to validation itself.
DIAGNOSTIC_CROPS = 16
# What best/ holds: the lowest validation mel distance, or the newest validated model
# (for runs whose learning rate decays to the end, or whose loss changes late).
BEST_CHOICES = ("mel_distance", "latest")
# Losses computed from the decoded audio; the balancer rescales their gradients there.
OUTPUT_LOSSES = ("mrstft", "mel", "l1", "rms", "snr", "band_snr", "excess", "stoi", "adv",
                 "feat")


# ---------------------------------------------------------------------------
# Processes and devices


@dataclass
class Distributed:
    """Where this process sits in a torchrun job (rank 0 of 1 when run alone)."""
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The average of ``value`` over processes (non-finite anywhere stays non-finite)."""
        if self.world_size > 1:
            value = value.clone()
            dist.all_reduce(value)
            value /= self.world_size
        return value

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every process if ``flag`` is True on any, so all stop together."""
        if self.world_size == 1:
            return flag
        tensor = torch.tensor(float(flag), device=device)
        dist.all_reduce(tensor)
        return bool(tensor > 0)

    def max(self, value: float, device: torch.device) -> float:
        """The largest ``value`` over processes, the same on every process."""
        if self.world_size == 1:
            return value
        tensor = torch.tensor(value, dtype=torch.float64, device=device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return float(tensor)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise CodecError(f"train.device={name} but no CUDA device is available")
    return torch.device(name)


def init_distributed(device_name: str) -> tuple[Distributed, torch.device]:
    """Join the torchrun job described by the environment, if any (nccl on CUDA, else gloo)."""
    device = resolve_device(device_name)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Distributed(), device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size()), device


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for float32. ``auto``: bf16 on CUDA, float32 elsewhere."""
    if precision not in ("auto", "fp32", "bf16"):
        raise CodecError(f"train.precision must be auto, fp32 or bf16, got {precision!r}")
    if precision == "auto":
        bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if bf16 else None
    return torch.bfloat16 if precision == "bf16" else None


def seed_step(seed: int, step: int, rank: int, world_size: int) -> None:
    """Seed torch from (seed, step, rank): each step's draws are a function of where it is."""
    torch.manual_seed((seed + 1_000_003 * (step * world_size + rank + 1)) % (1 << 63))


# ---------------------------------------------------------------------------
# Learning-rate schedule and data order


def lr_factor(step: int, *, warmup: int, total: int, min_ratio: float, decay: str,
              budget_used: float = 0.0) -> float:
    """Multiplier of the base learning rate after ``step`` updates: linear warmup over
    ``warmup`` updates, then ``decay`` down to ``min_ratio`` at ``total``, or at the end
    of the time budget if that comes first (``budget_used``: the share of it spent)."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(max((step - warmup) / max(total - warmup, 1), budget_used), 1.0)
    if decay == "cosine":
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    if decay == "linear":
        return 1 - (1 - min_ratio) * progress
    return 1.0


def make_schedule(optimizer: torch.optim.Optimizer, config: Config, total: int,
                  budget_used: Callable[[], float] = lambda: 0.0,
                  ) -> torch.optim.lr_scheduler.LambdaLR:
    """``lr_factor`` as a scheduler; ``budget_used()`` is read at every step, so that a
    run with ``train.max_minutes`` ends its decay when its time does, on any machine."""
    train = config.train
    if train.lr_decay not in LR_DECAYS:
        raise CodecError(f"train.lr_decay must be one of {LR_DECAYS}, got {train.lr_decay!r}")
    factor = partial(lr_factor, warmup=train.warmup_steps, total=total,
                     min_ratio=train.min_lr_ratio, decay=train.lr_decay)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: factor(step, budget_used=budget_used()))


class StepBatches(torch.utils.data.Sampler):
    """Index lists for steps ``start .. stop - 1``: step s on rank r of w takes
    ``s * batch_size + r * (batch_size / w) + j``, so every index is used once and the
    data position is the step."""

    def __init__(self, start: int, stop: int, batch_size: int, dataset_size: int,
                 rank: int = 0, world_size: int = 1):
        if batch_size % world_size:
            raise CodecError(f"data.batch_size={batch_size} must be divisible by the number "
                             f"of processes ({world_size})")
        self.start, self.stop, self.size = start, stop, dataset_size
        self.batch_size, self.local = batch_size, batch_size // world_size
        self.offset = rank * self.local

    def __len__(self) -> int:
        return max(self.stop - self.start, 0)

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.stop):
            first = step * self.batch_size + self.offset
            yield [(first + j) % self.size for j in range(self.local)]


def build_datasets(config: Config) -> tuple[Any, list[torch.Tensor]]:
    """(train dataset, validation crops ``[C, T]``) from the ``data`` section.

    The crops are read once and kept in memory. Without ``data.valid`` the run
    validates on crops from the far end of the training stream, which the sampler
    never reaches in practice (but they come from the training files: a warning says so).
    """
    from codec.train import data

    train_set, valid_set = data.build_datasets(config.data, config.model.sample_rate,
                                               config.model.channels, config.train.seed)
    if valid_set is None:
        warnings.warn("data.valid is empty: validating on crops of the training files; "
                      "give a held-out manifest for honest numbers", stacklevel=2)
        last = len(train_set) - 1
        return train_set, [train_set[last - i] for i in range(config.data.valid_crops)]
    return train_set, [valid_set[i] for i in range(len(valid_set))]


def listening_clips(config: Config) -> list[torch.Tensor]:
    """``train.valid_audio_clips`` clips ``[C, T]`` of ``train.listen_seconds`` (the most
    salient stretch; shorter files whole) from the validation files, one group after
    another, for TensorBoard's audio and mel images: long enough to judge by ear,
    unlike validation crops. Empty without ``data.valid``."""
    from codec.train.data import ValidCrops

    data, train = config.data, config.train
    if not data.valid or train.valid_audio_clips <= 0:
        return []
    clips = ValidCrops(data.valid, config.model.sample_rate, config.model.channels,
                       count=train.valid_audio_clips, segment_seconds=train.listen_seconds,
                       target_lufs=data.target_lufs, salient_min_db=data.salient_min_db,
                       salient_retries=data.salient_retries, seed=train.seed)
    result = []
    for index in range(len(clips)):
        row = int(clips.rows[index % len(clips.rows)])
        seconds = int(clips.manifest.frames[row]) / int(clips.manifest.sample_rates[row])
        result.append(clips[index][:, :math.ceil(seconds * config.model.sample_rate)])
    return result


# ---------------------------------------------------------------------------
# The trainer and one step


@dataclass
class Trainer:
    """Everything a training step changes, and what it needs to change it."""
    config: Config
    codec: Codec                       # the model itself: what is saved and validated
    model: nn.Module                   # codec, or its DistributedDataParallel wrapper
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    recon: nn.Module
    device: torch.device
    dist: Distributed = field(default_factory=Distributed)
    autocast_dtype: torch.dtype | None = None
    disc: nn.Module | None = None      # the discriminator itself
    disc_model: nn.Module | None = None  # disc, or its DDP wrapper
    disc_optimizer: torch.optim.Optimizer | None = None
    disc_scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    balancer: Any = None
    step: int = 0
    best_score: float = math.inf
    bad_steps: int = 0                 # non-finite steps in a row
    skipped_steps: int = 0             # non-finite steps in all
    trained_seconds: float = 0.0       # wall-clock time in the training loop, all runs
    weight_average: WeightAverage | None = None  # train.weight_ema
    origin: dict | None = None         # train.init_from: path and model id of the source
    # codec.provenance.collect() of each invocation that trained this run, oldest first.
    provenance: list[dict] = field(default_factory=list)

    def budget_used(self) -> float:
        """Share of ``train.max_minutes`` spent so far (0 without a time budget)."""
        minutes = self.config.train.max_minutes
        return self.trained_seconds / (60 * minutes) if minutes > 0 else 0.0

    def progress(self) -> float:
        """Share of the run done: of ``train.steps``, or of the time budget if more."""
        return max(self.step / max(self.config.train.steps, 1), self.budget_used())

    def late_loss_active(self) -> bool:
        """Whether ``train.late_loss`` is in force: ``train.late_loss_from`` of the run done."""
        train = self.config.train
        return bool(train.late_loss) and self.progress() >= train.late_loss_from

    def loss_weights(self) -> LossWeights:
        """The ``loss`` section, with ``train.late_loss`` laid over it once in force."""
        if self.late_loss_active():
            return replace(self.config.loss, **self.config.train.late_loss)
        return self.config.loss

    def validated_model(self) -> Codec:
        """What validation, best/ and checkpoints' model files hold: the weight average
        (``train.weight_ema``) when on, else the model itself."""
        if self.weight_average is None:
            return self.codec
        return self.weight_average.averaged(self.codec)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)


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


def at_band_levels(t: Trainer, decoded: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
    """``decoded`` ``[B, C, T]`` with a ``train.loss_at_band_levels`` share of its items
    (drawn afresh each step) brought to the band levels of ``audio``, differentiably."""
    share = t.config.train.loss_at_band_levels
    if not share:
        return decoded
    grid = band_levels.grid_for(t.config.model, t.codec.hop_length, t.config.data.target_lufs)
    chosen = torch.rand(decoded.shape[0]) < share
    if not chosen.any():
        return decoded
    rows = decoded[chosen].float()
    flat = rows.reshape(-1, rows.shape[-1])
    levels = band_levels.measure(audio[chosen].reshape(flat.shape), grid)
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
    train, weights, late = t.config.train, t.loss_weights(), t.late_loss_active()
    snapshot = _codebook_snapshot(t.codec)
    with t.autocast():
        out = t.model(audio)
    logs: dict[str, float] = dict(out.metrics)
    decoded = at_band_levels(t, out.audio, audio)

    # Discriminator step on detached output, so that its loss never trains the codec.
    use_disc = t.disc is not None and t.step >= train.disc_start_step
    if use_disc:
        with t.autocast():
            d_loss = discriminator_loss(t.disc_model(audio), t.disc_model(decoded.detach()),
                                        train.adv_loss)
        t.disc_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        d_norm = _clip(t.disc.parameters(), train.grad_clip)
        d_loss = t.dist.mean(d_loss.detach())
        if not _finite(d_loss, d_norm):
            return _skip_step(t, snapshot, "discriminator")
        t.disc_optimizer.step()
        t.disc_scheduler.step()
        logs.update({"disc/loss": float(d_loss), "disc/grad_norm": float(d_norm)})

    # Generator losses: reconstruction, commitment, and the discriminator's verdict.
    losses = dict(t.recon(decoded, audio), commit=out.losses["commit"])
    if use_disc:
        with _frozen(t.disc), t.autocast():
            fake = t.disc(decoded)
            with torch.no_grad():
                real = t.disc(audio)
        losses["adv"] = generator_adversarial_loss(fake, train.adv_loss)
        losses["feat"] = feature_matching_loss(real, fake)
    total = weighted_sum(losses, weights)

    t.optimizer.zero_grad(set_to_none=True)
    if t.balancer is None:
        total.backward()
    else:
        commit = losses["commit"] * weights.commit if weights.commit else None
        balanced = {k: v for k, v in losses.items() if k in OUTPUT_LOSSES}
        norms = t.balancer.backward(balanced, decoded, other=commit)
        logs.update({f"balancer/{k}_grad_norm": v for k, v in norms.items()})
    grad_norm = _clip(t.codec.parameters(), train.grad_clip)
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
                 "late_loss": float(late)})
    return logs

# ---------------------------------------------------------------------------
# Building, saving and resuming


def build_trainer(config: Config, device: torch.device | str = "cpu",
                  distributed: Distributed | None = None,
                  network: nn.Module | None = None) -> Trainer:
    """Model, discriminator, optimisers, schedules and losses for ``config`` (no DDP yet).

    ``network``: the module to train instead of a new Codec of ``config.model`` (the
    benchmark times other codecs' steps with the same code); it must look like a Codec
    to :func:`train_step`."""
    from codec.network.discriminators import build_discriminator
    from codec.train.balancer import Balancer

    train, device = config.train, torch.device(device)
    check_train_options(config)
    torch.manual_seed(train.seed)  # the same initial weights on every process
    codec = (Codec(config.model) if network is None else network).to(device)
    optimizer = _adamw(finetune.freeze(codec, train.freeze), train.lr, train, device)
    t = Trainer(config=config, codec=codec, model=codec, optimizer=optimizer, scheduler=None,
                recon=_reconstruction_loss(config).to(device), device=device,
                dist=distributed or Distributed(),
                autocast_dtype=resolve_precision(train.precision, device))
    t.scheduler = make_schedule(optimizer, config, train.steps, t.budget_used)
    try:
        disc = build_discriminator(tuple(train.disc), config.model.channels,
                                   train.disc_filters)
    except ValueError as error:
        raise CodecError(f"train.disc: {error}") from None
    if disc is not None:
        t.disc = t.disc_model = disc.to(device)
        t.disc_optimizer = _adamw(disc.parameters(), train.disc_lr, train, device)
        t.disc_scheduler = make_schedule(t.disc_optimizer, config,
                                         max(train.steps - train.disc_start_step, 1),
                                         t.budget_used)
    if train.balancer:
        t.balancer = Balancer({k: getattr(config.loss, k) for k in OUTPUT_LOSSES})
    if train.weight_ema:
        t.weight_average = WeightAverage(codec, train.weight_ema)
    return t


def _adamw(parameters: Any, lr: float, train: TrainConfig,
           device: torch.device) -> torch.optim.AdamW:
    """AdamW with the run's betas and weight decay. On CPU and CUDA it uses the fused
    kernel: on a CPU one call updates every parameter in a third of the time of the
    per-parameter loop (about 4 ms against 11 ms for the small preset)."""
    return torch.optim.AdamW(parameters, lr=lr, betas=tuple(train.betas),
                             weight_decay=train.weight_decay,
                             fused=device.type in ("cpu", "cuda"))


def _reconstruction_loss(config: Config) -> nn.Module:
    """The reconstruction terms for ``config``; ConfigError for a bad waveform_max_hz,
    band_snr resolution or excess floor."""
    from codec.train.losses import ReconstructionLoss
    train = config.train
    try:
        return ReconstructionLoss(config.model.sample_rate,
                                  waveform_max_hz=train.waveform_max_hz,
                                  band_snr_seconds=train.band_snr_seconds,
                                  band_snr_bands=train.band_snr_bands,
                                  excess_floor_db=train.excess_floor_db,
                                  stoi=_weighs_stoi(config))
    except ValueError as error:
        # Each of these messages starts with the argument's name, the train option's.
        raise ConfigError(f"train.{error}") from None


def _weighs_stoi(config: Config) -> bool:
    """Whether the stoi term has weight in the run's loss or its late phase."""
    return bool(config.loss.stoi or config.train.late_loss.get("stoi", 0.0))


def check_train_options(config: Config) -> None:
    """ConfigError for a ``train.best``, ``train.freeze``, ``train.weight_ema``,
    ``train.loss_at_band_levels`` or ``train.late_loss`` that could not be applied as
    written."""
    train = config.train
    if train.best not in BEST_CHOICES:
        raise ConfigError(f"train.best must be one of {BEST_CHOICES}, got {train.best!r}")
    finetune.check_freeze(train.freeze)
    if not 0 <= train.loss_at_band_levels <= 1:
        raise ConfigError(f"train.loss_at_band_levels is a share of the items, in [0, 1]; "
                          f"got {train.loss_at_band_levels}")
    if train.loss_at_band_levels and not config.model.band_levels:
        raise ConfigError("train.loss_at_band_levels needs levels to bring the output to: "
                          "set model.band_levels (bands) or leave it at 0")
    if train.weight_ema is not None and not 0 <= train.weight_ema < 1:
        raise ConfigError(f"train.weight_ema is a decay in [0, 1) (0 or null: off), got "
                          f"{train.weight_ema}")
    if not train.late_loss:
        return
    known = {f.name for f in fields(LossWeights)}
    unknown = sorted(set(train.late_loss) - known)
    if unknown:
        raise ConfigError(f"train.late_loss: unknown loss name(s) {unknown}; known: "
                         f"{sorted(known)}")
    if not 0 <= train.late_loss_from <= 1:
        raise ConfigError(f"train.late_loss_from is a share of the run, in [0, 1]; got "
                         f"{train.late_loss_from}")
    if train.balancer:
        raise ConfigError("train.late_loss cannot be used with train.balancer (the balancer "
                         "fixes each loss's share of the gradient when it is built)")


def wrap_distributed(t: Trainer) -> None:
    """Wrap codec and discriminator in DistributedDataParallel (after resuming, so that
    every process starts from rank 0's weights, which DDP broadcasts)."""
    if t.dist.world_size == 1:
        return
    from torch.nn.parallel import DistributedDataParallel

    ids = [t.device.index] if t.device.type == "cuda" else None
    # The quantiser all-reduces its own EMA statistics, so its buffers agree already.
    t.model = DistributedDataParallel(t.codec, device_ids=ids, broadcast_buffers=False)
    if t.disc is not None:
        t.disc_model = DistributedDataParallel(t.disc, device_ids=ids, broadcast_buffers=False)


def train_state(t: Trainer) -> dict:
    """The nested state a checkpoint needs to resume exactly (besides the model weights)."""
    state: dict[str, Any] = {
        "optimizer": t.optimizer.state_dict(), "scheduler": t.scheduler.state_dict(),
        "best_score": t.best_score, "bad_steps": t.bad_steps,
        "skipped_steps": t.skipped_steps, "trained_seconds": t.trained_seconds,
    }
    if t.disc is not None:
        state.update(disc=t.disc.state_dict(), disc_optimizer=t.disc_optimizer.state_dict(),
                     disc_scheduler=t.disc_scheduler.state_dict())
    if t.balancer is not None:
        state["balancer"] = t.balancer.state_dict()  # running averages of gradient norms
    if t.weight_average is not None:
        # model.safetensors holds the average (what is validated and used); the weights
        # being trained go here.
        state["weight_average"] = {**t.weight_average.state_dict(),
                                   "trained_model": t.codec.state_dict()}
    return state


def _restore_weights(t: Trainer, checkpoint: ckpt.Checkpoint) -> None:
    """The trained weights and their average, whether or not the checkpoint's run (or
    this one) averages: without an average, model.safetensors holds the trained weights."""
    saved = (checkpoint.train_state or {}).get("weight_average")
    t.codec.load_state_dict(saved["trained_model"] if saved else checkpoint.model_state)
    if t.weight_average is not None and saved:
        t.weight_average.load_state_dict(saved, checkpoint.model_state)
    elif t.weight_average is not None:
        t.weight_average.reset(t.codec)


def start_from(t: Trainer, path: str | Path) -> finetune.Transfer:
    """Load the weights of the model at ``path`` (``train.init_from``) into a new run;
    its optimiser state and step count stay as built (fresh)."""
    source = finetune.read_source(path)
    transfer = finetune.transfer(t.codec, source)
    t.origin = source.origin()
    if t.weight_average is not None:
        t.weight_average.reset(t.codec)
    return transfer


def restore(t: Trainer, checkpoint: ckpt.Checkpoint) -> None:
    """Load a checkpoint into ``t``: ConfigMismatchError naming the fields if the model
    differs, CheckpointError if its state does not fit (``t`` may then be half loaded)."""
    ckpt.check_model_config(t.config.model, checkpoint)
    state = checkpoint.train_state
    if not isinstance(state, dict) or not {"optimizer", "scheduler"} <= set(state):
        raise ckpt.CheckpointError(f"{checkpoint.path}: no training state to resume from")
    try:
        _load_state(t, checkpoint, state)
    except (KeyError, ValueError, TypeError, RuntimeError, IndexError) as error:
        first_line = (str(error).strip().splitlines() or [""])[0]
        raise ckpt.CheckpointError(f"{checkpoint.path}: does not fit this run "
                                   f"({type(error).__name__}: {first_line})") from None


def _load_state(t: Trainer, checkpoint: ckpt.Checkpoint, state: dict) -> None:
    _restore_weights(t, checkpoint)
    t.optimizer.load_state_dict(state["optimizer"])
    t.scheduler.load_state_dict(state["scheduler"])
    if t.disc is not None and "disc" in state:
        t.disc.load_state_dict(state["disc"])
        t.disc_optimizer.load_state_dict(state["disc_optimizer"])
        t.disc_scheduler.load_state_dict(state["disc_scheduler"])
    if t.balancer is not None and "balancer" in state:
        t.balancer.load_state_dict(state["balancer"])
    t.step = checkpoint.step
    t.best_score = float(state.get("best_score", math.inf))
    t.bad_steps = int(state.get("bad_steps", 0))
    t.skipped_steps = int(state.get("skipped_steps", 0))
    t.trained_seconds = float(state.get("trained_seconds", 0.0))
    t.origin = checkpoint.meta.get("init_from")
    t.provenance = list(checkpoint.meta.get("provenance", [])) + t.provenance


def run_facts(t: Trainer) -> dict:
    """What meta.json records about the run besides its state: provenance of each
    invocation (git commit, package versions, command line), wall time, skipped steps."""
    return {"provenance": t.provenance, "trained_seconds": round(t.trained_seconds, 3),
            "skipped_steps": t.skipped_steps}


def resume(build: Callable[[], Trainer],
           run_dir: Path) -> tuple[Trainer, ckpt.Checkpoint | None]:
    """A trainer from ``build()``, restored from the newest checkpoint of ``run_dir``
    that can be resumed from: each damaged one is skipped with a warning naming it (and
    a trainer half loaded from it is built again). ConfigMismatchError if the run's
    model configuration has changed."""
    t = build()
    for directory in reversed(ckpt.list_checkpoints(run_dir)):
        try:
            checkpoint = ckpt.read_checkpoint(directory)
        except ckpt.CheckpointError as error:
            warnings.warn(f"skipping damaged checkpoint: {error}", stacklevel=2)
            continue
        try:
            restore(t, checkpoint)
            return t, checkpoint
        except ckpt.ConfigMismatchError:
            raise
        except ckpt.CheckpointError as error:
            warnings.warn(f"skipping damaged checkpoint: {error}", stacklevel=2)
            t = build()
    return t, None


def save(t: Trainer, metrics: dict[str, float], *, best: bool) -> None:
    """A step checkpoint (pruned to ``train.keep_last``), and ``best`` if it improved."""
    run_dir, model = Path(t.config.run_dir), t.validated_model()
    model_id = compute_model_id(model)
    ckpt.save_checkpoint(run_dir / ckpt.CHECKPOINTS_DIR / ckpt.step_dir_name(t.step),
                         model_state=model.state_dict(), config=t.config, step=t.step,
                         model_id=model_id, metrics=metrics, train_state=train_state(t),
                         origin=t.origin, facts=run_facts(t))
    ckpt.prune_checkpoints(run_dir, t.config.train.keep_last)
    if best:
        ckpt.save_checkpoint(run_dir / ckpt.BEST_DIR, model_state=model.state_dict(),
                             config=t.config, step=t.step, model_id=model_id, metrics=metrics,
                             origin=t.origin, facts=run_facts(t))


# ---------------------------------------------------------------------------
# Validation


def valid_bitrates(codec: Codec, kbps: Sequence[float]) -> list[int]:
    """Codebook counts to validate: one per ``train.valid_kbps`` entry the model can
    reach, and always all codebooks; sorted, without repeats."""
    counts = {codec.config.n_q}
    for rate in kbps:
        with contextlib.suppress(ValueError):  # below the model's lowest bitrate
            counts.add(codec.n_q_for_kbps(rate))
    return sorted(counts)


def _batches(clips: Sequence[torch.Tensor], size: int) -> Iterator[torch.Tensor]:
    """Clips ``[C, T]`` stacked into ``[B, C, T]`` batches (clips of other lengths alone)."""
    for start in range(0, len(clips), size):
        chunk = clips[start:start + size]
        if len({c.shape for c in chunk}) == 1:
            yield torch.stack(chunk)
        else:
            yield from (c[None] for c in chunk)


@torch.no_grad()
def validate(t: Trainer, clips: Sequence[torch.Tensor], monitor: Monitor,
             listening: Sequence[torch.Tensor] = ()) -> dict[str, float]:
    """Metrics over the validation crops at each validation bitrate, codebook usage,
    audio and mel images of the ``listening`` clips (see :func:`listening_clips`; the
    first ``train.valid_audio_clips`` crops without them), and the encoder's latent
    diagnostics (logged only).

    ``valid/score`` (lower is better; picks ``best`` unless ``train.best`` is
    ``latest``) is the mel distance averaged over the validated bitrates, so that a
    model good at one bitrate only does not win.

    Under ``train.weight_ema`` all of this is of the weight average, and the trained
    weights' metrics are logged beside it under ``valid_raw/``.
    """
    was_training = t.codec.training
    t.codec.eval()
    codec = t.validated_model()
    counts = valid_bitrates(codec, t.config.train.valid_kbps)
    results = _valid_metrics(t, codec, clips, counts, "valid")
    if t.weight_average is not None:
        results |= _valid_metrics(t, t.codec, clips, counts, "valid_raw")
    monitor.scalars(results, t.step)
    _log_clips(t, codec, listening or clips[:t.config.train.valid_audio_clips], counts,
               monitor)
    _log_latents(t, codec, clips, monitor)
    monitor.flush()
    t.codec.train(was_training)
    return results


def _valid_metrics(t: Trainer, codec: Codec, clips: Sequence[torch.Tensor], counts: list[int],
                   prefix: str) -> dict[str, float]:
    """``validate``'s scalars for ``codec`` (eval mode), named ``{prefix}/...``."""
    from codec import metrics as M
    from codec.network.quantize import codebook_usage

    sample_rate = codec.sample_rate
    sums: dict[str, float] = defaultdict(float)
    peaks = {n_q: 0.0 for n_q in counts}
    all_codes = []
    for batch in _batches(list(clips), t.config.data.batch_size):
        reference = batch.to(t.device)
        for n_q in counts:
            with t.autocast():
                codes = codec.encode(reference, n_q)
                decoded = codec.decode(codes, reference.shape[-1]).float()
            if n_q == codec.config.n_q:
                all_codes.append(codes.cpu())
            ref, est = reference.cpu(), decoded.cpu()
            for i in range(len(ref)):
                sums[f"{n_q}/snr"] += M.snr(ref[i], est[i])
                sums[f"{n_q}/si_sdr"] += M.si_sdr(ref[i], est[i])
                sums[f"{n_q}/rms_ratio"] += M.rms_ratio(ref[i], est[i])
            sums[f"{n_q}/mel_distance"] += M.mel_distance(ref, est, sample_rate) * len(ref)
            peaks[n_q] = max(peaks[n_q], float(est.abs().max()))

    results: dict[str, float] = {}
    for n_q in counts:
        label = f"{prefix}/{codec.bitrate(n_q) / 1000:g}kbps"
        for name in ("snr", "si_sdr", "rms_ratio", "mel_distance"):
            results[f"{label}/{name}"] = sums[f"{n_q}/{name}"] / len(clips)
        results[f"{label}/peak"] = peaks[n_q]
    full = f"{prefix}/{codec.bitrate() / 1000:g}kbps"
    for name in ("snr", "si_sdr", "rms_ratio", "mel_distance", "peak"):
        results[f"{prefix}/{name}"] = results[f"{full}/{name}"]
    results[f"{prefix}/score"] = sum(
        results[f"{prefix}/{codec.bitrate(n) / 1000:g}kbps/mel_distance"]
        for n in counts) / len(counts)
    codes = torch.cat([c.transpose(0, 1).reshape(c.shape[1], -1) for c in all_codes], dim=1)
    for index in range(codes.shape[0]):
        usage, perplexity = codebook_usage(codes[index], codec.config.codebook_size)
        results[f"codebook/{prefix}/{index}/usage"] = usage
        results[f"codebook/{prefix}/{index}/perplexity"] = perplexity
    return results


def _log_clips(t: Trainer, codec: Codec, clips: Sequence[torch.Tensor], counts: list[int],
               monitor: Monitor) -> None:
    """Audio and mel images: originals once per process, decodings at every validation.
    Originals are ``0_original`` and decodings ``1_<kbps>``, so originals sort first."""
    if not monitor.enabled:
        return
    sample_rate = codec.sample_rate
    first = not monitor.originals_logged
    for index, clip in enumerate(clips):
        if first:
            monitor.audio(f"audio/{index}/0_original", clip, sample_rate, t.step)
            monitor.mel_image(f"mel/{index}/0_original", clip, sample_rate, t.step)
        for n_q in counts:
            with t.autocast():
                audio = clip[None].to(t.device)
                decoded = codec.decode(codec.encode(audio, n_q), clip.shape[-1])[0].float()
            tag = f"{index}/1_{codec.bitrate(n_q) / 1000:g}kbps"
            monitor.audio(f"audio/{tag}", decoded, sample_rate, t.step)
            monitor.mel_image(f"mel/{tag}", decoded, sample_rate, t.step)
    monitor.originals_logged = True


def _log_latents(t: Trainer, codec: Codec, clips: Sequence[torch.Tensor],
                 monitor: Monitor) -> None:
    """Latent diagnostics (variance, PCA, rate, relevance; see codec.train.latents) on the
    first ``DIAGNOSTIC_CROPS`` validation crops of the first crop's length."""
    if not monitor.enabled or not clips:
        return
    crops = [c for c in clips[:DIAGNOSTIC_CROPS] if c.shape == clips[0].shape]
    if len(crops) >= 2:  # the relevance probe fits on half the crops, scores on the rest
        monitor.latent_diagnostics(codec, torch.stack(crops), t.step)


# ---------------------------------------------------------------------------
# The loop


@dataclass
class TrainResult:
    """How a call to :func:`fit` ended. ``model`` is the trained codec (train mode)."""
    step: int
    stopped: str                       # "steps", "time" or "done" (nothing left to train)
    metrics: dict[str, float]
    skipped_steps: int
    model: Codec


class _Averages:
    """Running means of the logged scalars between two log steps."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)

    def add(self, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.sums[key] += float(value)
            self.counts[key] += 1

    def pop(self) -> dict[str, float]:
        means = {k: self.sums[k] / self.counts[k] for k in self.sums}
        self.sums.clear()
        self.counts.clear()
        return means


def _train_tags(values: dict[str, float]) -> dict[str, float]:
    """Training scalars under ``train/``; codebook health under ``codebook/train/``, beside
    validation's ``codebook/valid/``."""
    return {(f"train/{k}" if not k.startswith("codebook/")
             else f"codebook/train/{k.removeprefix('codebook/')}"): v
            for k, v in values.items()}


# The settings the hparams table shows, beside the final validation metrics.
HPARAMS = ("model.preset", "model.n_q", "model.codebook_size", "model.causal", "data.batch_size",
           "data.segment_seconds", "train.steps", "train.max_minutes", "train.lr",
           "train.disc", "train.balancer", "train.late_loss")


def hparams(config: Config) -> dict[str, Any]:
    """``HPARAMS`` and the loss weights of ``config``, as plain values (tuples and
    dicts as text), for TensorBoard's hparams table."""
    values: dict[str, Any] = {}
    for key in HPARAMS:
        section, name = key.split(".")
        values[key] = getattr(getattr(config, section), name)
    values |= {f"loss.{f.name}": getattr(config.loss, f.name) for f in fields(config.loss)}
    return {k: v if isinstance(v, (bool, int, float, str)) else str(v)
            for k, v in values.items()}


def progress_bar(t: Trainer, *, enabled: bool) -> Any:
    """A bar over ``train.steps``, or, under a time budget (``train.max_minutes``), over
    its seconds, so that its estimate of the time left follows the budget."""
    from tqdm import tqdm

    train = t.config.train
    common = dict(disable=not enabled, dynamic_ncols=True, mininterval=2.0)
    if train.max_minutes <= 0:
        return tqdm(total=train.steps, initial=t.step, unit="step", **common)
    return tqdm(total=60 * train.max_minutes, initial=t.trained_seconds, unit="s",
                bar_format="{l_bar}{bar}| {elapsed}<{remaining}{postfix}", **common)


def advance(bar: Any, t: Trainer, postfix: dict[str, Any]) -> None:
    """Move the bar on by the step just done (or, under a time budget, by the seconds it
    took), and refresh the step count and time left shown beside it."""
    train = t.config.train
    if train.max_minutes <= 0:
        bar.set_postfix(postfix, refresh=False)
        bar.update(1)
        return
    left = max(60 * train.max_minutes - t.trained_seconds, 0.0)
    postfix.update(step=f"{t.step}/{train.steps}", left=f"{left / 60:.1f}min")
    bar.set_postfix(postfix, refresh=False)
    bar.update(min(t.trained_seconds, bar.total) - bar.n)


def _watch_speed(rate: StepRate, tuner: ThreadTuner, bar: Any, step: int) -> None:
    """Time the step just done; let the tuner pick the thread count; say on the progress
    bar (``None`` on processes that print nothing) when either has news."""
    seconds = rate.step_done()
    switched = tuner.observe(seconds) if seconds is not None else None
    slowed = rate.warning()
    for message in (switched, slowed and f"warning: {slowed}"):
        if message and bar is not None:
            bar.write(f"step {step}: {message}")


def fit(config: Config) -> TrainResult:
    """Train (or resume) the run in ``config.run_dir`` until ``train.steps`` or
    ``train.max_minutes``; validate and save at the end."""
    distributed, device = init_distributed(config.train.device)
    try:
        return _fit(config, distributed, device)
    finally:
        if distributed.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()


# Longer than the other functions on purpose: the loop and the state it carries from step
# to step (averages, timing windows, the last metrics) read best in one piece.
def _fit(config: Config, distributed: Distributed, device: torch.device) -> TrainResult:
    train, run_dir = config.train, Path(config.run_dir)
    if train.threads > 0:
        torch.set_num_threads(train.threads)
    train_set, valid_set = build_datasets(config)
    if distributed.is_main and run_dir.is_dir():
        ckpt.recover_best(run_dir)
    t, latest = resume(partial(build_trainer, config, device, distributed), run_dir)
    if distributed.is_main:  # only once the config is accepted
        run_dir.mkdir(parents=True, exist_ok=True)
        save_yaml(config, run_dir / "config.yaml")
    listening = listening_clips(config) if distributed.is_main else []
    if distributed.is_main:
        t.provenance.append(collect_provenance())
    if latest is None and train.init_from:  # a rerun resumes, even when it names init_from
        transfer = start_from(t, train.init_from)
        if distributed.is_main:
            print(f"{run_dir}: starting from {t.origin['path']} (model {t.origin['model_id']}): "
                  f"{transfer.describe()}")
    finetune.check_frozen_codebooks(t.codec)
    wrap_distributed(t)
    if t.step >= train.steps or t.budget_used() >= 1:
        if distributed.is_main:
            print(f"{run_dir}: already trained to step {t.step} (train.steps={train.steps}, "
                  f"{t.trained_seconds / 60:.1f} of train.max_minutes={train.max_minutes:g})")
        return TrainResult(t.step, "done", dict(latest.meta.get("metrics", {})),
                           t.skipped_steps, t.codec)

    monitor = Monitor(run_dir / "tb", enabled=distributed.is_main,
                      purge_step=t.step + 1 if latest is not None else None)
    if latest is None:
        monitor.text("config", "```\n" + to_yaml(config) + "\n```")
        if t.origin is not None:
            monitor.text("init_from", f"{t.origin['path']} (model {t.origin['model_id']})")
    loader = torch.utils.data.DataLoader(
        train_set, num_workers=config.data.num_workers, pin_memory=device.type == "cuda",
        batch_sampler=StepBatches(t.step, train.steps, config.data.batch_size, len(train_set),
                                  distributed.rank, distributed.world_size))
    audio_seconds = config.data.segment_seconds * config.data.batch_size
    bad_draws = lambda: getattr(train_set, "bad_draws", 0)  # counted by the workers
    bar = progress_bar(t, enabled=distributed.is_main)
    postfix: dict[str, Any] = {}
    averages, stopped = _Averages(), "steps"
    started = window_start = time.monotonic()
    seconds_before = t.trained_seconds  # a resumed run's budget counts its earlier time
    metrics = dict(latest.meta.get("metrics", {})) if latest is not None else {}
    window_steps, last_snr = 0, metrics.get("valid/snr", math.nan)
    late = False  # whether train.late_loss was in force at the last step
    rate = StepRate()
    adapt = train.adapt_threads and device.type == "cpu"
    tuner = ThreadTuner(torch.get_num_threads() if adapt else 1)
    try:
        for audio in _worker_errors_shortened(loader):
            seed_step(train.seed, t.step, distributed.rank, distributed.world_size)
            logs = train_step(t, audio.to(device, non_blocking=True))
            if logs.get("late_loss") and not late and distributed.is_main:
                bar.write(f"step {t.step}: train.late_loss from now on: "
                          f"{dict(train.late_loss)}")
            late = bool(logs.get("late_loss"))
            averages.add(logs)
            t.step += 1
            window_steps += 1
            _watch_speed(rate, tuner, bar if distributed.is_main else None, t.step)
            if t.step % train.log_every == 0:
                speed = audio_seconds * window_steps / (time.monotonic() - window_start)
                logs = averages.pop()
                monitor.scalars(_train_tags(logs) | {"train/audio_seconds_per_second": speed,
                                                     "train/skipped_steps": t.skipped_steps,
                                                     "train/bad_data_draws": bad_draws(),
                                                     "train/threads": tuner.current},
                                t.step)
                postfix.update(loss=f"{logs.get('loss/total', math.nan):.3f}",
                               snr="-" if math.isnan(last_snr) else f"{last_snr:.1f}dB",
                               speed=f"{speed:.1f}x",
                               rate=f"{rate.current or 0:.2f}/s", threads=tuner.current)
                window_start, window_steps = time.monotonic(), 0
            elapsed = seconds_before + time.monotonic() - started
            # Under a budget every process takes the slowest one's clock, so that all use
            # the same learning rate and stop together; without one, no collective a step.
            t.trained_seconds = (distributed.max(elapsed, device) if train.max_minutes > 0
                                 else elapsed)
            advance(bar, t, postfix)
            out_of_time = t.budget_used() >= 1
            last = out_of_time or t.step >= train.steps
            if distributed.is_main and (t.step % train.valid_every == 0 or last):
                metrics = validate(t, valid_set, monitor, listening)
                last_snr = metrics["valid/snr"]
                improved = (train.best == "latest"
                            or metrics["valid/score"] < t.best_score)
                t.best_score = min(t.best_score, metrics["valid/score"])
                if t.step % train.checkpoint_every == 0 or last or improved:
                    save(t, metrics, best=improved)
                window_start = time.monotonic()  # validation is not training time
                rate.pause()
            elif distributed.is_main and t.step % train.checkpoint_every == 0:
                save(t, metrics, best=False)
                rate.pause()  # saving is not training time either
            if out_of_time:
                stopped = "time"
                break
        monitor.hparams(hparams(config), {k: v for k, v in metrics.items()
                                          if k.startswith("valid/") and k.count("/") == 1})
    finally:
        bar.close()
        monitor.close()
    if distributed.is_main:
        print(f"{run_dir}: stopped at step {t.step} ({stopped}); valid SNR "
              f"{metrics.get('valid/snr', math.nan):.2f} dB, RMS ratio "
              f"{metrics.get('valid/rms_ratio', math.nan):.3f}; {t.skipped_steps} skipped steps"
              + (f"; {bad_draws()} training crops replaced (unreadable or not finite "
                 f"files, named above)" if bad_draws() else ""))
    return TrainResult(t.step, stopped, metrics, t.skipped_steps, t.codec)


def _worker_errors_shortened(loader: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
    """The loader's batches. A CodecError raised in a DataLoader worker comes back with
    the worker's traceback in its message; it is raised again with its own line only."""
    try:
        yield from loader
    except CodecError as error:
        lines = [line for line in str(error).splitlines() if line.strip()]
        if len(lines) > 1 and "DataLoader worker" in lines[0]:
            raise type(error)(lines[-1].split(": ", 1)[-1]) from None
        raise
