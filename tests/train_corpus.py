"""A tiny synthetic corpus and config for training tests: WAV files and hand-written
manifests in a temporary directory, and a tiny model that trains in about a second."""
from __future__ import annotations

import json
import math
from pathlib import Path

import soundfile
import torch

from codec.audio import loudness
from codec.config import Config, load_config

SAMPLE_RATE = 16000


def _tone(seconds: float, base: float, seed: int) -> torch.Tensor:
    """A few harmonics with a slow tremolo plus a little noise: [T] float32."""
    generator = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    wave = sum(math.pow(0.6, k) * torch.sin(2 * math.pi * base * (k + 1) * t + k)
               for k in range(4))
    wave = wave * (0.6 + 0.4 * torch.sin(2 * math.pi * 1.5 * t))
    wave = wave + 0.02 * torch.randn(t.shape, generator=generator)
    return (0.3 * wave / wave.abs().max()).float()


def make_corpus(root: Path, files: int = 4, seconds: float = 2.0) -> dict[str, Path]:
    """Write ``files`` WAVs per split and train/valid manifests; returns their paths."""
    manifests = {}
    for split, offset in (("train", 0), ("valid", 100)):
        lines = []
        for index in range(files):
            audio = _tone(seconds, 110 * (1 + index + offset / 200), seed=index + offset)
            path = root / "audio" / f"{split}{index}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(path, audio.numpy(), SAMPLE_RATE, subtype="FLOAT")
            lines.append({"path": str(path), "duration": seconds, "sample_rate": SAMPLE_RATE,
                          "channels": 1, "frames": audio.numel(),
                          "loudness": loudness(audio[None], SAMPLE_RATE),
                          "peak": float(audio.abs().max()), "group": f"g{index}"})
        manifests[split] = root / f"{split}.jsonl"
        manifests[split].write_text("".join(json.dumps(line) + "\n" for line in lines))
    return manifests


def tiny_overrides(root: Path, manifests: dict[str, Path], **extra: object) -> list[str]:
    """Dotted overrides for a tiny model that trains fast on the synthetic corpus."""
    settings = {
        "run_dir": root / "run",
        "model.preset": "tiny", "model.sample_rate": SAMPLE_RATE,
        "model.strides": "[2,4,5]", "model.widths": "[8,16,32,64]", "model.n_q": 4,
        "model.codebook_size": 64, "model.kmeans_iters": 2,
        "data.train": f"[{manifests['train']}]", "data.valid": manifests["valid"],
        "data.segment_seconds": 0.125, "data.batch_size": 4, "data.valid_crops": 4,
        "data.num_workers": 0,
        "train.steps": 6, "train.lr": 3e-3, "train.warmup_steps": 1, "train.log_every": 1,
        "train.valid_every": 3, "train.checkpoint_every": 3, "train.keep_last": 5,
        "train.threads": 1, "train.device": "cpu", "train.valid_audio_clips": 1,
        # float32 whatever the CPU (auto is bf16 where it has AMX): the same steps on
        # every machine the tests run on.
        "train.precision": "fp32",
        "train.valid_kbps": "[2.4,4.8]",
    }
    settings.update(extra)
    return [f"{key}={value}" for key, value in settings.items()]


def tiny_config(root: Path, manifests: dict[str, Path], **extra: object) -> Config:
    return load_config([], tiny_overrides(root, manifests, **extra))
