"""One file's tokens, and one shard of them written.

The codes are the ones ``codec encode`` puts in a ``.qca`` at the same bitrate: the same
call (:func:`codec.compress.encode_codes`), which reads the file twice block by block
and encodes it in chunks, so an hour-long file takes the memory of a chunk plus its
codes. With side information the level match runs too (a decoding pass), so that the
stored gain is the ``.qca``'s and the tokens decode to what ``codec decode`` gives.

A file that cannot be coded is not an error: it goes in the shard's skipped list with
its reason (``missing``, ``unreadable``, ``empty``, ``too_short``, ``not_coded``) and the
shard goes on.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from codec.audio import audio_info
from codec.coding.bitrate import coded_kbps, level_grid
from codec.coding.chunking import chunk_frames_for, context_frames
from codec.compress import EncodedCodes, encode_codes, file_source
from codec.errors import CodecError
from codec.pretrained import PretrainedModel
from codec.provenance import package_versions
from codec.tokens.plan import Plan, Source
from codec.tokens.shards import (
    FORMAT,
    FORMAT_VERSION,
    codes_dtype,
    read_meta,
    shard_name,
    write_shard,
    written_shards,
)

# What coding a shard tells whoever shows progress: ("start", its number), ("file",
# seconds of audio done), ("skipped", the skipped line), ("shard", its number) once written.
Event = tuple[str, object]
Report = Callable[[Event], None]


@dataclass(frozen=True)
class TokenJob:
    """What a process needs to code shards: the model (loaded where it runs), the
    settings every shard records, and the plan."""
    model_path: str
    device: str
    out_dir: Path
    settings: dict
    plan: Plan

    @property
    def n_q(self) -> int:
        return self.settings["n_q"]

    @property
    def side_info(self) -> bool:
        return self.settings["side_info"]

    def shard_path(self, index: int) -> Path:
        return self.out_dir / shard_name(index, len(self.plan.shards))


def token_settings(model: PretrainedModel, n_q: int, kbps: float, *, side_info: bool,
                   min_seconds: float, shard_rows: int) -> dict:
    """What decides the tokens and how to read them; every shard records it."""
    network, coding = model.network, model.coding
    grid = level_grid(network, coding, model.target_lufs, n_q) if side_info else None
    return {
        "model_id": model.model_id, "n_q": n_q, "codebook_size": network.config.codebook_size,
        "frame_rate": network.frame_rate, "sample_rate": network.sample_rate,
        "hop_length": network.hop_length, "model_channels": network.config.channels,
        "kbps": kbps, "codes_kbps": network.bitrate(n_q) / 1000,
        "coded_kbps": coded_kbps(network, coding, n_q), "side_info": side_info,
        "band_levels": 0 if grid is None else grid.bands, "target_lufs": model.target_lufs,
        "chunk_frames": chunk_frames_for(network, None),
        "context_frames": context_frames(network, coding.postfilter),
        "dtype": codes_dtype(network.config.codebook_size).name,
        "min_seconds": min_seconds, "shard_rows": shard_rows,
    }


def _detail(path: Path, error: CodecError) -> str:
    text = str(error)
    return text[len(f"{path}: "):] if text.startswith(f"{path}: ") else text


def skip_reason(path: Path, min_seconds: float) -> tuple[str, str] | None:
    """Why a file cannot be tokenized, as (reason, detail), or None if it can be tried."""
    if not os.path.lexists(path):
        return "missing", "no such file"
    try:
        info = audio_info(path)
    except CodecError as error:
        return "unreadable", _detail(path, error)
    if info.frames == 0:
        return "empty", "0 samples"
    if info.duration < min_seconds:
        return "too_short", f"{info.duration:.4f} s, under --min-seconds {min_seconds:g}"
    return None


def code_file(model: PretrainedModel, source: Source,
              job: TokenJob) -> tuple[EncodedCodes, int, int] | dict:
    """The file's codes with its rate and channel count, or its skipped line."""
    path = Path(source.path)
    reason = skip_reason(path, job.settings["min_seconds"])
    if reason is None:
        try:
            audio = file_source(path)
            result = encode_codes(model, audio, job.n_q, level_match=job.side_info,
                                  band_levels=job.side_info)
            return result, audio.sample_rate, audio.channels
        except CodecError as error:
            reason = "not_coded", _detail(path, error)
    return {"path": source.path, "line": source.line, "reason": reason[0],
            "detail": reason[1]}


