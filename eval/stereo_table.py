"""``python -m eval.stereo_table EVAL_DIR [--markdown]``: a stereo codec beside Opus.

Reads the ``summary.json`` that ``eval.evaluate --opus --opus-twice`` wrote on stereo
files and prints one row per headline system (the codec at each bitrate, Opus at the
same bitrates and at twice them): the actual kbps (the files' size over their duration,
headers included), SNR, mel distance, each channel's RMS ratio and the inter-channel
level difference error (``eval.stereo``). Rows are in order of actual kbps, so a codec
row sits among the Opus rows it costs as much as.
"""
from __future__ import annotations

import argparse
import sys

from codec.errors import CodecError
from eval.results import markdown_table, read_summary, text_table

# (metric, column); each a mean over the files.
COLUMNS = (("snr", "SNR dB"), ("mel_distance", "mel distance"),
           ("rms_ratio_left", "RMS ratio L"), ("rms_ratio_right", "RMS ratio R"),
           ("ild_error_db", "ILD error dB"))


def table(summary: dict, markdown: bool = False) -> str:
    """The headline systems of ``summary`` as a table; CodecError when its files had no
    stereo figures (a mono model, or mono files)."""
    systems = sorted(summary["systems"], key=lambda s: (s["actual_kbps"], s["kind"]))
    if not any("ild_error_db" in s["mean"] for s in systems):
        raise CodecError("the evaluation holds no stereo figures: its files or its model "
                         "are not two-channel")
    headers = ["system", "actual kbps"] + [label for _, label in COLUMNS]
    rows = [[s["label"], s["actual_kbps"]] + [s["mean"].get(metric) for metric, _ in COLUMNS]
            for s in systems]
    return (markdown_table if markdown else text_table)(headers, rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.stereo_table",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("eval_dir", help="output folder of eval.evaluate")
    parser.add_argument("--markdown", action="store_true", help="a Markdown table")
    args = parser.parse_args(argv)
    try:
        print(table(read_summary(args.eval_dir), args.markdown))
    except CodecError as error:
        print(f"eval.stereo_table: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
