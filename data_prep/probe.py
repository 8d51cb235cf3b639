"""Measure one file for the manifest, or say in one word why it cannot be used.

Whether a file is audio is decided by soundfile opening it, not by its name. A file
that soundfile cannot open is ``unreadable`` when its first bytes look like an audio
container (a damaged WAV, or a format soundfile lacks such as MP4) and ``not_audio``
otherwise (a text file named .wav, a cover image). A WAV whose data chunk is shorter
than its header declares is ``unreadable`` too: soundfile would quietly read the part
that is there.
"""
from __future__ import annotations

import math
import os
import stat
import struct
from dataclasses import dataclass
from typing import Optional

import numpy as np
import soundfile as sf

from codec.audio import AudioInfo, StreamingLoudness

# Why a file was left out; the words written to skipped.jsonl.
REASONS = ("unreadable", "empty", "too_short", "silent", "non_finite", "not_audio")

# Files are decoded and measured this many seconds at a time, so memory stays flat for
# hour-long files. The meter, codec.audio.StreamingLoudness, gives the same value as
# codec.audio.loudness (torchaudio) on the whole signal at a fraction of the cost.
BLOCK_SECONDS = 30.0

# First bytes of audio containers (offset, bytes): such a file is damaged audio, not
# something else.
AUDIO_MAGIC = (
    (0, b"RIFF"), (0, b"RIFX"), (0, b"RF64"), (0, b"BW64"), (0, b"riff"), (0, b"FORM"),
    (0, b"fLaC"), (0, b"OggS"), (0, b".snd"), (0, b"caff"), (0, b"wvpk"), (0, b"MAC "),
    (0, b"ID3"), (0, b"#!AMR"), (0, b"NIST_1A"), (0, b"Extended Module"),
    (0, b"\x30\x26\xb2\x75"), (4, b"ftyp"),
)


@dataclass(frozen=True)
class Measured(AudioInfo):
    """What the manifest records about a usable file: its layout (frames as decoded),
    integrated loudness in LUFS and peak."""
    loudness: float
    peak: float


@dataclass(frozen=True)
class Rejected:
    reason: str  # one of REASONS
    detail: str


def probe(path: str, min_seconds: float = 0.0) -> Measured | Rejected:
    """Measure ``path``; never raises for a bad file, it returns :class:`Rejected`."""
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):  # a pipe or device would block or never end
            return Rejected("unreadable", "not a regular file")
        with open(path, "rb") as handle:  # soundfile reports a refused open as "System error."
            if not handle.read(1):
                return Rejected("empty", "0 bytes")
    except OSError as error:
        return Rejected("unreadable", error.strerror or _short(error))
    try:
        info = sf.info(path)
    except Exception as error:  # soundfile raises several types for unreadable files
        kind = "unreadable" if _looks_like_audio(path) else "not_audio"
        return Rejected(kind, _short(error))
    if info.frames <= 0:
        return Rejected("empty", "no audio frames")
    truncated = _wav_truncation(path, info.channels)
    if truncated:
        return Rejected("unreadable", truncated)
    duration = info.frames / info.samplerate
    if duration < min_seconds:
        return Rejected("too_short", f"{duration:.3f} s < {min_seconds:g} s")
    try:
        return _measure(path, info)
    except _Problem as problem:
        return problem.rejected
    except Exception as error:  # a decoder error part-way through the file
        return Rejected("unreadable", _short(error))


class _Problem(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.rejected = Rejected(reason, detail)


def _measure(path: str, info) -> Measured | Rejected:
    meter = StreamingLoudness(info.samplerate, info.channels)
    block = max(1, int(BLOCK_SECONDS * info.samplerate))
    for piece in sf.blocks(path, blocksize=block, dtype="float32", always_2d=True):
        _check_finite(piece, meter.frames)
        meter.push(piece.T)
    _check_frames(meter.frames, info.frames)
    return _finish(info, meter.frames, meter.loudness(), meter.peak)


def _finish(info, frames: int, lufs: float, peak_value: float) -> Measured | Rejected:
    if not math.isfinite(lufs):
        return Rejected("silent", f"loudness {lufs} LUFS (peak {peak_value:.3g})")
    return Measured(info.samplerate, info.channels, frames, lufs, peak_value)


def _check_frames(read: int, declared: int) -> None:
    if read < declared:
        raise _Problem("unreadable", f"truncated: header declares {declared} frames, "
                                     f"{read} could be decoded")


def _check_finite(data: np.ndarray, offset: int) -> None:
    bad = ~np.isfinite(data)
    if bad.any():
        first = offset + int(np.argmax(bad.any(axis=1)))
        raise _Problem("non_finite", f"{int(bad.sum())} NaN/inf samples, first at frame {first}")


def _looks_like_audio(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(32)
    except OSError:
        return False
    return any(head[offset:offset + len(magic)] == magic for offset, magic in AUDIO_MAGIC)


def _wav_truncation(path: str, channels: int) -> Optional[str]:
    """A description of the shortfall if a RIFF WAV holds less data than it declares."""
    try:
        with open(path, "rb") as handle:
            if handle.read(4) != b"RIFF":
                return None
            handle.seek(8)
            if handle.read(4) != b"WAVE":
                return None
            size = os.fstat(handle.fileno()).st_size
            block_align = 0
            position = 12
            while position + 8 <= size:
                handle.seek(position)
                chunk_id, chunk_size = struct.unpack("<4sI", handle.read(8))
                if chunk_id == b"fmt ":
                    block_align = struct.unpack("<12xH", handle.read(14))[0]
                if chunk_id == b"data":
                    available = size - position - 8
                    if chunk_size <= available or _placeholder_size(chunk_size):
                        return None
                    align = block_align or channels
                    return (f"truncated: header declares {chunk_size // align} frames, "
                            f"file holds {available // align}")
                position += 8 + chunk_size + (chunk_size & 1)
    except (OSError, struct.error):
        return None
    return None


def _placeholder_size(size: int) -> bool:
    """Whether a data chunk size is one a streaming writer leaves when it cannot seek back:
    0, or 2 GB and up (espeak-ng --stdout writes 0x7FFFF000, others 0xFFFFFFFF)."""
    return size == 0 or size >= 0x7F000000


def _short(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
