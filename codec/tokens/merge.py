"""The merge: checks that a token folder's shards are all there, each file in exactly one,
and writes the combined index, the skipped list and ``tokens.json``.

It reads only the shards' metadata, so it is quick however large they are. It runs by
itself at the end of any ``codec tokenize`` that finds every shard written (the last job
of an array to finish does it), or as ``codec tokenize --merge OUT_DIR``. Its files are
made from the shards alone, so a merge after N jobs writes what one process writes.
"""
from __future__ import annotations

import collections
import contextlib
import json
import os
from pathlib import Path

from codec.errors import CodecError
from codec.provenance import collect
from codec.tokens.shards import (
    FORMAT,
    FORMAT_VERSION,
    INDEX_FILE,
    SHARD_DIR,
    SKIPPED_FILE,
    SUMMARY_FILE,
    read_meta,
    shard_name,
    temporary_name,
    written_shards,
)


def _listed(numbers: list[int], limit: int = 5) -> str:
    more = f" and {len(numbers) - limit} more" if len(numbers) > limit else ""
    return ", ".join(map(str, numbers[:limit])) + more


def checked_shards(out_dir: Path) -> list[dict]:
    """Every shard's metadata, in order; CodecError for a shard missing, a file in no
    shard or in two, or shards of different plans."""
    found = written_shards(out_dir)
    if not found:
        raise CodecError(f"{out_dir}: no token shards in {out_dir / SHARD_DIR} (codec "
                         f"tokenize writes them)")
    metas = [read_meta(path) for path in found]
    plans = collections.Counter(meta["plan"] for meta in metas)
    if len(plans) > 1:
        raise CodecError(f"{out_dir} holds shards of {len(plans)} different runs (plans "
                         f"{', '.join(plans)}): other files or settings; keep one run a folder")
    count = metas[0]["shards"]
    by_number = {meta["shard"]: meta for path, meta in zip(found, metas, strict=True)
                 if path == out_dir / shard_name(meta["shard"], count)}
    missing = [n for n in range(count) if n not in by_number]
    if missing:
        raise CodecError(f"{out_dir}: {len(missing)} of {count} shards are missing (shard "
                         f"{_listed(missing)}); rerun codec tokenize with the same options "
                         f"to code them")
    ordered = [by_number[n] for n in range(count)]
    _check_files(out_dir, ordered)
    return ordered


def _check_files(out_dir: Path, metas: list[dict]) -> None:
    """Each shard holds the files of its part of the listing, and the parts tile it."""
    position = 0
    lines: collections.Counter = collections.Counter()
    for meta in metas:
        first, stop = meta["sources"]
        held = [entry["line"] for entry in meta["index"] + meta["skipped"]]
        if first != position or len(held) != stop - first:
            raise CodecError(f"{out_dir / shard_name(meta['shard'], len(metas))}: holds "
                             f"{len(held)} files of listing places {first}..{stop - 1}, "
                             f"expected places from {position}; delete it and rerun")
        lines.update(held)
        position = stop
    twice = sorted(line for line, times in lines.items() if times > 1)
    if twice:
        raise CodecError(f"{out_dir}: manifest lines {_listed(twice)} are in two shards")
    if position != metas[0]["listing"]:
        raise CodecError(f"{out_dir}: the shards hold {position} of the "
                         f"{metas[0]['listing']} files listed")


def _write(path: Path, text: str) -> None:
    tmp = temporary_name(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as error:
        raise CodecError(f"{path}: cannot write ({error.strerror or error})") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _jsonl(lines: list[dict]) -> str:
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)


def merge(out_dir: Path) -> dict:
    """Check the shards and write the index, the skipped list and the summary (returned)."""
    out_dir = Path(out_dir)
    metas = checked_shards(out_dir)
    index = [line for meta in metas for line in meta["index"]]
    skipped = [line for meta in metas for line in meta["skipped"]]
    versions = [meta["versions"] for meta in metas]
    summary = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "plan": metas[0]["plan"],
        "settings": metas[0]["settings"], "shards": len(metas), "files": len(index),
        "sequences": sum(line["items"] for line in index),
        "rows": sum(meta["rows"] for meta in metas),
        "seconds": round(sum(line["seconds"] for line in index), 3),
        "skipped": dict(sorted(collections.Counter(s["reason"] for s in skipped).items())),
        "versions": versions[0], "mixed_versions": any(v != versions[0] for v in versions),
        "provenance": collect(),
    }
    _write(out_dir / INDEX_FILE, _jsonl(index))
    _write(out_dir / SKIPPED_FILE, _jsonl(skipped))
    _write(out_dir / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
    for leftover in (out_dir / SHARD_DIR).glob(".*.tmp"):  # of jobs killed mid-shard
        with contextlib.suppress(OSError):
            leftover.unlink()
    return summary
