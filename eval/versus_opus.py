"""``python -m eval.versus_opus EVAL_DIR``: the codec against Opus, metric by metric.

Reads the ``summary.json`` that ``eval.evaluate --opus`` wrote and prints, for the
codec's highest headline bitrate (6 kbps by default), the codec beside Opus at the same
nominal bitrate and beside the Opus reference (12 kbps), with which one is better on
each metric. PESQ and STOI are means over the speech files only.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from codec.errors import CodecError
from eval.results import read_json, text_table

# (metric, label, True when higher is better); RMS ratio is judged by distance to 1.
COMPARED = (("snr", "SNR dB", True), ("si_sdr", "SI-SDR dB", True),
            ("mel_distance", "mel distance", False), ("pesq", "PESQ (speech)", True),
            ("stoi", "STOI (speech)", True), ("rms_ratio", "RMS ratio", None))


def _pick(systems: list[dict], kind: str, kbps: float | None = None,
          reference: bool = False) -> dict | None:
    matches = [s for s in systems if s["kind"] == kind and bool(s.get("reference")) == reference
               and (kbps is None or abs(s["nominal_kbps"] - kbps) < 1e-6)]
    return max(matches, key=lambda s: s["nominal_kbps"]) if matches else None


def better(metric_higher: bool | None, ours: float, theirs: float) -> bool:
    if metric_higher is None:
        return abs(ours - 1) <= abs(theirs - 1)
    return ours > theirs if metric_higher else ours < theirs


def comparison(summary: dict, kbps: float | None = None) -> tuple[str, dict]:
    """The printed table and a dict of verdicts ``{metric: codec beats Opus}``."""
    systems = summary["systems"]
    ours = _pick(systems, "codec", kbps)
    if ours is None:
        raise CodecError("the summary has no codec system at that bitrate")
    same = _pick(systems, "opus", ours["nominal_kbps"])
    reference = _pick(systems, "opus", reference=True)
    if same is None:
        raise CodecError("the summary has no Opus rows: run eval.evaluate with --opus")
    columns = [ours, same] + ([reference] if reference else [])
    rows, verdicts = [], {}
    for metric, label, higher in COMPARED:
        values = [c["mean"].get(metric) for c in columns]
        if values[0] is None or values[1] is None:
            continue
        verdicts[metric] = better(higher, values[0], values[1])
        rows.append([label] + values + ["codec" if verdicts[metric] else "Opus"])
    rows.append(["actual kbps"] + [c["actual_kbps"] for c in columns] + [""])
    headers = ["metric"] + [c["label"] for c in columns] + [
        f"better at {ours['nominal_kbps']:g} kbps"]
    return text_table(headers, rows), verdicts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.versus_opus", description=__doc__)
    parser.add_argument("eval_dir", help="output folder of eval.evaluate --opus")
    parser.add_argument("--kbps", type=float, help="codec bitrate to compare (default: highest)")
    args = parser.parse_args(argv)
    path = Path(args.eval_dir) / "summary.json"
    try:
        if not path.is_file():
            raise CodecError(f"{path}: not found (run eval.evaluate first)")
        table, verdicts = comparison(read_json(path), args.kbps)
    except CodecError as error:
        print(f"eval.versus_opus: error: {error}", file=sys.stderr)
        return 2
    print(table)
    wins = sum(verdicts.values())
    print(f"codec better on {wins} of {len(verdicts)} metrics")
    return 0


if __name__ == "__main__":
    sys.exit(main())
