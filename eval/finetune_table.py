"""Several models side by side on the same files: before and after fine-tuning, and
trained from scratch.

    python -m eval.finetune_table before=EVAL_DIR finetuned=EVAL_DIR scratch=EVAL_DIR
        [--markdown]

Each EVAL_DIR is an output folder of ``eval.evaluate``. Prints one row per model and
codec bitrate with the set's mean of each metric (PESQ and STOI over the speech files
only), grouped by bitrate. The evaluations must cover the same files, or the numbers
would not be comparable: a CodecError says which differ.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from codec.errors import CodecError
from eval.rate_distortion import SHORT_LABELS
from eval.report import TABLE_METRICS
from eval.results import markdown_table, read_json, text_table


def read_summaries(named_dirs: list[str]) -> dict[str, dict]:
    """``{label: summary.json}`` from ``label=EVAL_DIR`` arguments, checked to cover the
    same files."""
    summaries = {}
    for item in named_dirs:
        label, separator, folder = item.partition("=")
        if not separator or not label or not folder:
            raise CodecError(f"expected label=EVAL_DIR, got {item!r}")
        path = Path(folder) / "summary.json"
        if not path.is_file():
            raise CodecError(f"{path}: not found (run eval.evaluate first)")
        summaries[label] = read_json(path)
    first_label, first = next(iter(summaries.items()))
    for label, summary in summaries.items():
        if summary["files"] != first["files"]:
            raise CodecError(f"{label} and {first_label} were evaluated on different files "
                             f"({len(summary['files'])} and {len(first['files'])})")
    return summaries


def table_rows(summaries: dict[str, dict]) -> tuple[list[str], list[list]]:
    """Headers and rows: for each codec bitrate, one row per model."""
    metrics = [m for m in TABLE_METRICS
               if any(m in s["mean"] for summary in summaries.values()
                      for s in summary["systems"])]
    rates = sorted({s["nominal_kbps"] for summary in summaries.values()
                    for s in summary["systems"] if s["kind"] == "codec"})
    rows = []
    for kbps in rates:
        for label, summary in summaries.items():
            system = next((s for s in summary["systems"] if s["kind"] == "codec"
                           and abs(s["nominal_kbps"] - kbps) < 1e-6), None)
            if system is not None:
                rows.append([label, f"{kbps:g}"] + [system["mean"].get(m) for m in metrics])
    return ["model", "kbps"] + [SHORT_LABELS[m] for m in metrics], rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.finetune_table",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("evaluations", nargs="+", metavar="label=EVAL_DIR")
    parser.add_argument("--markdown", action="store_true", help="a Markdown table")
    args = parser.parse_args(argv)
    try:
        summaries = read_summaries(args.evaluations)
    except CodecError as error:
        print(f"eval.finetune_table: error: {error}", file=sys.stderr)
        return 2
    headers, rows = table_rows(summaries)
    print(markdown_table(headers, rows) if args.markdown else text_table(headers, rows))
    files = next(iter(summaries.values()))["files"]
    print(f"{len(files)} files, the same for every model")
    return 0


if __name__ == "__main__":
    sys.exit(main())
