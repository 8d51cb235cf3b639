"""The trainer: everything a training step changes, built from a config.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

import torch
from torch import nn

from codec.coding.settings import check_coding
from codec.config import Config, ConfigError, LossWeights, TrainConfig
from codec.errors import CodecError
from codec.network.model import Codec, check_model_size
from codec.train import finetune
from codec.train.distributed import (
    Distributed,
    resolve_precision,
)
from codec.train.schedule import make_schedule
from codec.train.weight_average import WeightAverage

# What best/ holds: the lowest validation mel distance, or the newest validated model
# (for runs whose learning rate decays to the end, or whose loss changes late).
BEST_CHOICES = ("mel_distance", "latest")


# Losses computed from the decoded audio; the balancer rescales their gradients there.
OUTPUT_LOSSES = ("mrstft", "mel", "l1", "rms", "snr", "band_snr", "excess", "stoi", "adv",
                 "feat")


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
                                  stoi=_weighs(config, "stoi"),
                                  excess=_weighs(config, "excess"))
    except ValueError as error:
        # Each of these messages starts with the argument's name, the train option's.
        raise ConfigError(f"train.{error}") from None


def _weighs(config: Config, term: str) -> bool:
    """Whether ``term`` has weight in the run's loss or its late phase (the terms that
    cost a step a lot, or are experimental, are computed only then)."""
    return bool(getattr(config.loss, term) or config.train.late_loss.get(term, 0.0))


def check_train_options(config: Config) -> None:
    """ConfigError for a ``train.best``, ``train.freeze``, ``train.weight_ema``,
    ``train.loss_at_band_levels`` or ``train.late_loss`` that could not be applied as
    written, or for counts, sizes and rates no run can use (``check_numbers``)."""
    check_numbers(config)
    train = config.train
    if train.best not in BEST_CHOICES:
        raise ConfigError(f"train.best must be one of {BEST_CHOICES}, got {train.best!r}")
    finetune.check_freeze(train.freeze)
    if not 0 <= train.loss_at_band_levels <= 1:
        raise ConfigError(f"train.loss_at_band_levels is a share of the items, in [0, 1]; "
                          f"got {train.loss_at_band_levels}")
    check_coding(config.coding, config.model.causal)
    if train.loss_at_band_levels and not config.coding.band_levels:
        raise ConfigError("train.loss_at_band_levels needs levels to bring the output to: "
                          "set coding.band_levels (bands) or leave it at 0")
    check_phase_only(config)
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


def check_phase_only(config: Config) -> None:
    """ConfigError for a ``train.waveform_phase_only_hz`` that could not be applied."""
    hz = config.train.waveform_phase_only_hz
    if hz is None:
        return
    if not 0 <= hz < math.inf:
        raise ConfigError(f"train.waveform_phase_only_hz is a frequency in Hz, 0 or more "
                          f"(null: off), got {hz}")
    if config.model.arch != "stft":
        raise ConfigError(f"train.waveform_phase_only_hz needs a spectral model "
                          f"(model.arch: stft), whose decoder gives magnitudes and phases; "
                          f"this one is {config.model.arch!r}")
    if config.model.level_overlap:
        raise ConfigError("train.waveform_phase_only_hz cannot be used with a level stage "
                          "(model.level_overlap)")
    if config.train.balancer:
        raise ConfigError("train.waveform_phase_only_hz cannot be used with train.balancer "
                          "(the balancer takes every term's gradient at one output)")


# Settings that count steps or items: each must be at least 1.
_COUNTS = ("train.log_every", "train.valid_every", "train.checkpoint_every",
           "train.keep_last", "train.max_bad_steps", "data.batch_size", "data.valid_crops")
# Settings that must be finite and positive.
_POSITIVE = ("train.lr", "train.disc_lr", "data.segment_seconds", "train.listen_seconds")


def check_numbers(config: Config) -> None:
    """ConfigError naming the first setting no run can use: a count under 1, a rate or
    length that is not a positive number, a negative step count or time budget, or a
    model too large to build (the bound loading a model file applies)."""
    def value(key: str):
        section, name = key.split(".")
        return getattr(getattr(config, section), name)

    for key in _COUNTS:
        if not value(key) >= 1:
            raise ConfigError(f"{key} must be at least 1, got {value(key)}")
    for key in _POSITIVE:
        if not 0 < value(key) < math.inf:
            raise ConfigError(f"{key} must be a positive number, got {value(key)}")
    for key in ("train.steps", "train.max_minutes", "train.warmup_steps"):
        if not 0 <= value(key) < math.inf:
            raise ConfigError(f"{key} must be 0 or more, got {value(key)}")
    check_model_size(config.model)


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
