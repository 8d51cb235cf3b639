"""Shared fixtures for the evaluation tests: a small speech + music set, a saved model."""
from __future__ import annotations

import importlib
import json
import math
import shutil
import subprocess
import sys
import types

import numpy as np
import pytest
import soundfile as sf
import torch

from codec import Codec, model_config
from codec.audio import resample, to_channels
from codec.checkpoint import save_checkpoint
from codec.config import Config
from codec.model import compute_model_id


def _standin_compress() -> types.ModuleType:
    """Stands in for codec.compress until it exists: same calls, raw int16 codes."""
    module = types.ModuleType("codec.compress")

    def encode_audio(model, audio, sample_rate, n_q):
        x = to_channels(resample(audio, sample_rate, model.sample_rate), model.config.channels)
        codes = model.encode(x[None], n_q)[0]
        head = json.dumps({"rate": sample_rate, "length": audio.shape[-1],
                           "shape": list(codes.shape)}).encode()
        return len(head).to_bytes(4, "little") + head + codes.short().numpy().tobytes()

    def _parse(data):
        size = int.from_bytes(data[:4], "little")
        head = json.loads(data[4:4 + size])
        codes = np.frombuffer(data[4 + size:], dtype=np.int16).reshape(head["shape"])
        return head, torch.from_numpy(codes.astype(np.int64))

    def decode_bytes(model, data):
        head, codes = _parse(data)
        audio = model.decode(codes[None])[0]
        audio = resample(audio, model.sample_rate, head["rate"])
        return audio[..., :head["length"]], head["rate"]

    def read_codes(model, data):
        return _parse(data)[1]

    module.encode_audio, module.decode_bytes, module.read_codes = \
        encode_audio, decode_bytes, read_codes
    return module


try:
    importlib.import_module("codec.compress")
except ModuleNotFoundError:
    sys.modules["codec.compress"] = _standin_compress()
    import codec
    codec.compress = sys.modules["codec.compress"]


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
                    step=0, model_id=compute_model_id(model))
    return run
