"""Scan folders of audio, measure every file, and write train/valid/test manifests.

    python -m data_prep.manifest DIR [DIR ...] -o OUT_DIR [--seed 0]
        [--valid-fraction 0.05 | --valid-groups N] [--test-fraction 0.05 | --test-groups N]
        [--min-seconds 0.5] [--split-by group|file] [--group-depth N]
        [--stratify-depth 1] [--jobs 1]

A corpus too large for one process is measured by N jobs (a job array, several
machines), then merged; the merged manifests equal one process's:

    python -m data_prep.manifest DIR ... -o OUT_DIR --shard I/N    # each of I = 0..N-1
    python -m data_prep.manifest --merge -o OUT_DIR [--seed ...]    # then once

Writes into OUT_DIR:

- ``train.jsonl``, ``valid.jsonl``, ``test.jsonl``: one line per usable file with
  path (absolute), duration, sample_rate, channels, frames, loudness (integrated LUFS,
  ITU-R BS.1770-4), peak and group, sorted by path;
- ``skipped.jsonl``: every file left out, with a reason (unreadable, empty, too_short,
  silent, non_finite, not_audio) and a detail;
- ``summary.json``: files, hours and groups per split, skipped files by reason, options.

Every file under the folders is tried with soundfile, whatever its name; hidden files
and folders (``.git``, ``.DS_Store``) and OUT_DIR itself are not scanned. A bad file
never stops the scan. Splits follow :mod:`data_prep.split`: by group (folder) and
stratified by top-level folder unless asked otherwise, decided by a hash of the seed
and the group name, so a rerun writes identical files. With several DIRs, a group is
still the folder relative to its own DIR: ``a/spk1`` and ``b/spk1`` are one group.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

from tqdm import tqdm

from codec.errors import CodecError
from codec.train.data import MANIFEST_FIELDS
from data_prep.probe import REASONS, Measured, Rejected, probe
from data_prep.split import SPLITS, SplitSizes, assign_splits, group_of, stratum_of


@dataclass(frozen=True)
class Candidate:
    path: str  # absolute
    relative: str  # to its scanned root, "/"-separated


def _report_unreadable(error: OSError) -> None:
    print(f"warning: {error.filename}: cannot read folder ({error.strerror or error}); "
          f"its files are left out", file=sys.stderr)


def find_files(roots: Sequence[str | Path], exclude: Optional[Path] = None) -> list[Candidate]:
    """Every non-hidden file under ``roots``, sorted, each once (the first root wins)."""
    seen, found = set(), []
    excluded = os.path.abspath(exclude) if exclude else None
    for root in roots:
        root = os.path.abspath(root)
        if not os.path.isdir(root):
            raise CodecError(f"not a folder: {root}")
        for folder, subfolders, files in os.walk(root, onerror=_report_unreadable):
            subfolders[:] = sorted(d for d in subfolders if not d.startswith(".")
                                   and os.path.join(folder, d) != excluded)
            for name in sorted(files):
                path = os.path.join(folder, name)
                if name.startswith(".") or path in seen:
                    continue
                seen.add(path)
                found.append(Candidate(path, os.path.relpath(path, root).replace(os.sep, "/")))
    return sorted(found, key=lambda candidate: candidate.path)


def measure_all(paths: list[str], min_seconds: float, jobs: int) -> Iterator[Measured | Rejected]:
    """Probe each path in order, with a progress bar; ``jobs`` > 1 uses processes."""
    bar = dict(total=len(paths), desc="measuring", unit="file", dynamic_ncols=True)
    if jobs <= 1:
        yield from tqdm((probe(path, min_seconds) for path in paths), **bar)
        return
    with ProcessPoolExecutor(jobs) as pool:
        results = pool.map(probe, paths, [min_seconds] * len(paths), chunksize=4)
        yield from tqdm(results, **bar)


def manifest_line(candidate: Candidate, measured: Measured, group: str) -> dict:
    line = dict(path=candidate.path, duration=round(measured.duration, 6),
                sample_rate=measured.sample_rate, channels=measured.channels,
                frames=measured.frames, loudness=round(measured.loudness, 4),
                peak=round(measured.peak, 6), group=group)
    assert tuple(line) == tuple(MANIFEST_FIELDS)
    return line


@dataclass
class Measurements:
    """What measuring the candidates found: the usable files' manifest lines (with whether
    each lies directly in its scanned root, which splitting by file needs) and the files
    left out with their reasons."""
    used: list[dict]
    in_root: list[bool]
    skipped: list[dict]


def outcomes(candidates: list[Candidate], *, min_seconds: float, group_depth: Optional[int],
             jobs: int) -> Iterator[dict]:
    """Probe every candidate, in order: ``{"line": manifest line, "in_root": whether it lies
    directly in its scanned root}`` or ``{"skipped": path, reason and detail}``."""
    for candidate, result in zip(candidates, measure_all([c.path for c in candidates],
                                                         min_seconds, jobs), strict=True):
        if isinstance(result, Rejected):
            yield {"skipped": dict(path=candidate.path, reason=result.reason,
                                   detail=result.detail)}
        else:
            yield {"line": manifest_line(candidate, result,
                                         group_of(candidate.relative, group_depth)),
                   "in_root": "/" not in candidate.relative}


def gathered(results: Iterable[dict]) -> Measurements:
    """The :func:`outcomes` of a listing, gathered."""
    found = Measurements([], [], [])
    for outcome in results:
        if "line" in outcome:
            found.used.append(outcome["line"])
            found.in_root.append(outcome["in_root"])
        else:
            found.skipped.append(outcome["skipped"])
    return found


def check_split_by(split_by: str) -> None:
    if split_by not in ("group", "file"):
        raise CodecError(f"--split-by must be 'group' or 'file', got {split_by!r}")


def build(roots: Sequence[str | Path], out_dir: str | Path, *, seed: int = 0,
          sizes: Optional[SplitSizes] = None, min_seconds: float = 0.5, split_by: str = "group",
          group_depth: Optional[int] = None, stratify_depth: int = 1, jobs: int = 1) -> dict:
    """Scan, measure, split and write; returns the summary (also in summary.json). A
    merge of shard parts (:func:`write_part`, :func:`merge`) writes the same."""
    check_split_by(split_by)
    out_dir = Path(out_dir)
    candidates = find_files(roots, exclude=out_dir)
    if not candidates:
        raise CodecError(f"no files found under {', '.join(map(str, roots))}")
    found = gathered(outcomes(candidates, min_seconds=min_seconds, group_depth=group_depth,
                              jobs=jobs))
    return write_manifests(roots, out_dir, found, seed=seed, sizes=sizes or SplitSizes(),
                           min_seconds=min_seconds, split_by=split_by,
                           group_depth=group_depth, stratify_depth=stratify_depth)


def write_manifests(roots: Sequence[str | Path], out_dir: Path, found: Measurements, *,
                    seed: int, sizes: SplitSizes, min_seconds: float, split_by: str,
                    group_depth: Optional[int], stratify_depth: int) -> dict:
    """Split the measured files and write the manifests, skipped.jsonl and summary.json;
    the summary."""
    if not found.used:
        raise CodecError(f"none of the {len(found.used) + len(found.skipped)} files is usable "
                         f"audio (reasons in the skipped list below)\n"
                         + _reason_counts(found.skipped))
    splits = _split(found.used, found.in_root, split_by, sizes, seed, stratify_depth)
    summary = _summary(roots, found.used, splits, found.skipped, dict(
        seed=seed, valid_fraction=sizes.valid_fraction, test_fraction=sizes.test_fraction,
        valid_groups=sizes.valid_count, test_groups=sizes.test_count,
        min_seconds=min_seconds, split_by=split_by, group_depth=group_depth,
        stratify_depth=stratify_depth))
    for name in SPLITS:
        chosen = [line for line, split in zip(found.used, splits, strict=True) if split == name]
        write_jsonl(out_dir / f"{name}.jsonl", chosen)
    write_jsonl(out_dir / "skipped.jsonl", found.skipped)
    write_text(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _split(used: list[dict], in_root: list[bool], split_by: str, sizes: SplitSizes,
           seed: int, stratify_depth: int) -> list[str]:
    """The split of each line of ``used``."""
    if split_by == "group":
        units = [(line["group"], stratum_of(line["group"], stratify_depth)) for line in used]
        assignment = assign_splits(units, sizes, seed)
        return [assignment[line["group"]] for line in used]
    # By file: each folder's files are split among themselves, so every folder reaches
    # every split; files directly in a root are split as one set.
    units = [(line["path"], "" if root else line["group"])
             for line, root in zip(used, in_root, strict=True)]
    assignment = assign_splits(units, sizes, seed)
    return [assignment[line["path"]] for line in used]


def _summary(roots, used, splits, skipped, options) -> dict:
    per_split = {}
    for name in SPLITS:
        lines = [line for line, split in zip(used, splits, strict=True) if split == name]
        per_split[name] = dict(files=len(lines),
                               hours=round(sum(line["duration"] for line in lines) / 3600, 4),
                               groups=len({line["group"] for line in lines}))
    reasons = {reason: sum(1 for s in skipped if s["reason"] == reason) for reason in REASONS}
    return dict(roots=[os.path.abspath(r) for r in roots], options=options, splits=per_split,
                skipped={k: v for k, v in reasons.items() if v})


def _reason_counts(skipped: list[dict]) -> str:
    counts = {}
    for item in skipped:
        counts[item["reason"]] = counts.get(item["reason"], 0) + 1
    return ", ".join(f"{reason}: {count}" for reason, count in sorted(counts.items()))


def write_jsonl(path: Path, lines: list[dict]) -> None:
    """``lines`` as JSONL, sorted by path, written so that no reader sees half of it."""
    lines = sorted(lines, key=lambda line: line["path"])
    write_text(path, "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))


def write_text(path: Path, text: str) -> None:
    """Write through a temporary file so a reader never sees half a manifest; a failure
    (a full disk, a read-only folder) is a CodecError and leaves no temporary file."""
    temporary = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        raise CodecError(f"{path}: cannot write ({error.strerror or error})") from None


# ---------------------------------------------------------------------------
# A corpus too large for one process: measured in shards by many jobs, then merged.
#
# Every shard job lists the same folders (listing is quick; measuring loudness is what
# takes the time) and measures every N-th file of the sorted listing, from the I-th. It
# writes OUT_DIR/shards/part-I-of-N.json: the roots and measuring options, the listing's
# length and a hash of it, and for each of its files, by position in the listing, the
# manifest line or the reason it was skipped. The merge checks that all N parts are
# there, made from the same listing with the same options, and every position measured
# exactly once; then it splits and writes exactly what one process writes (the split
# depends on the files alone, not on their order or on which job measured them).

PARTS = "shards"
_PART_NAME = re.compile(r"^part-(\d+)-of-(\d+)\.json$")
# What every part must agree on with the others.
_SHARED = ("roots", "candidates", "listing_sha256", "min_seconds", "group_depth", "shards")


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> (I, N), with 0 <= I < N; CodecError otherwise."""
    match = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not match or not int(match[1]) < int(match[2]):
        raise CodecError(f"--shard must be I/N with 0 <= I < N, got {text!r}")
    return int(match[1]), int(match[2])


