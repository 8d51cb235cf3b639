"""The loop: build or resume, then for each step train, log, validate and save, until
``train.steps`` or ``train.max_minutes``.
"""
from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass, fields
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import torch
import torch.distributed as dist

from codec import checkpoint as ckpt
from codec.config import Config, save_yaml, to_yaml
from codec.errors import CodecError
from codec.network.model import Codec
from codec.provenance import collect as collect_provenance
from codec.train import finetune
from codec.train.distributed import (
    Distributed,
    init_distributed,
    seed_step,
)
from codec.train.inputs import build_datasets, listening_clips
from codec.train.monitor import Monitor
from codec.train.schedule import StepBatches
from codec.train.state import (
    resume,
    save,
    start_from,
)
from codec.train.step import (
    train_step,
)
from codec.train.step_rate import StepRate
from codec.train.threads import ThreadTuner
from codec.train.trainer import Trainer, build_trainer, check_train_options, wrap_distributed
from codec.train.validation import validate


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


def _fit(config: Config, distributed: Distributed, device: torch.device) -> TrainResult:
    train, run_dir = config.train, Path(config.run_dir)
    check_train_options(config)  # before any data is read or model built
    if train.threads > 0:
        torch.set_num_threads(train.threads)
    train_set, valid_set = build_datasets(config)
    t, latest = _start(config, distributed, device)
    listening = listening_clips(config) if distributed.is_main else []
    if t.step >= train.steps or t.budget_used() >= 1:
        if distributed.is_main:
            print(f"{run_dir}: already trained to step {t.step} (train.steps={train.steps}, "
                  f"{t.trained_seconds / 60:.1f} of train.max_minutes={train.max_minutes:g})")
        return TrainResult(t.step, "done", dict(latest.meta.get("metrics", {})),
                           t.skipped_steps, t.codec)
    session = _Session(t, latest, lambda: getattr(train_set, "bad_draws", 0))
    loader = torch.utils.data.DataLoader(
        train_set, num_workers=config.data.num_workers, pin_memory=device.type == "cuda",
        batch_sampler=StepBatches(t.step, train.steps, config.data.batch_size, len(train_set),
                                  distributed.rank, distributed.world_size))
    try:
        stopped = _train(session, loader, valid_set, listening)
        session.monitor.hparams(hparams(config), {
            k: v for k, v in session.metrics.items()
            if k.startswith("valid/") and k.count("/") == 1})
    finally:
        session.bar.close()
        session.monitor.close()
    if distributed.is_main:
        print(session.summary(stopped))
    return TrainResult(t.step, stopped, session.metrics, t.skipped_steps, t.codec)


def _start(config: Config, distributed: Distributed,
           device: torch.device) -> tuple[Trainer, ckpt.Checkpoint | None]:
    """The trainer, resumed from the run's newest readable checkpoint, else started from
    ``train.init_from`` when given, wrapped for distributed training; the run's config
    and this invocation's provenance recorded."""
    train, run_dir = config.train, Path(config.run_dir)
    if distributed.is_main and run_dir.is_dir():
        ckpt.recover_best(run_dir)
    t, latest = resume(partial(build_trainer, config, device, distributed), run_dir)
    if distributed.is_main:  # only once the config is accepted
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            save_yaml(config, run_dir / "config.yaml")
        except OSError as error:  # a full disk, a read-only folder
            raise CodecError(f"{run_dir}: cannot write ({error.strerror or error})") from None
        t.provenance.append(collect_provenance())
    if latest is None and train.init_from:  # a rerun resumes, even when it names init_from
        transfer = start_from(t, train.init_from)
        if distributed.is_main:
            print(f"{run_dir}: starting from {t.origin['path']} (model {t.origin['model_id']}): "
                  f"{transfer.describe()}")
    finetune.check_frozen_codebooks(t.codec)
    wrap_distributed(t)
    return t, latest


def _train(session: _Session, loader: Iterable[torch.Tensor],
           valid_set: list[torch.Tensor], listening: list[torch.Tensor]) -> str:
    """Steps until the sampler or the time budget ends; how the run stopped."""
    t = session.t
    train, distributed = t.config.train, t.dist
    for audio in _worker_errors_shortened(loader):
        seed_step(train.seed, t.step, distributed.rank, distributed.world_size)
        logs = train_step(t, audio.to(t.device, non_blocking=True))
        session.step_done(logs)
        out_of_time = t.budget_used() >= 1
        last = out_of_time or t.step >= train.steps
        if distributed.is_main and (t.step % train.valid_every == 0 or last):
            session.validate(valid_set, listening, last)
        elif distributed.is_main and t.step % train.checkpoint_every == 0:
            save(t, session.metrics, best=False)
            session.rate.pause()  # saving is not training time
        if out_of_time:
            return "time"
    return "steps"


