"""``python -m eval.versus_opus EVAL_DIR``: the codec against Opus, metric by metric.

Reads the ``summary.json`` that ``eval.evaluate --opus`` wrote and prints, for the
codec's highest headline bitrate (6 kbps by default), the codec beside Opus at the same
nominal bitrate and beside the Opus reference (12 kbps), with which one is better on
each metric: first over all files, then for each top-level group of files (speech,
music, ...), since a codec can win on music and lose on speech. PESQ and STOI are means
over the speech files only. The RMS ratio of each group is also checked against the
0.95-1.05 band, where a listener hears no change of level.
"""
from __future__ import annotations

import argparse
import sys

from codec.errors import CodecError
from eval.results import markdown_table, read_summary, text_table

# (metric, label, True when higher is better); RMS ratio is judged by distance to 1.
COMPARED = (("snr", "SNR dB", True), ("si_sdr", "SI-SDR dB", True),
            ("mel_distance", "mel distance", False), ("pesq", "PESQ (speech)", True),
            ("stoi", "STOI (speech)", True), ("rms_ratio", "RMS ratio", None))
LEVEL_BAND = (0.95, 1.05)


def _pick(systems: list[dict], kind: str, kbps: float | None = None,
          reference: bool = False) -> dict | None:
    matches = [s for s in systems if s["kind"] == kind and bool(s.get("reference")) == reference
               and (kbps is None or abs(s["nominal_kbps"] - kbps) < 1e-6)]
    return max(matches, key=lambda s: s["nominal_kbps"]) if matches else None


def better(metric_higher: bool | None, ours: float, theirs: float) -> bool:
    if metric_higher is None:
        return abs(ours - 1) <= abs(theirs - 1)
    return ours > theirs if metric_higher else ours < theirs


def compared_systems(summary: dict, kbps: float | None = None) -> list[dict]:
    """The codec at ``kbps`` (default: its highest), Opus at the same nominal bitrate,
    and the Opus reference when there is one; the codec alone when the evaluation ran
    no Opus."""
    systems = summary["systems"]
    ours = _pick(systems, "codec", kbps)
    if ours is None:
        raise CodecError("the summary has no codec system at that bitrate")
    same = _pick(systems, "opus", ours["nominal_kbps"])
    reference = _pick(systems, "opus", reference=True)
    if same is None:
        return [ours]
    return [ours, same] + ([reference] if reference else [])


def group_means(summary: dict, group: str, label: str) -> dict:
    """``{metric: mean}`` of system ``label`` over the files of ``group``."""
    for entry in summary.get("groups", []):
        if entry["system"] == label and entry["group"] == group:
            return {m: f["mean"] for m, f in entry["metrics"].items() if "mean" in f}
    return {}


def groups_of(summary: dict) -> list[str]:
    """The top-level groups the evaluation broke its figures down by, in order."""
    return sorted({entry["group"] for entry in summary.get("groups", [])})


def comparison(summary: dict, kbps: float | None = None, group: str | None = None
               ) -> tuple[list[str], list[list], dict]:
    """Headers, rows and the verdicts ``{metric: codec beats Opus}``, over all files or
    over the files of ``group``."""
    columns = compared_systems(summary, kbps)
    means = [c["mean"] if group is None else group_means(summary, group, c["label"])
             for c in columns]
    if len(columns) == 1:  # no Opus to compare with: the codec's figures alone
        rows = [[label, means[0][metric]] for metric, label, _ in COMPARED
                if means[0].get(metric) is not None]
        if group is None:
            rows.append(["actual kbps", columns[0]["actual_kbps"]])
        return ["metric", columns[0]["label"]], rows, {}
    rows, verdicts = [], {}
    for metric, label, higher in COMPARED:
        values = [m.get(metric) for m in means]
        if values[0] is None or values[1] is None:
            continue
        verdicts[metric] = better(higher, values[0], values[1])
        rows.append([label] + values + ["codec" if verdicts[metric] else "Opus"])
    if group is None:
        rows.append(["actual kbps"] + [c["actual_kbps"] for c in columns] + [""])
    headers = ["metric"] + [c["label"] for c in columns] + [
        f"better at {columns[0]['nominal_kbps']:g} kbps"]
    return headers, rows, verdicts


def verdict_line(verdicts: dict, rows: list[list]) -> str:
    """How many metrics the codec wins, and whether its level is inside the band."""
    line = f"codec better on {sum(verdicts.values())} of {len(verdicts)} metrics"
    level = next((row[1] for row in rows if row[0] == "RMS ratio"), None)
    if level is not None:
        inside = LEVEL_BAND[0] <= level <= LEVEL_BAND[1]
        line += (f"; RMS ratio {level:.3f} {'inside' if inside else 'OUTSIDE'} "
                 f"{LEVEL_BAND[0]:g}-{LEVEL_BAND[1]:g}")
    return line


def report(summary: dict, kbps: float | None = None, markdown: bool = False) -> str:
    """The comparison over all files, then per group, as printed text."""
    render = markdown_table if markdown else text_table
    if len(compared_systems(summary, kbps)) == 1:
        headers, rows, _ = comparison(summary, kbps)
        return (f"all files:\n{render(headers, rows)}\nOpus skipped: the evaluation has no "
                f"Opus rows (opus-tools not installed, or eval.evaluate without --opus)")
    sections = []
    for group in [None] + groups_of(summary):
        headers, rows, verdicts = comparison(summary, kbps, group)
        if not verdicts:
            continue
        title = "all files" if group is None else f"{group} files"
        sections.append(f"{title}:\n{render(headers, rows)}\n{verdict_line(verdicts, rows)}")
    return "\n\n".join(sections)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.versus_opus", description=__doc__)
    parser.add_argument("eval_dir", help="output folder of eval.evaluate --opus")
    parser.add_argument("--kbps", type=float, help="codec bitrate to compare (default: highest)")
    parser.add_argument("--markdown", action="store_true", help="Markdown tables")
    args = parser.parse_args(argv)
    try:
        print(report(read_summary(args.eval_dir), args.kbps, args.markdown))
    except CodecError as error:
        print(f"eval.versus_opus: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