def _listing_hash(candidates: list[Candidate]) -> str:
    return hashlib.sha256("\n".join(c.path for c in candidates).encode()).hexdigest()


def part_path(out_dir: Path, shard: int, shards: int) -> Path:
    return Path(out_dir) / PARTS / f"part-{shard}-of-{shards}.json"


def write_part(roots: Sequence[str | Path], out_dir: str | Path, shard: int, shards: int, *,
               min_seconds: float, group_depth: Optional[int], jobs: int) -> Path:
    """Measure shard ``shard`` of ``shards`` of the files under ``roots``; its part file."""
    out_dir = Path(out_dir)
    candidates = find_files(roots, exclude=out_dir)
    if not candidates:
        raise CodecError(f"no files found under {', '.join(map(str, roots))}")
    positions = list(range(shard, len(candidates), shards))
    results = outcomes([candidates[p] for p in positions], min_seconds=min_seconds,
                       group_depth=group_depth, jobs=jobs)
    entries = [{"position": position, **outcome}
               for position, outcome in zip(positions, results, strict=True)]
    part = dict(roots=[str(Path(r).resolve()) for r in roots], candidates=len(candidates),
                listing_sha256=_listing_hash(candidates), min_seconds=min_seconds,
                group_depth=group_depth, shard=shard, shards=shards, entries=entries)
    path = part_path(out_dir, shard, shards)
    write_text(path, json.dumps(part) + "\n")
    return path


