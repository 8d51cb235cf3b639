"""Which files go to which shard, and which shards a job codes.

The files are taken in the listing's order (a manifest's lines, a folder's sorted
names) and cut into shards of at least ``shard_rows`` rows (one file's rows are never
split, so a shard holds a file more than that at most), from each file's length as its
header or manifest line gives it. Nothing here depends on how many processes or jobs
code the shards, so every job of a job array plans the same shards, and the shards come
out the same bytes however they are shared out.

A job takes every shard whose number modulo N is its I (``--shard I/N``; under
``torchrun``, ``RANK``/``WORLD_SIZE``).
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Iterable, Mapping

from tqdm import tqdm

from codec.audio import audio_info
from codec.coding.bitstream import frame_count
from codec.errors import CodecError
from codec.network.model import Codec


@dataclass(frozen=True)
class Source:
    """A file to code: its path, its line in the manifest (its place in a folder's
    listing), and, when the manifest gives them, its length, rate and channels."""
    path: str
    line: int
    frames: int | None = None
    sample_rate: int | None = None
    channels: int | None = None


@dataclass(frozen=True)
class Plan:
    """The listing, each file's estimated rows and seconds, the files of each shard
    (positions in the listing) and a name for all of it with the settings."""
    sources: list[Source]
    rows: list[int]
    seconds: list[float]
    shards: list[range]
    plan_id: str


def _length(source: Source) -> tuple[int, int, int] | None:
    """(frames, rate, channels) from the manifest, else the header; None if unreadable."""
    if None not in (source.frames, source.sample_rate, source.channels):
        return source.frames, source.sample_rate, source.channels
    try:
        info = audio_info(source.path)
    except CodecError:
        return None  # coding it says why, in the skipped list
    return info.frames, info.sample_rate, info.channels


def estimate(source: Source, network: Codec) -> tuple[int, float]:
    """The rows a file will take (codec frames times sequences) and its seconds."""
    found = _length(source)
    if found is None or found[1] <= 0:
        return 0, 0.0
    frames, rate, channels = found
    items = channels if network.config.channels == 1 else 1
    rows = frame_count(frames, rate, network.sample_rate, network.hop_length) * items
    return rows, frames / rate


def assign(rows: list[int], shard_rows: int) -> list[range]:
    """Consecutive files cut into shards of at least ``shard_rows`` rows (the last may
    hold fewer); every file in exactly one shard."""
    shards, first, total = [], 0, 0
    for position, count in enumerate(rows):
        total += count
        if total >= shard_rows:
            shards.append(range(first, position + 1))
            first, total = position + 1, 0
    if first < len(rows):
        shards.append(range(first, len(rows)))
    return shards


def make_plan(sources: list[Source], network: Codec, shard_rows: int,
              settings: Mapping) -> Plan:
    """The plan of ``sources``; ``settings`` (what decides the codes) enter its name."""
    if shard_rows < 1:
        raise CodecError(f"--shard-rows must be at least 1, got {shard_rows}")
    if not sources:
        raise CodecError("no files to tokenize")
    needs_header = any(s.frames is None for s in sources)
    sized = [estimate(s, network) for s in tqdm(sources, desc="listing", unit="file",
                                                 disable=None if needs_header else True)]
    rows, seconds = [r for r, _ in sized], [s for _, s in sized]
    shards = assign(rows, shard_rows)
    return Plan(sources, rows, seconds, shards, plan_name(settings, sources, shards))


def plan_name(settings: Mapping, sources: Iterable[Source], shards: list[range]) -> str:
    """16 hex digits naming the settings, the listing and its cut into shards."""
    digest = hashlib.sha256(json.dumps(dict(settings), sort_keys=True).encode())
    for source in sources:
        digest.update(f"{source.line}\t{source.path}\n".encode())
    digest.update(json.dumps([[s.start, s.stop] for s in shards]).encode())
    return digest.hexdigest()[:16]


def parse_slot(text: str) -> tuple[int, int]:
    """``"I/N"`` -> (I, N); CodecError unless 0 <= I < N."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not int(match[1]) < int(match[2]):
        raise CodecError(f"--shard takes I/N with 0 <= I < N (this job's number and the "
                         f"number of jobs), got {text!r}")
    return int(match[1]), int(match[2])


def job_slot(option: str | None, environ: Mapping[str, str]) -> tuple[int, int]:
    """This job's (I, N): ``--shard``, else torchrun's RANK/WORLD_SIZE, else (0, 1)."""
    if option is not None:
        return parse_slot(option)
    if "WORLD_SIZE" in environ and "RANK" in environ:
        return parse_slot(f"{environ['RANK']}/{environ['WORLD_SIZE']}")
    return 0, 1


def taken(count: int, slot: tuple[int, int]) -> list[int]:
    """The shards (of ``count``) the job in ``slot`` codes."""
    index, jobs = slot
    return [shard for shard in range(count) if shard % jobs == index]
