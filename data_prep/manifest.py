"""Scan folders of audio, measure every file, and write train/valid/test manifests.

    python -m data_prep.manifest DIR [DIR ...] -o OUT_DIR [--seed 0]
        [--valid-fraction 0.05 | --valid-groups N] [--test-fraction 0.05 | --test-groups N]
        [--min-seconds 0.5] [--split-by group|file] [--group-depth N]
        [--stratify-depth 1] [--jobs 1]

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
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence

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


def build(roots: Sequence[str | Path], out_dir: str | Path, *, seed: int = 0,
          sizes: Optional[SplitSizes] = None, min_seconds: float = 0.5, split_by: str = "group",
          group_depth: Optional[int] = None, stratify_depth: int = 1, jobs: int = 1) -> dict:
    """Scan, measure, split and write; returns the summary (also in summary.json)."""
    sizes = sizes or SplitSizes()
    if split_by not in ("group", "file"):
        raise CodecError(f"--split-by must be 'group' or 'file', got {split_by!r}")
    out_dir = Path(out_dir)
    candidates = find_files(roots, exclude=out_dir)
    if not candidates:
        raise CodecError(f"no files found under {', '.join(map(str, roots))}")
    used: list[dict] = []
    in_root: list[bool] = []  # whether each used file lies directly in its scanned root
    skipped: list[dict] = []
    for candidate, result in zip(candidates, measure_all([c.path for c in candidates],
                                                         min_seconds, jobs), strict=True):
        if isinstance(result, Rejected):
            skipped.append(dict(path=candidate.path, reason=result.reason, detail=result.detail))
        else:
            used.append(manifest_line(candidate, result,
                                      group_of(candidate.relative, group_depth)))
            in_root.append("/" not in candidate.relative)
    if not used:
        raise CodecError(f"none of the {len(candidates)} files is usable audio "
                         f"(reasons in the skipped list below)\n" + _reason_counts(skipped))
    splits = _split(used, in_root, split_by, sizes, seed, stratify_depth)
    summary = _summary(roots, used, splits, skipped, dict(
        seed=seed, valid_fraction=sizes.valid_fraction, test_fraction=sizes.test_fraction,
        valid_groups=sizes.valid_count, test_groups=sizes.test_count,
        min_seconds=min_seconds, split_by=split_by, group_depth=group_depth,
        stratify_depth=stratify_depth))
    for name in SPLITS:
        chosen = [line for line, split in zip(used, splits, strict=True) if split == name]
        write_jsonl(out_dir / f"{name}.jsonl", chosen)
    write_jsonl(out_dir / "skipped.jsonl", skipped)
    _write_text(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
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
    _write_text(path, "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))


def _write_text(path: Path, text: str) -> None:
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
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="folders to scan recursively")
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
    args = parser.parse_args(argv)
    for name in ("valid_fraction", "test_fraction"):
        if not 0 <= getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be in [0, 1)")
    for name in ("valid_groups", "test_groups", "group_depth"):
        if getattr(args, name) is not None and getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be >= 0")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    sizes = SplitSizes(args.valid_fraction, args.test_fraction, args.valid_groups,
                       args.test_groups)
    started = time.perf_counter()
    try:
        summary = build(args.dirs, args.out, seed=args.seed, sizes=sizes,
                        min_seconds=args.min_seconds, split_by=args.split_by,
                        group_depth=args.group_depth or None,
                        stratify_depth=args.stratify_depth, jobs=args.jobs)
    except CodecError as error:
        print(f"data_prep.manifest: error: {error}", file=sys.stderr)
        return 2
    print_summary(summary, time.perf_counter() - started, Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