def _read_parts(out_dir: Path) -> list[dict]:
    folder = out_dir / PARTS
    names = sorted(p.name for p in folder.glob("part-*.json")) if folder.is_dir() else []
    if not names:
        raise CodecError(f"no shard parts in {folder} (python -m data_prep.manifest ... "
                         f"--shard I/N writes them)")
    parts = []
    for name in names:
        if not _PART_NAME.match(name):
            raise CodecError(f"{folder / name}: not a part name (part-I-of-N.json)")
        try:
            parts.append(json.loads((folder / name).read_text(encoding="utf-8")))
        except (OSError, ValueError) as error:
            raise CodecError(f"{folder / name}: cannot read ({error})") from None
    return parts


def _check_parts(parts: list[dict], folder: Path) -> None:
    first = parts[0]
    for part in parts:
        differing = [key for key in _SHARED if part.get(key) != first.get(key)]
        if differing:
            raise CodecError(f"the parts in {folder} disagree on {differing}: they come from "
                             f"different listings or options (remove the stale ones)")
    missing = sorted(set(range(first["shards"])) - {part["shard"] for part in parts})
    if missing:
        raise CodecError(f"{len(missing)} of {first['shards']} shards missing in {folder}: "
                         f"{', '.join(map(str, missing[:20]))}")


