"""Opus as the baseline: the opus-tools command-line encoder and decoder.

Audio goes through ``opusenc --bitrate K --hard-cbr`` and ``opusdec`` as files, the
way a listener would get it. The bitrate reported is measured, never assumed:

- ``file_kbps``: the .opus file's size over the clip's duration, Ogg container and
  headers included (what a user stores or sends);
- ``payload_kbps``: the Opus packets alone (what a real-time stream would carry).

On short clips the difference is large: each Ogg page costs 27 bytes plus one lacing
byte per 20 ms packet, and the OpusHead and OpusTags headers add a few hundred bytes
per file, about 2 kbit/s on a 5 s clip. opusenc accepts targets below its documented
6 kbit/s; with ``--hard-cbr`` each 20 ms packet gets the target's bytes rounded down
(1.5 kbit/s -> 3 bytes -> 1.2 kbit/s), never less than one byte (0.4 kbit/s), and
quality below about 6 kbit/s is poor. The measured numbers show what was spent.
"""
from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from codec.audio import read_audio, write_audio

# The reference row drawn beside the curves: Opus at a bitrate where speech is good.
REFERENCE_KBPS = 12.0
# Opus codes every input at 48 kHz internally; the decoder resamples to the rate asked.
FRAME_SECONDS = 0.02


def available() -> bool:
    """True when both ``opusenc`` and ``opusdec`` are on the PATH."""
    return shutil.which("opusenc") is not None and shutil.which("opusdec") is not None


@dataclass
class OpusResult:
    """Decoded audio ``[C, T]`` at the input's rate, and what it cost."""
    audio: torch.Tensor
    sample_rate: int
    file_bytes: int
    payload_bytes: int
    duration: float
    encode_seconds: float
    decode_seconds: float

    @property
    def file_kbps(self) -> float:
        return self.file_bytes * 8 / self.duration / 1000

    @property
    def payload_kbps(self) -> float:
        return self.payload_bytes * 8 / self.duration / 1000


def ogg_payload_bytes(path: str | Path) -> int:
    """Bytes of the Opus audio packets in an Ogg Opus file, without the Ogg page
    headers and the two header packets (OpusHead, OpusTags; RFC 7845 section 3)."""
    data = Path(path).read_bytes()
    packets: list[int] = []
    current = 0
    position = 0
    while position < len(data):
        if data[position:position + 4] != b"OggS":
            raise ValueError(f"{path}: not an Ogg stream at byte {position}")
        segments = data[position + 26]
        lacing = data[position + 27:position + 27 + segments]
        position += 27 + segments
        for size in lacing:
            current += size
            if size < 255:  # a lacing value below 255 ends a packet
                packets.append(current)
                current = 0
        position += sum(lacing)
    return sum(packets[2:])


def encode_decode(audio: torch.Tensor, sample_rate: int, kbps: float, workdir: str | Path,
                  name: str = "clip", keep: bool = False) -> OpusResult:
    """Code ``audio [C, T]`` with Opus at ``kbps`` (hard CBR) through files in ``workdir``;
    the .opus file is left there when ``keep`` is true."""
    if not available():
        raise RuntimeError("opusenc/opusdec not found; install opus-tools")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    source, coded, decoded = (workdir / f"{name}{suffix}"
                              for suffix in (".in.wav", ".opus", ".out.wav"))
    # 32-bit float keeps the reference bit-exact and levels above full scale intact.
    write_audio(source, audio, sample_rate, subtype="FLOAT")
    start = time.perf_counter()
    _run(["opusenc", "--quiet", "--bitrate", f"{kbps:g}", "--hard-cbr", str(source), str(coded)])
    middle = time.perf_counter()
    _run(["opusdec", "--quiet", "--float", "--rate", str(sample_rate), str(coded), str(decoded)])
    end = time.perf_counter()
    output, rate = read_audio(decoded)
    result = OpusResult(audio=output, sample_rate=rate, file_bytes=coded.stat().st_size,
                        payload_bytes=ogg_payload_bytes(coded),
                        duration=audio.shape[-1] / sample_rate,
                        encode_seconds=middle - start, decode_seconds=end - middle)
    for path in (source, decoded) if keep else (source, decoded, coded):
        path.unlink()
    return result


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({done.returncode}): {done.stderr.strip()}")
