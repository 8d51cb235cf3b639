"""Token shards on disk: a corpus's codes as sequence-model trainers read them.

``codec tokenize`` writes a folder::

    OUT_DIR/
      shards/tokens-00000-of-00012.safetensors   each shard written whole, then renamed
      index.jsonl     each source file: its manifest line, shard and rows (the merge)
      skipped.jsonl   each file left out, with the reason (the merge)
      tokens.json     the settings, the totals and where they came from (the merge)

Why safetensors: the toolkit already keeps its weights in it; PyTorch, JAX and numpy
read it without pickle and without this toolkit; ``safe_open`` maps the file and reads
one tensor, or a slice of one, without reading the rest (a data loader takes one file's
rows, not the shard); and its header holds text, so each shard describes itself. A
numpy ``.npy`` holds one array and nothing else: a shard would be three files (codes,
offsets, a JSON) that could be left out of step by a job killed between them.

A shard holds:

- ``codes`` ``[rows, n_q]`` int16 (int32 for codebooks of more than 32768 codes): the
  frames of its sequences one after another, a row per frame, codebooks coarse to fine;
- ``offsets`` ``[sequences + 1]`` int64: sequence ``s`` is rows ``offsets[s]:offsets[s+1]``.
  A sequence is a source file, or one channel of it when a mono model codes a
  multichannel file (its channels then follow each other, in order);
- with side information, ``levels`` ``[bytes]`` uint8: the band levels each file's
  ``.qca`` carries (empty when the model sends none), at the byte range its index line
  gives;
- one metadata key, ``tokens``: JSON (one key, because safetensors writes a map's keys
  in no fixed order, and a shard must be the same bytes whoever writes it) with the
  settings (model id, codebooks, frame rate, bitrates), the toolkit's and packages'
  versions, the shard's number and plan, its index lines and its skipped files.

An index line (``index.jsonl``, and each shard's own) gives ``path``, ``line`` (the
manifest's line, from 1; in a folder, the file's place in its sorted listing), ``shard``
(its file under OUT_DIR), rows ``start:end``, ``items`` (sequences) of ``frames`` rows
each, and the source's ``source_rate``, ``channels``, ``length`` (samples per channel)
and ``seconds``. With side information it also gives ``gain``, the factor the audio
was multiplied by before encoding (the .qca header's, level match included: decoding
divides by it), and ``band_levels`` (the .qca header's description of the levels, or
null) with ``levels``, their byte range in the shard's ``levels``.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save

from codec.errors import CodecError

FORMAT = "codec-tokens"
FORMAT_VERSION = 1
SHARD_DIR = "shards"
INDEX_FILE = "index.jsonl"
SKIPPED_FILE = "skipped.jsonl"
SUMMARY_FILE = "tokens.json"
META_KEY = "tokens"


def shard_name(index: int, count: int) -> str:
    """The shard's path under OUT_DIR."""
    return f"{SHARD_DIR}/tokens-{index:05d}-of-{count:05d}.safetensors"


def codes_dtype(codebook_size: int) -> np.dtype:
    """int16 where every code fits (trainers' embedding lookups take signed integers)."""
    return np.dtype(np.int16 if codebook_size <= 1 << 15 else np.int32)


def temporary_name(path: Path) -> Path:
    """A name beside ``path`` no other process uses, also on a shared file system."""
    return path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.tmp")


def write_shard(path: Path, codes: np.ndarray, offsets: np.ndarray, levels: bytes | None,
                meta: dict) -> None:
    """The shard, written under a temporary name and renamed: a reader (or a rerun) sees
    the whole shard or none. CodecError when it cannot be written."""
    tensors = {"codes": np.ascontiguousarray(codes), "offsets": offsets.astype(np.int64)}
    if levels is not None:
        tensors["levels"] = np.frombuffer(levels, dtype=np.uint8).copy()
    text = json.dumps(meta, sort_keys=True, ensure_ascii=False, allow_nan=False)
    tmp = temporary_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(save(tensors, metadata={META_KEY: text}))  # the usual permissions
        os.replace(tmp, path)
    except (OSError, SafetensorError) as error:
        raise CodecError(f"{path}: cannot write ({getattr(error, 'strerror', None) or error})"
                         ) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def read_meta(path: Path) -> dict:
    """A shard's metadata; CodecError for a file that is not a readable shard."""
    try:
        with safe_open(str(path), framework="np") as handle:
            text = (handle.metadata() or {}).get(META_KEY)
    except (OSError, SafetensorError) as error:
        raise CodecError(f"{path}: not a readable token shard ({error})") from None
    try:
        meta = json.loads(text) if text is not None else None
    except json.JSONDecodeError:
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CodecError(f"{path}: not a token shard (no {META_KEY!r} metadata)")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CodecError(f"{path}: token shard format {meta.get('format_version')}; this "
                         f"toolkit reads {FORMAT_VERSION}")
    return meta


def _tensor_slice(path: Path, name: str, start: int | None = None,
                  end: int | None = None) -> np.ndarray:
    try:
        with safe_open(str(path), framework="np") as handle:
            if name not in handle.keys():
                raise CodecError(f"{path}: holds no {name!r} (tokenized with --no-side-info?)")
            return handle.get_slice(name)[start:end]
    except (OSError, SafetensorError) as error:
        raise CodecError(f"{path}: cannot read {name!r} ({error})") from None


def read_rows(path: Path, start: int | None = None, end: int | None = None) -> np.ndarray:
    """Rows ``start:end`` of a shard's codes, ``[rows, n_q]``."""
    return _tensor_slice(path, "codes", start, end)


def read_sequences(path: Path) -> list[np.ndarray]:
    """Every sequence of a shard, ``[frames, n_q]`` each, in order."""
    codes, offsets = read_rows(path), _tensor_slice(path, "offsets")
    return [codes[offsets[s]:offsets[s + 1]] for s in range(len(offsets) - 1)]


def read_level_bytes(path: Path, start: int, end: int) -> bytes:
    """Bytes ``start:end`` of a shard's band levels."""
    return _tensor_slice(path, "levels", start, end).tobytes()


def written_shards(out_dir: Path) -> list[Path]:
    """The finished shard files under ``out_dir`` (any plan), sorted."""
    return sorted((out_dir / SHARD_DIR).glob("tokens-*-of-*.safetensors"))


def stored_settings(out_dir: Path) -> dict:
    """The settings the tokens in ``out_dir`` were made with (its summary's, else its
    first shard's)."""
    summary = out_dir / SUMMARY_FILE
    if summary.is_file():
        return json.loads(summary.read_text(encoding="utf-8"))["settings"]
    found = written_shards(out_dir)
    if not found:
        raise CodecError(f"{out_dir}: no token shards in {out_dir / SHARD_DIR}")
    return read_meta(found[0])["settings"]


def read_index(out_dir: Path) -> list[dict]:
    """The merged index's lines, in order; CodecError before the merge."""
    path = out_dir / INDEX_FILE
    if not path.is_file():
        raise CodecError(f"{out_dir}: no {INDEX_FILE}; the shards are merged when all are "
                         f"written (codec tokenize --merge {out_dir})")
    with open(path, encoding="utf-8") as handle:
        return [json.loads(text) for text in handle if text.strip()]