def _entries_in_order(parts: list[dict], folder: Path) -> list[dict]:
    by_position: dict[int, dict] = {}
    for part in parts:
        for entry in part["entries"]:
            if entry["position"] in by_position:
                raise CodecError(f"file {entry['position']} of the listing is in two parts "
                                 f"in {folder}")
            by_position[entry["position"]] = entry
    total = parts[0]["candidates"]
    if len(by_position) != total:
        raise CodecError(f"the parts in {folder} hold {len(by_position)} of the listing's "
                         f"{total} files")
    return [by_position[position] for position in range(total)]


def merge(out_dir: str | Path, *, seed: int, sizes: SplitSizes, split_by: str,
          stratify_depth: int) -> dict:
    """Check the parts in ``out_dir`` and write the manifests one process would; the
    summary."""
    out_dir = Path(out_dir)
    parts = _read_parts(out_dir)
    _check_parts(parts, out_dir / PARTS)
    found = gathered(_entries_in_order(parts, out_dir / PARTS))
    first = parts[0]
    return write_manifests(first["roots"], out_dir, found, seed=seed, sizes=sizes,
                           min_seconds=first["min_seconds"], split_by=split_by,
                           group_depth=first["group_depth"], stratify_depth=stratify_depth)


def print_summary(summary: dict, seconds: float, out_dir: Path) -> None:
    print(f"\n{'split':<8}{'files':>8}{'hours':>10}{'groups':>8}")
    for name, row in summary["splits"].items():
        print(f"{name:<8}{row['files']:>8}{row['hours']:>10.3f}{row['groups']:>8}")
    skipped = summary["skipped"]
    total = sum(skipped.values())
    detail = ", ".join(f"{reason} {count}" for reason, count in skipped.items())
    print(f"skipped {total} file(s){': ' + detail if detail else ''}"
          f"{' (see skipped.jsonl)' if total else ''}")
    print(f"wrote {out_dir}/{{train,valid,test,skipped}}.jsonl and summary.json "
          f"in {seconds:.1f} s")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m data_prep.manifest",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("dirs", nargs="*", metavar="DIR", help="folders to scan recursively")
    parser.add_argument("-o", "--out", required=True, metavar="OUT_DIR",
                        help="folder for the manifests")
    parser.add_argument("--seed", type=int, default=0, help="split seed (default 0)")
    valid = parser.add_mutually_exclusive_group()
    valid.add_argument("--valid-fraction", type=float, default=0.05,
                       help="share of each stratum's groups for valid (default 0.05, at least "
                            "one group when the stratum has three)")
    valid.add_argument("--valid-groups", type=int, help="groups per stratum for valid")
    test = parser.add_mutually_exclusive_group()
    test.add_argument("--test-fraction", type=float, default=0.05,
                      help="share of each stratum's groups for test (default 0.05)")
    test.add_argument("--test-groups", type=int, help="groups per stratum for test")
    parser.add_argument("--min-seconds", type=float, default=0.5,
                        help="shorter files are skipped as too_short (default 0.5)")
    parser.add_argument("--split-by", choices=("group", "file"), default="group",
                        help="unit of the split: folder groups (default) or single files, "
                             "which lets one speaker reach every split")
    parser.add_argument("--group-depth", type=int, default=None,
                        help="folder levels that name a group (default: the whole folder; "
                             "1 for speaker/chapter/*.flac trees)")
    parser.add_argument("--stratify-depth", type=int, default=1,
                        help="split groups within their top N folder levels, so each kind "
                             "(speech/, music/) reaches every split (default 1; 0: off)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="processes measuring files (default 1)")
    parser.add_argument("--shard", metavar="I/N",
                        help="measure only shard I of N into OUT_DIR/shards (then --merge)")
    parser.add_argument("--merge", action="store_true",
                        help="split and write the manifests from OUT_DIR/shards' parts")
    args = parser.parse_args(argv)
    if args.merge == bool(args.dirs):
        parser.error("give folders to scan, or --merge without them")
    if args.merge and args.shard:
        parser.error("--shard measures, --merge merges: one at a time")
    for name in ("valid_fraction", "test_fraction"):
        if not 0 <= getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be in [0, 1)")
    for name in ("valid_groups", "test_groups", "group_depth"):
        if getattr(args, name) is not None and getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be >= 0")
    return args


def _run(args: argparse.Namespace) -> dict | Path:
    """What the command line asks: the summary of the manifests written, or a part's path."""
    sizes = SplitSizes(args.valid_fraction, args.test_fraction, args.valid_groups,
                       args.test_groups)
    check_split_by(args.split_by)
    if args.shard:
        return write_part(args.dirs, args.out, *parse_shard(args.shard),
                          min_seconds=args.min_seconds, group_depth=args.group_depth or None,
                          jobs=args.jobs)
    if args.merge:
        return merge(args.out, seed=args.seed, sizes=sizes, split_by=args.split_by,
                     stratify_depth=args.stratify_depth)
    return build(args.dirs, args.out, seed=args.seed, sizes=sizes,
                 min_seconds=args.min_seconds, split_by=args.split_by,
                 group_depth=args.group_depth or None,
                 stratify_depth=args.stratify_depth, jobs=args.jobs)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    try:
        result = _run(args)
    except CodecError as error:
        print(f"data_prep.manifest: error: {error}", file=sys.stderr)
        return 2
    if isinstance(result, Path):
        print(f"wrote {result} in {time.perf_counter() - started:.1f} s")
    else:
        print_summary(result, time.perf_counter() - started, Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
