"""What the evaluation's per-file rows say beyond the means: figures per top-level group
(speech, music, ...) with their spread, one row per file across systems (wide), and
flags on what deserves a look (collapsed codebooks, outlier files).

Everything here is computed from the rows ``eval.evaluate`` writes (one dict per file
and system) and its per-system summaries; the report (``eval.report``) shows it.
"""
from __future__ import annotations

import math
import statistics
from typing import Sequence

# Metrics broken down by group, shown in the wide per-file table, and checked for outliers.
BREAKDOWN_METRICS = ("snr", "si_sdr", "rms_ratio", "mel_distance", "pesq", "stoi")
WIDE_METRICS = ("snr", "mel_distance")
OUTLIER_METRICS = {"snr": "low", "mel_distance": "high"}  # which side is bad
# A codebook is flagged when its usage entropy is below this share of log2(codebook size):
# it then carries almost nothing, while costing its full share of the bitrate.
COLLAPSED_SHARE = 0.1
# Tukey's fences: beyond this many interquartile ranges outside the quartiles.
OUTLIER_IQR = 1.5
MIN_FILES_FOR_OUTLIERS = 4


def group_of(row: dict) -> str:
    """A file's top-level group: its manifest group or first folder, else speech/other."""
    group = str(row.get("group") or "")
    if group:
        return group.split("/")[0]
    return "speech" if str(row.get("speech")) in ("True", "true", "1") else "other"


def spread(values: Sequence[float]) -> dict:
    """n, mean, standard deviation and interquartile range of the finite ``values``."""
    finite = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not finite:
        return {"n": 0}
    result = {"n": len(finite), "mean": math.fsum(finite) / len(finite),
              "std": statistics.stdev(finite) if len(finite) > 1 else 0.0}
    if len(finite) > 1:
        q1, _, q3 = statistics.quantiles(finite, n=4, method="inclusive")
        result["iqr"] = q3 - q1
    return result


def group_summaries(rows: dict[str, list[dict]], labels: dict[str, str]) -> list[dict]:
    """Per system (in ``labels`` order) and group: ``spread`` of each metric."""
    out = []
    for key, label in labels.items():
        groups = sorted({group_of(r) for r in rows.get(key, [])})
        for group in groups:
            members = [r for r in rows[key] if group_of(r) == group]
            figures = {m: spread([r[m] for r in members if m in r]) for m in BREAKDOWN_METRICS}
            out.append({"system": label, "group": group, "files": len(members),
                        "metrics": {m: f for m, f in figures.items() if f["n"]}})
    return out


def wide_rows(rows: dict[str, list[dict]], labels: dict[str, str],
              metrics: Sequence[str] = WIDE_METRICS) -> tuple[list[str], list[list]]:
    """(headers, rows): one row per file, a column per metric and system."""
    headers = ["file", "group"] + [f"{m} {labels[k]}" for m in metrics for k in labels]
    by_file: dict[str, dict[str, dict]] = {}
    for key in labels:
        for row in rows.get(key, []):
            by_file.setdefault(row["file"], {})[key] = row
    table = []
    for name, systems in by_file.items():
        any_row = next(iter(systems.values()))
        table.append([name, group_of(any_row)]
                     + [systems.get(k, {}).get(m) for m in metrics for k in labels])
    return headers, table


def collapsed_codebooks(summaries: Sequence[dict], codebook_size: int) -> list[str]:
    """A line for every codebook of a codec system whose usage entropy is below
    ``COLLAPSED_SHARE`` of ``log2(codebook_size)`` bits."""
    full = math.log2(codebook_size)
    flags = []
    for summary in summaries:
        for index, bits in enumerate(summary.get("codebook_entropy_bits") or []):
            if bits < COLLAPSED_SHARE * full:
                flags.append(f"{summary['label']}: codebook {index} is nearly unused "
                             f"({bits:.3f} of {full:g} bits per code, "
                             f"{100 * bits / full:.1f}%); it carries almost nothing")
    return flags


def outlier_files(rows: dict[str, list[dict]], labels: dict[str, str]) -> list[str]:
    """A line for every file beyond Tukey's fences on the bad side of a metric in
    ``OUTLIER_METRICS``, per system (only with at least ``MIN_FILES_FOR_OUTLIERS``)."""
    flags = []
    for key, label in labels.items():
        for metric, bad in OUTLIER_METRICS.items():
            pairs = [(r["file"], r[metric]) for r in rows.get(key, [])
                     if isinstance(r.get(metric), (int, float)) and math.isfinite(r[metric])]
            if len(pairs) < MIN_FILES_FOR_OUTLIERS:
                continue
            q1, _, q3 = statistics.quantiles([v for _, v in pairs], n=4, method="inclusive")
            low, high = q1 - OUTLIER_IQR * (q3 - q1), q3 + OUTLIER_IQR * (q3 - q1)
            for name, value in pairs:
                if (bad == "low" and value < low) or (bad == "high" and value > high):
                    flags.append(f"{label}: {name} is an outlier on {metric} ({value:.3g}; "
                                 f"the middle half of the files lies in [{q1:.3g}, {q3:.3g}])")
    return flags
