"""Tokens back to audio: a file's rows (or any rows) put back in the ``.qca`` container
they came from, and decoded as ``codec decode`` decodes it.

A source file's tokens and side information (gain, band levels) make exactly the file
``codec encode`` writes at the same bitrate (bit-packed, without the model's name), so
they decode to the same samples at the original rate, length and level. Rows that are
not one file's (a sequence model's output) decode as one sequence at the model's rate
and training level, without band levels.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from codec.coding import bitstream
from codec.compress import decode_file
from codec.errors import CodecError
from codec.pretrained import PretrainedModel
from codec.tokens.shards import (
    INDEX_FILE,
    SHARD_DIR,
    read_level_bytes,
    read_meta,
    read_rows,
    written_shards,
)


def _metas(out_dir: Path) -> list[dict]:
    found = written_shards(out_dir)
    if not found:
        raise CodecError(f"{out_dir}: no token shards in {out_dir / SHARD_DIR}")
    return [read_meta(path) for path in found]


def _same_file(listed: str, wanted: str) -> bool:
    return listed == wanted or os.path.abspath(listed) == os.path.abspath(wanted)


def find_file(out_dir: Path, path: str) -> dict:
    """The index line of source ``path`` (the merged index, else the shards'); CodecError
    saying why when it has none (not listed, or skipped)."""
    index_file = out_dir / INDEX_FILE
    if index_file.is_file():
        with open(index_file, encoding="utf-8") as handle:
            for text in handle:
                line = json.loads(text)
                if _same_file(line["path"], path):
                    return line
    metas = _metas(out_dir)
    for meta in metas:
        for line in meta["index"]:
            if _same_file(line["path"], path):
                return line
    for meta in metas:
        for line in meta["skipped"]:
            if _same_file(line["path"], path):
                raise CodecError(f"{path} was skipped when tokenizing: {line['reason']} "
                                 f"({line['detail']})")
    raise CodecError(f"{path} is not among the files tokenized in {out_dir}")


def container(settings: dict, codes: np.ndarray, *, source_rate: int, channels: int,
              length: int, gain: float, level_data: bytes = b"",
              level_field: dict | None = None) -> bytes:
    """The bytes of the ``.qca`` file holding codes ``[items, n_q, frames]``."""
    bits = settings["codebook_size"].bit_length() - 1
    payload = bitstream.pack_codes(codes, bits) + level_data
    header = bitstream.Header(
        model_id=settings["model_id"], sample_rate=settings["sample_rate"],
        hop_length=settings["hop_length"], coded_channels=settings["model_channels"],
        source_rate=source_rate, channels=channels, length=length, n_q=codes.shape[1],
        codebook_size=settings["codebook_size"], frames=codes.shape[-1], gain=gain,
        chunk_frames=settings["chunk_frames"], context_frames=settings["context_frames"],
        payload_bytes=len(payload), band_levels=level_field)
    return bitstream.to_bytes(header, payload)


def file_container(out_dir: Path, settings: dict, line: dict) -> bytes:
    """The ``.qca`` bytes of one source file's tokens and side information."""
    shard = out_dir / line["shard"]
    rows = read_rows(shard, line["start"], line["end"])
    codes = rows.reshape(line["items"], line["frames"], -1).transpose(0, 2, 1)
    level_data, level_field = b"", line.get("band_levels")
    if level_field is not None:
        level_data = read_level_bytes(shard, *line["levels"])
    return container(settings, codes, source_rate=line["source_rate"],
                     channels=line["channels"], length=line["length"],
                     gain=line.get("gain", 1.0), level_data=level_data,
                     level_field=level_field)


def parse_rows(text: str) -> tuple[int, int, int]:
    """``"SHARD:START:END"`` -> numbers; CodecError unless START < END."""
    parts = text.split(":")
    if len(parts) != 3 or not all(p.strip().isdigit() for p in parts) \
            or int(parts[1]) >= int(parts[2]):
        raise CodecError(f"--rows takes SHARD:START:END (a shard's number and a row range, "
                         f"START < END), got {text!r}")
    shard, start, end = map(int, parts)
    return shard, start, end


def rows_container(out_dir: Path, settings: dict, shard: int, start: int, end: int) -> bytes:
    """The ``.qca`` bytes of rows ``start:end`` of shard ``shard`` as one sequence."""
    found = sorted((out_dir / SHARD_DIR).glob(f"tokens-{shard:05d}-of-*.safetensors"))
    if not found:
        raise CodecError(f"{out_dir}: no shard {shard}")
    rows = read_rows(found[0], start, end)
    if len(rows) != end - start:
        raise CodecError(f"{found[0]} has {start + len(rows)} rows, fewer than {end}")
    codes = rows.T[None]  # [1, n_q, frames]
    channels = settings["model_channels"]
    return container(settings, codes, source_rate=settings["sample_rate"], channels=channels,
                     length=len(rows) * settings["hop_length"], gain=1.0)


def decode_container(model: PretrainedModel, settings: dict, data: bytes, out_path: Path, *,
                     subtype: str, overwrite: bool) -> int:
    """Decode ``.qca`` bytes made by :func:`container` to an audio file as ``codec decode``
    does; the number of samples clipped. CodecError unless ``model`` made the tokens."""
    if model.model_id != settings["model_id"]:
        raise CodecError(f"the tokens were made by model {settings['model_id']}, but --model "
                         f"is {model.model_id}; detokenize with the model that made them")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"tokens{bitstream.SUFFIX}"
        path.write_bytes(data)
        return decode_file(model, path, out_path, subtype=subtype, overwrite=overwrite)