class _Session:
    """What one invocation of the loop carries from step to step: the monitor and
    progress bar, running means of the logged scalars, the timing windows, the thread
    tuner, and the last validation metrics."""

    def __init__(self, t: Trainer, latest: ckpt.Checkpoint | None,
                 bad_draws: Callable[[], int]):
        config, is_main = t.config, t.dist.is_main
        self.t, self.bad_draws = t, bad_draws  # bad_draws: counted by the loader's workers
        self.monitor = Monitor(Path(config.run_dir) / "tb", enabled=is_main,
                               purge_step=t.step + 1 if latest is not None else None)
        if latest is None:
            self.monitor.text("config", "```\n" + to_yaml(config) + "\n```")
            if t.origin is not None:
                self.monitor.text("init_from",
                                  f"{t.origin['path']} (model {t.origin['model_id']})")
        self.bar = progress_bar(t, enabled=is_main)
        self.postfix: dict[str, Any] = {}
        self.averages = _Averages()
        self.audio_seconds = config.data.segment_seconds * config.data.batch_size
        self.started = self.window_start = time.monotonic()
        self.seconds_before = t.trained_seconds  # a resumed run's budget counts its earlier time
        self.metrics = dict(latest.meta.get("metrics", {})) if latest is not None else {}
        self.window_steps, self.late = 0, False  # late: train.late_loss at the last step
        self.rate = StepRate()
        adapt = config.train.adapt_threads and t.device.type == "cpu"
        self.tuner = ThreadTuner(torch.get_num_threads() if adapt else 1)

    def step_done(self, logs: dict[str, float]) -> None:
        """Count the step just trained: announce the late loss, time it, log every
        ``train.log_every`` steps, and move the clock and the progress bar on."""
        t, train = self.t, self.t.config.train
        if logs.get("late_loss") and not self.late and t.dist.is_main:
            self.bar.write(f"step {t.step}: train.late_loss from now on: "
                           f"{dict(train.late_loss)}")
        self.late = bool(logs.get("late_loss"))
        self.averages.add(logs)
        t.step += 1
        self.window_steps += 1
        _watch_speed(self.rate, self.tuner, self.bar if t.dist.is_main else None, t.step)
        if t.step % train.log_every == 0:
            self.log()
        elapsed = self.seconds_before + time.monotonic() - self.started
        # Under a budget every process takes the slowest one's clock, so that all use
        # the same learning rate and stop together; without one, no collective a step.
        t.trained_seconds = (t.dist.max(elapsed, t.device) if train.max_minutes > 0
                             else elapsed)
        advance(self.bar, t, self.postfix)

    def log(self) -> None:
        """The means since the last log step, the speed and the thread count."""
        t = self.t
        speed = self.audio_seconds * self.window_steps / (time.monotonic() - self.window_start)
        logs = self.averages.pop()
        self.monitor.scalars(_train_tags(logs) | {"train/audio_seconds_per_second": speed,
                                                  "train/skipped_steps": t.skipped_steps,
                                                  "train/bad_data_draws": self.bad_draws(),
                                                  "train/threads": self.tuner.current},
                             t.step)
        last_snr = self.metrics.get("valid/snr", math.nan)
        self.postfix.update(loss=f"{logs.get('loss/total', math.nan):.3f}",
                            snr="-" if math.isnan(last_snr) else f"{last_snr:.1f}dB",
                            speed=f"{speed:.1f}x", rate=f"{self.rate.current or 0:.2f}/s",
                            threads=self.tuner.current)
        self.window_start, self.window_steps = time.monotonic(), 0

    def validate(self, valid_set: list[torch.Tensor], listening: list[torch.Tensor],
                 last: bool) -> None:
        """Validate; save a checkpoint when one is due, at the end, or when ``best``
        improved."""
        t, train = self.t, self.t.config.train
        self.metrics = validate(t, valid_set, self.monitor, listening)
        improved = train.best == "latest" or self.metrics["valid/score"] < t.best_score
        t.best_score = min(t.best_score, self.metrics["valid/score"])
        if t.step % train.checkpoint_every == 0 or last or improved:
            save(t, self.metrics, best=improved)
        self.window_start = time.monotonic()  # validation is not training time
        self.rate.pause()

    def summary(self, stopped: str) -> str:
        """The line printed when the run stops."""
        t, bad = self.t, self.bad_draws()
        return (f"{Path(t.config.run_dir)}: stopped at step {t.step} ({stopped}); valid SNR "
                f"{self.metrics.get('valid/snr', math.nan):.2f} dB, RMS ratio "
                f"{self.metrics.get('valid/rms_ratio', math.nan):.3f}; {t.skipped_steps} "
                f"skipped steps" + (f"; {bad} training crops replaced (unreadable or not "
                                    f"finite files, named above)" if bad else ""))


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
