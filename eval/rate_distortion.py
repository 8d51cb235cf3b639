"""Rate-distortion: each metric against the measured bitrate, codec beside Opus.

Input is the per-system summaries from ``eval.evaluate`` (one per codebook count, and
one per Opus bitrate). Output, in one folder:

- ``rate_distortion.csv`` / ``.json``: one row per system with its bitrates and the
  mean of every metric; the JSON keeps the codec and Opus curves apart;
- ``<metric>.png``: the metric against kbps for the codec and Opus, solid at the
  bitrate of the whole file and dashed at the bitrate of the coded audio alone (the
  gap is container overhead: the .qca header, Ogg pages and Opus headers), and the
  Opus 12 kbps reference point.
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display is needed or wanted
import matplotlib.pyplot as plt  # noqa: E402

from eval.results import write_csv, write_json  # noqa: E402

LABELS = {
    "snr": "SNR (dB)", "si_sdr": "SI-SDR (dB)", "rms_ratio": "RMS ratio (1 = level kept)",
    "mel_distance": "log-mel distance", "stft_distance": "multi-resolution STFT distance",
    "pesq": "PESQ (wide band)", "stoi": "STOI",
}
SHORT_LABELS = {"snr": "SNR dB", "si_sdr": "SI-SDR dB", "rms_ratio": "RMS ratio",
                "mel_distance": "mel dist", "stft_distance": "STFT dist", "pesq": "PESQ",
                "stoi": "STOI"}
HIGHER_IS_BETTER = {"snr": True, "si_sdr": True, "mel_distance": False,
                    "stft_distance": False, "pesq": True, "stoi": True}
JSON_NAME = "rate_distortion.json"
CSV_NAME = "rate_distortion.csv"


def point(summary: dict) -> dict:
    """A flat table row from a system summary."""
    row = {key: summary.get(key) for key in
           ("key", "label", "kind", "n_q", "nominal_kbps", "actual_kbps", "payload_kbps",
            "entropy_kbps", "reference", "files")}
    row.update({name: summary["mean"].get(name) for name in LABELS})
    return row


def curves(summaries: list[dict]) -> dict:
    """``{"codec": [...], "opus": [...], "opus_reference": row or None}``, by bitrate."""
    rows = sorted((point(s) for s in summaries), key=lambda r: r["nominal_kbps"])
    reference = [r for r in rows if r["kind"] == "opus" and r["reference"]]
    return {"codec": [r for r in rows if r["kind"] == "codec"],
            "opus": [r for r in rows if r["kind"] == "opus" and not r["reference"]],
            "opus_reference": reference[0] if reference else None}


def plot_metric(data: dict, metric: str, path: str | Path) -> None:
    """One PNG: ``metric`` against measured kbps for every curve in ``data``."""
    figure, axes = plt.subplots(figsize=(5.2, 3.6), dpi=100)
    _line(axes, data["codec"], "actual_kbps", metric, "codec (file size)", "o-", "tab:blue")
    _line(axes, data["codec"], "payload_kbps", metric, "codec (payload only)", "o--",
          "tab:blue", alpha=0.45)
    _line(axes, data["opus"], "actual_kbps", metric, "Opus (file size)", "s-", "tab:orange")
    _line(axes, data["opus"], "payload_kbps", metric, "Opus (payload only)", "s--",
          "tab:orange", alpha=0.45)
    reference = data.get("opus_reference")
    if reference and _finite(reference.get(metric)):
        axes.plot(reference["actual_kbps"], reference[metric], "*", color="tab:red",
                  markersize=12, label=f"Opus {reference['nominal_kbps']:g} kbps (reference)")
    if metric == "rms_ratio":
        axes.axhline(1.0, color="gray", linewidth=0.8, linestyle=":")
    direction = {True: "higher is better", False: "lower is better"}.get(
        HIGHER_IS_BETTER.get(metric))
    axes.set_title(LABELS[metric] + (f"  ({direction})" if direction else ""), fontsize=10)
    axes.set_xlabel("kbit/s, measured")
    axes.set_ylabel(LABELS[metric])
    axes.grid(True, alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _line(axes, rows: list[dict], x: str, metric: str, label: str, style: str, color: str,
          alpha: float = 1.0) -> None:
    points = [(r[x], r[metric]) for r in rows if _finite(r.get(x)) and _finite(r.get(metric))]
    if points:
        axes.plot(*zip(*points, strict=True), style, color=color, label=label, alpha=alpha)


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def write(summaries: list[dict], out_dir: str | Path) -> dict:
    """Write the tables and plots; returns the curves and the file names (in ``out_dir``)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = curves(summaries)
    rows = data["codec"] + data["opus"] + ([data["opus_reference"]]
                                           if data["opus_reference"] else [])
    write_csv(out_dir / CSV_NAME, rows)
    write_json(out_dir / JSON_NAME, data)
    plots = {}
    for metric in LABELS:
        if any(_finite(r.get(metric)) for r in rows):
            plot_metric(data, metric, out_dir / f"{metric}.png")
            plots[metric] = f"{metric}.png"
    return {**data, "csv": CSV_NAME, "json": JSON_NAME, "plots": plots}
