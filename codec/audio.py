"""Reading, writing, resampling and loudness of audio: the one place that touches files.

Audio in memory is float32 ``[C, T]``. Files are read with soundfile (torchaudio's
loader needs extra codecs); resampling and ITU-R BS.1770 loudness use torchaudio.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from codec.errors import CodecError

# BS.1770 gating needs at least one 400 ms block.
MIN_LOUDNESS_SECONDS = 0.4


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    channels: int
    frames: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def audio_info(path: str | Path) -> AudioInfo:
    """Header facts of an audio file; CodecError if soundfile cannot read it."""
    try:
        info = sf.info(str(path))
    except Exception as error:  # soundfile raises several types for unreadable files
        raise CodecError(f"{path}: not a readable audio file ({_short(error)})") from None
    return AudioInfo(info.samplerate, info.channels, info.frames)


def read_audio(path: str | Path, start: int = 0, frames: int = -1) -> tuple[torch.Tensor, int]:
    """``frames`` frames from ``start`` (all by default) as float32 ``[C, T]``, and the rate.

    Only the requested frames are decoded, so a short crop of a long file is cheap.
    """
    try:
        data, rate = sf.read(str(path), start=start, frames=frames, dtype="float32",
                             always_2d=True)
    except Exception as error:
        raise CodecError(f"{path}: cannot read audio ({_short(error)})") from None
    return torch.from_numpy(np.ascontiguousarray(data.T)), rate


def write_audio(path: str | Path, audio: torch.Tensor, sample_rate: int,
                subtype: str = "PCM_16") -> None:
    """Write ``[C, T]`` audio; values beyond [-1, 1] are clipped by integer subtypes."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    data = audio.detach().cpu().float().numpy().T
    if subtype.startswith("PCM"):
        data = np.clip(data, -1.0, 1.0)
    sf.write(str(path), data, sample_rate, subtype=subtype)


def resample(audio: torch.Tensor, orig_rate: int, new_rate: int) -> torch.Tensor:
    if orig_rate == new_rate:
        return audio
    return AF.resample(audio, orig_rate, new_rate)


def to_channels(audio: torch.Tensor, channels: int, select: int | None = None) -> torch.Tensor:
    """Match a channel layout: pick channel ``select``, downmix to mono, or repeat mono."""
    if select is not None:
        if not 0 <= select < audio.shape[0]:
            raise CodecError(f"channel {select} requested from audio with {audio.shape[0]}")
        audio = audio[select:select + 1]
    if audio.shape[0] == channels:
        return audio
    if channels == 1:
        return audio.mean(dim=0, keepdim=True)
    if audio.shape[0] == 1:
        return audio.expand(channels, -1).contiguous()
    raise CodecError(f"cannot map {audio.shape[0]} channels to {channels}")


def loudness(audio: torch.Tensor, sample_rate: int) -> float:
    """Integrated loudness in LUFS (ITU-R BS.1770-4), ``-inf`` for digital silence.

    Signals shorter than one 400 ms gating block are measured after looping them,
    which keeps a short clip's level rather than failing.
    """
    minimum = math.ceil(MIN_LOUDNESS_SECONDS * sample_rate)
    if audio.shape[-1] == 0:
        return float("-inf")
    if audio.shape[-1] < minimum:
        audio = audio.repeat(1, math.ceil(minimum / audio.shape[-1]))
    if not torch.any(audio != 0):
        return float("-inf")
    value = float(AF.loudness(audio.float(), sample_rate))
    return value if math.isfinite(value) else float("-inf")


def peak(audio: torch.Tensor) -> float:
    return float(audio.abs().max()) if audio.numel() else 0.0


def loudness_gain(measured_lufs: float, target_lufs: float, peak_value: float,
                  max_peak: float = 0.99) -> float:
    """Linear gain that brings ``measured_lufs`` to ``target_lufs`` without the peak
    exceeding ``max_peak``; 1.0 for silence."""
    if not math.isfinite(measured_lufs):
        return 1.0
    gain = 10 ** ((target_lufs - measured_lufs) / 20)
    if peak_value > 0:
        gain = min(gain, max_peak / peak_value)
    return gain


def _short(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