@dataclass
class _ShardContents:
    """What a shard gathers, file by file."""
    name: str
    rows: int = 0
    level_bytes: int = 0

    def __post_init__(self) -> None:
        self.codes: list[np.ndarray] = []
        self.offsets: list[int] = [0]
        self.levels: list[bytes] = []
        self.index: list[dict] = []
        self.skipped: list[dict] = []

    def add(self, source: Source, result: EncodedCodes, rate: int, channels: int,
            job: TokenJob) -> None:
        items, n_q, frames = result.codes.shape
        dtype = codes_dtype(job.settings["codebook_size"])
        self.codes.append(result.codes.transpose(0, 2, 1).reshape(-1, n_q).astype(dtype))
        self.offsets += [self.rows + frames * (item + 1) for item in range(items)]
        line = {"path": source.path, "line": source.line, "shard": self.name,
                "start": self.rows, "end": self.rows + items * frames, "items": items,
                "frames": frames, "source_rate": rate, "channels": channels,
                "length": result.length, "seconds": round(result.length / rate, 6)}
        self.rows += items * frames
        if job.side_info:
            line.update(gain=result.gain, band_levels=None)
            if result.levels is not None:
                data, line["band_levels"] = result.levels.to_bytes()
                line["levels"] = [self.level_bytes, self.level_bytes + len(data)]
                self.levels.append(data)
                self.level_bytes += len(data)
        self.index.append(line)


def code_shard(model: PretrainedModel, job: TokenJob, index: int, report: Report) -> None:
    """Code the files of shard ``index`` and write it, reporting each file as it is done."""
    plan = job.plan
    report(("start", index))
    contents = _ShardContents(shard_name(index, len(plan.shards)))
    for position in plan.shards[index]:
        source = plan.sources[position]
        outcome = code_file(model, source, job)
        if isinstance(outcome, dict):
            contents.skipped.append(outcome)
            report(("skipped", outcome))
        else:
            contents.add(source, *outcome, job)
        report(("file", plan.seconds[position]))
    dtype = codes_dtype(job.settings["codebook_size"])
    codes = (np.concatenate(contents.codes) if contents.codes
             else np.zeros((0, job.n_q), dtype=dtype))
    write_shard(job.shard_path(index), codes, np.array(contents.offsets, dtype=np.int64),
                b"".join(contents.levels) if job.side_info else None,
                shard_meta(job, index, contents))
    report(("shard", index))


def shard_meta(job: TokenJob, index: int, contents: _ShardContents) -> dict:
    """A shard's metadata: the same for the same plan, whichever process writes it."""
    files = job.plan.shards[index]
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "shard": index,
            "shards": len(job.plan.shards), "plan": job.plan.plan_id,
            "listing": len(job.plan.sources), "sources": [files.start, files.stop],
            "rows": contents.rows, "settings": job.settings, "versions": package_versions(),
            "index": contents.index, "skipped": contents.skipped}


def check_out_dir(job: TokenJob) -> None:
    """CodecError when ``job.out_dir`` holds shards another plan cut (another count)."""
    ours = {job.shard_path(index) for index in range(len(job.plan.shards))}
    others = [path for path in written_shards(job.out_dir) if path not in ours]
    if others:
        raise CodecError(f"{job.out_dir} holds shards of another run ({others[0].name}: "
                         f"other files or settings); tokenize into a new folder, or delete "
                         f"{job.out_dir} first")


def shard_done(job: TokenJob, index: int) -> bool:
    """Whether shard ``index`` is written already (a rerun skips it). CodecError when the
    file there belongs to another plan: other files, settings or model."""
    path = job.shard_path(index)
    if not path.exists():
        return False
    try:
        meta = read_meta(path)
    except CodecError:
        return False  # not whole or not ours: coded again and replaced
    if meta["plan"] != job.plan.plan_id:
        raise CodecError(f"{path} was made from other files or settings (plan "
                         f"{meta['plan']}, this run's is {job.plan.plan_id}); tokenize into "
                         f"a new folder, or delete {job.out_dir} first")
    return True
