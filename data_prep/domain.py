"""Manifests of one domain of a corpus: its music, or one voice.

    python -m data_prep.domain IN_DIR OUT_DIR --group music [--seed 0]

Reads IN_DIR/{train,valid,test}.jsonl (from ``data_prep.manifest``) and writes to
OUT_DIR the lines whose group is ``--group`` or lies under it (``music`` takes
``music/track7``; ``speech/en-us-m1`` takes one voice).

When the selection reaches every split, the corpus's own splits are kept: test files
then come from groups (tracks, voices) that a model trained on IN_DIR never heard.
A single group lies in one split only; its files are then split among themselves
(as ``data_prep.manifest --split-by file`` would), and a model trained on IN_DIR may
have heard them if that group was in its training split: a warning says so.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

from codec.errors import CodecError
from data_prep.split import SPLITS, SplitSizes, assign_splits


def _read(path: Path) -> list[dict]:
    if not path.is_file():
        raise CodecError(f"{path}: not found (make the manifests with data_prep.manifest)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _in_group(line: dict, group: str) -> bool:
    return line["group"] == group or line["group"].startswith(group.rstrip("/") + "/")


def select(in_dir: str | Path, group: str, seed: int = 0) -> tuple[dict[str, list[dict]], str]:
    """The lines of each split that belong to ``group``, and the source of the split
    (``"corpus"``: kept; ``"files"``: the group's files split among themselves)."""
    chosen = {name: [line for line in _read(Path(in_dir) / f"{name}.jsonl")
                     if _in_group(line, group)] for name in SPLITS}
    if all(chosen.values()):
        return chosen, "corpus"
    lines = sorted((line for name in SPLITS for line in chosen[name]), key=lambda x: x["path"])
    if len(lines) < 3:
        raise CodecError(f"group {group!r}: {len(lines)} file(s) in {in_dir}; at least 3 are "
                         f"needed for train, valid and test")
    assignment = assign_splits([(line["path"], "") for line in lines], SplitSizes(), seed)
    return {name: [x for x in lines if assignment[x["path"]] == name] for name in SPLITS}, "files"


def write(splits: dict[str, list[dict]], out_dir: str | Path) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, lines in splits.items():
        (out_dir / f"{name}.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_prep.domain",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("in_dir", help="folder with train/valid/test.jsonl")
    parser.add_argument("out_dir", help="folder for the selected manifests")
    parser.add_argument("--group", required=True,
                        help="group or group prefix to keep (music, speech/en-us-m1)")
    parser.add_argument("--seed", type=int, default=0, help="split seed for one group's files")
    args = parser.parse_args(argv)
    try:
        splits, source = select(args.in_dir, args.group, args.seed)
    except CodecError as error:
        print(f"data_prep.domain: error: {error}", file=sys.stderr)
        return 2
    write(splits, args.out_dir)
    counts = ", ".join(f"{name} {len(lines)}" for name, lines in splits.items())
    print(f"{args.out_dir}: {args.group}: {counts} files")
    if source == "files":
        print(f"warning: {args.group} lies in one split of {args.in_dir}; its files were split "
              f"among themselves, so a model trained on {args.in_dir} may have heard the test "
              f"files", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
