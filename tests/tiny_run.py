"""An untrained tiny model saved as a run's best checkpoint: what the command-line tests
code with."""
from __future__ import annotations

from pathlib import Path

import torch

from codec import Codec, model_config
from codec.checkpoint import save_checkpoint
from codec.config import CodingConfig, Config
from codec.network.model import compute_model_id


def save_tiny_run(run: Path, coding: CodingConfig | None = None) -> Path:
    """A seeded untrained tiny 24 kHz model at ``run/best`` (coding with ``coding``, by
    default none of the extras); ``run``."""
    torch.manual_seed(0)
    network = Codec(model_config("tiny", strides=(2, 4, 5), widths=(8, 16, 32, 64)))
    config = Config(model=network.config, coding=coding or CodingConfig())
    save_checkpoint(run / "best", model_state=network.state_dict(), config=config, step=1,
                    model_id=compute_model_id(network))
    return run
