"""Shared fixtures for the evaluation tests: a small speech + music set, a saved model."""
from __future__ import annotations

import math
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
import torch

from codec import Codec, model_config
from codec.checkpoint import save_checkpoint
from codec.config import Config
from codec.network.model import compute_model_id
from codec.provenance import collect


def _music(seconds: float, rate: int, seed: int) -> np.ndarray:
    """A few decaying plucked notes: tonal, with attacks."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    out = np.zeros_like(t)
    for start in np.arange(0, seconds, 0.25):
        f = 110 * 2 ** (rng.integers(0, 24) / 12)
        env = np.where(t >= start, np.exp(-(t - start) * 6), 0)
        out += env * sum(np.sin(2 * math.pi * k * f * (t - start)) / k for k in (1, 2, 3))
    return (0.2 * out / np.abs(out).max()).astype(np.float32)


@pytest.fixture(scope="session")
def eval_set(tmp_path_factory):
    """A folder with speech/ (espeak-ng speech, or a voiced stand-in) and music/."""
    root = tmp_path_factory.mktemp("evalset")
    (root / "speech").mkdir()
    (root / "music").mkdir()
    espeak = shutil.which("espeak-ng")
    for number, text in enumerate(["The quick brown fox jumps over the lazy dog.",
                                   "Please call Stella and ask her to bring these things."]):
        path = root / "speech" / f"s{number}.wav"
        if espeak:
            subprocess.run([espeak, "-w", str(path), text], check=True, capture_output=True)
            audio, rate = sf.read(path, dtype="float32")
            sf.write(path, audio[: int(1.6 * rate)], rate)
        else:
            rate = 16000
            t = np.arange(int(1.6 * rate)) / rate
            voice = sum(np.sin(2 * math.pi * k * 130 * t) / k for k in range(1, 15))
            sf.write(path, (0.2 * voice * np.sin(2 * math.pi * 3 * t) ** 2).astype("f4"), rate)
    sf.write(root / "music" / "m0.wav", _music(1.5, 24000, 0), 24000)
    return root


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A run directory holding an untrained tiny model at best/ (frame rate 600 Hz,
    4 codebooks of 256: 4.8 kbit/s each)."""
    torch.manual_seed(0)
    model = Codec(model_config("tiny", strides=(2, 4, 5), widths=(8, 16, 32, 64)))
    run = tmp_path_factory.mktemp("run")
    save_checkpoint(run / "best", model_state=model.state_dict(), config=Config(model=model.config),
                    step=0, model_id=compute_model_id(model),
                    facts={"provenance": [collect(["codec", "train", "tiny.yaml"])],
                           "trained_seconds": 90.0, "skipped_steps": 0})
    return run
