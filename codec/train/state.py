"""Saving and resuming: checkpoints of a run, the newest readable one restored, or a new
run started from another model's weights (``train.init_from``).
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any, Callable

from codec import checkpoint as ckpt
from codec.network.model import compute_model_id
from codec.train import finetune
from codec.train.trainer import (
    Trainer,
)


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
    model configuration has changed; CheckpointError, with nothing changed, when the run
    has checkpoints and none can be resumed from (starting again would replace them)."""
    t = build()
    directories = ckpt.list_checkpoints(run_dir)
    problems = []
    for directory in reversed(directories):
        try:
            checkpoint = ckpt.read_checkpoint(directory)
        except ckpt.CheckpointError as error:
            warnings.warn(f"skipping damaged checkpoint: {error}", stacklevel=2)
            problems.append(str(error))
            continue
        try:
            restore(t, checkpoint)
            return t, checkpoint
        except ckpt.ConfigMismatchError:
            raise
        except ckpt.CheckpointError as error:
            warnings.warn(f"skipping damaged checkpoint: {error}", stacklevel=2)
            problems.append(str(error))
            t = build()
    if directories:
        raise ckpt.CheckpointError(
            f"{run_dir}: none of its {len(directories)} checkpoints can be resumed from "
            f"(newest: {problems[0]}); nothing was changed. Repair them, or move them "
            f"away to train this run from the start")
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
