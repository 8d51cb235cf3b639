"""The evaluation report: one self-contained ``index.html``.

Plots (PNG) and listening excerpts (16-bit FLAC, which every current browser plays)
are embedded as base64 data URIs, so the page opens from disk or as an e-mail
attachment with no server and no other files. Tables of every file stay beside it as
CSV and are linked.

    python -m eval.report OUT_DIR      # rebuild OUT_DIR/index.html from summary.json
"""
from __future__ import annotations

import base64
import csv
import html
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

from codec.audio import write_audio
from eval.rate_distortion import LABELS, SHORT_LABELS
from eval.results import format_number, read_json

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222;
       padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.plots { display: flex; flex-wrap: wrap; gap: 0.5em; } .plots img { max-width: 32em; }
.spectrogram img { max-width: 100%; } ul.flags li { color: #a30; }
.note { color: #555; font-size: 0.9em; } audio { height: 2em; vertical-align: middle; }
code { background: #f4f4f4; padding: 0 0.2em; }
"""

# ---------------------------------------------------------------------------
# HTML pieces (shared with eval.diagnostics)


def data_uri(path: str | Path, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def image_tag(path: str | Path, alt: str) -> str:
    return (f'<img src="{data_uri(path, "image/png")}" alt="{html.escape(alt)}" '
            f'title="{html.escape(alt)}">')


def audio_tag(path: str | Path, title: str) -> str:
    return (f'<audio controls preload="metadata" title="{html.escape(title)}" '
            f'src="{data_uri(path, "audio/flac")}"></audio>')


def table_html(headers: Sequence[str], rows: Iterable[Sequence[Any]], css: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for value in row:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                cells.append(f'<td class="num">{html.escape(format_number(value))}</td>')
            elif isinstance(value, Markup):
                cells.append(f"<td>{value}</td>")
            else:
                cells.append(f"<td>{html.escape(format_number(value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>'
            + "".join(body) + "</tbody></table>")


class Markup(str):
    """Text already in HTML, put into a table cell as it is."""


def page(title: str, sections: Sequence[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
            f"<h1>{html.escape(title)}</h1>" + "\n".join(sections) + "</body></html>\n")


# ---------------------------------------------------------------------------
# Listening excerpts


def write_clips(excerpts: list[dict], systems: list[tuple[str, str]],
                clips_dir: str | Path) -> list[dict]:
    """Write each excerpt's original and decoded versions as FLAC under ``clips_dir``.

    excerpts: ``{"name", "speech", "sample_rate", "start", "length", "audio": {key: [C, T]}}``.
    Returns, per clip, the players in order: original first, then ``systems`` order;
    paths are relative to the parent of ``clips_dir`` (the report's folder).
    """
    clips_dir = Path(clips_dir)
    labels = [("original", "original")] + list(systems)
    listing = []
    for number, excerpt in enumerate(excerpts, 1):
        folder = clips_dir / f"{number:02d}"
        players = []
        for key, label in labels:
            audio = excerpt["audio"].get(key)
            if audio is None:
                continue
            path = folder / f"{key}.flac"
            write_audio(path, audio, excerpt["sample_rate"], subtype="PCM_16")
            players.append({"key": key, "label": label,
                            "path": str(path.relative_to(clips_dir.parent))})
        rate = excerpt["sample_rate"]
        listing.append({"name": excerpt["name"], "speech": excerpt["speech"],
                        "start_seconds": excerpt["start"] / rate,
                        "seconds": excerpt["length"] / rate, "players": players})
    return listing


# ---------------------------------------------------------------------------
# The evaluation page

TABLE_METRICS = ("snr", "si_sdr", "rms_ratio", "mel_distance", "stft_distance", "pesq", "stoi")


def _summary_rows(summaries: list[dict]) -> list[list]:
    rows = []
    for s in summaries:
        rows.append([s["label"], s["nominal_kbps"], s["actual_kbps"], s.get("payload_kbps"),
                     s.get("entropy_kbps")]
                    + [s["mean"].get(m) for m in TABLE_METRICS]
                    + [", ".join(str(d) for d in s["delay_samples"]),
                       s["encode_rtf"], s["decode_rtf"]])
    return rows


SUMMARY_HEADERS = (["system", "nominal kbps", "actual kbps", "payload kbps", "entropy kbps"]
                   + [SHORT_LABELS[m] for m in TABLE_METRICS]
                   + ["delay (samples)", "encode RTF", "decode RTF"])


def _model_section(summary: dict) -> str:
    model = summary["model"]
    env = summary.get("environment", {})
    facts = [("model", model.get("path")), ("model id", model.get("model_id")),
             ("preset", model.get("preset")), ("sample rate", model.get("sample_rate")),
             ("channels", model.get("channels")), ("codebooks", model.get("n_q")),
             ("codebook size", model.get("codebook_size")),
             ("frame rate (Hz)", model.get("frame_rate")),
             ("kbps per codebook", model.get("kbps_per_codebook")),
             ("parameters", model.get("parameters")),
             ("data", summary.get("data")),
             ("files", f"{len(summary['files'])} ({summary['speech_files']} speech)"),
             ("audio seconds", summary.get("duration_seconds")),
             ("evaluation seconds", summary.get("runtime_seconds")),
             ("torch / threads", f"{env.get('torch')} / {env.get('threads')}")]
    return "<h2>Setup</h2>" + table_html(["", ""], [[k, v] for k, v in facts])


def _notes_section(summary: dict) -> str:
    notes = summary.get("notes") or []
    items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return ("<p class=\"note\">Means over files. RTF: compute seconds per second of audio "
            "(below 1 is faster than real time). Entropy kbps: what an ideal static "
            f"entropy coder would need for the codes seen.</p><ul class=\"note\">{items}</ul>")


def _rd_section(out_dir: Path, rd: dict) -> str:
    parts = ["<h2>Rate-distortion</h2>"]
    rows = rd["codec"] + rd["opus"] + ([rd["opus_reference"]] if rd.get("opus_reference")
                                       else [])
    metrics = [m for m in TABLE_METRICS if any(r.get(m) is not None for r in rows)]
    headers = ["system", "nominal kbps", "actual kbps", "payload kbps"] + \
        [SHORT_LABELS[m] for m in metrics]
    parts.append(table_html(headers, [[r["label"], r["nominal_kbps"], r["actual_kbps"],
                                       r.get("payload_kbps")] + [r.get(m) for m in metrics]
                                      for r in rows], css="rd"))
    images = [image_tag(out_dir / "rd" / name, LABELS[metric])
              for metric, name in rd.get("plots", {}).items()]
    parts.append(f'<div class="plots">{"".join(images)}</div>')
    parts.append(f'<p class="note">Tables: <a href="rd/{rd["csv"]}">{rd["csv"]}</a>, '
                 f'<a href="rd/{rd["json"]}">{rd["json"]}</a>.</p>')
    return "\n".join(parts)


def _clips_section(out_dir: Path, clips: list[dict]) -> str:
    if not clips:
        return ""
    parts = ["<h2>Listen</h2>"]
    for clip in clips:
        kind = "speech" if clip["speech"] else "other"
        parts.append(f"<h3>{html.escape(clip['name'])} <span class=\"note\">({kind}, "
                     f"{clip['seconds']:.1f} s from {clip['start_seconds']:.1f} s)</span></h3>")
        rows = [[p["label"], Markup(audio_tag(out_dir / p["path"], p["label"]))]
                for p in clip["players"]]
        parts.append(table_html(["version", "audio"], rows, css="clips"))
        if clip.get("spectrogram"):
            figure = image_tag(out_dir / clip["spectrogram"],
                               "spectrograms: original, decoded, difference")
            parts.append(f'<div class="spectrogram">{figure}</div>')
    parts.append('<p class="note">Excerpts are 16-bit: decoded samples beyond full scale are '
                 "clipped here as in any 16-bit file; the metrics use the unclipped output.</p>")
    return "\n".join(parts)


def _training_section(training: dict) -> str:
    """Steps, wall time, data manifests, provenance and config of the model's training."""
    if not training:
        return ('<h2 id="training">Training</h2><p class="note">The model records no '
                "training facts (no meta.json beside it).</p>")
    latest = (training.get("provenance") or [{}])[-1]
    git = latest.get("git") or {}
    commit = (f"{git['commit'][:12]}{' (dirty)' if git.get('dirty') else ''}"
              if git.get("commit") else "not recorded")
    seconds = training.get("trained_seconds")
    data = training.get("data") or {}
    facts = [("steps", training.get("step")),
             ("wall time", f"{seconds / 60:.1f} min" if seconds is not None else None),
             ("skipped steps", training.get("skipped_steps")),
             ("training data", ", ".join(map(str, data.get("train") or [])) or None),
             ("validation data", data.get("valid") or None),
             ("git commit", commit),
             ("versions", ", ".join(f"{k} {v}" for k, v in (latest.get("versions") or {}).items())
              or None),
             ("command", latest.get("command")),
             ("training invocations", len(training.get("provenance") or []))]
    parts = ['<h2 id="training">Training</h2>',
             table_html(["", ""], [[k, v if v is not None else "not recorded"]
                                   for k, v in facts], css="training")]
    if training.get("config"):
        text = json.dumps(training["config"], indent=1)
        parts.append(f"<details><summary>resolved config</summary><pre>{html.escape(text)}"
                     "</pre></details>")
    return "\n".join(parts)


def _groups_section(groups: list[dict]) -> str:
    """Each system's figures per top-level group (speech, music, ...) with spread."""
    if not groups:
        return ""
    metrics = [m for m in TABLE_METRICS if any(m in g["metrics"] for g in groups)]
    rows = []
    for g in groups:
        cells = []
        for m in metrics:
            f = g["metrics"].get(m)
            cells.append(f"{f['mean']:.3g} ± {f['std']:.2g} (IQR {f.get('iqr', 0):.2g}, "
                         f"n={f['n']})" if f else "")
        rows.append([g["system"], g["group"], g["files"], *cells])
    return ('<h2 id="groups">By group</h2>'
            + table_html(["system", "group", "files"] + [SHORT_LABELS[m] for m in metrics],
                         rows, css="groups")
            + '<p class="note">mean ± standard deviation, interquartile range and number of '
              "files; a group is a file's manifest group or top-level folder.</p>")


def _flags_section(flags: list[str]) -> str:
    items = "".join(f"<li>{html.escape(f)}</li>" for f in flags)
    body = f'<ul class="flags">{items}</ul>' if flags else \
        '<p class="note flags">Nothing flagged: no collapsed codebook, no outlier file.</p>'
    return '<h2 id="flags">Flags</h2>' + body


def _wide_section(wide: dict) -> str:
    if not wide or not wide.get("rows"):
        return ""
    return ('<h2 id="per-file">Per file</h2>'
            + table_html(wide["headers"], wide["rows"], css="wide")
            + '<p class="note">One row per file, a column per metric, system and bitrate.</p>')


def _files_section(out_dir: Path, summaries: list[dict]) -> str:
    parts = ["<h2>Every file</h2><details><summary>per-file table</summary>"]
    columns = ["file", "system", "actual_kbps", "snr", "si_sdr", "rms_ratio", "mel_distance",
               "pesq", "stoi", "delay_samples"]
    rows = []
    for s in summaries:
        path = out_dir / "results" / f"{s['key']}.csv"
        if not path.is_file():
            continue
        with open(path, newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                rows.append([_as_number(row.get(c, "")) for c in columns])
    parts.append(table_html(columns, rows, css="files"))
    links = ", ".join(f'<a href="results/{s["key"]}.csv">{s["key"]}.csv</a>' for s in summaries)
    parts.append(f'</details><p class="note">CSV: {links}, '
                 '<a href="files.csv">files.csv</a> (every system).</p>')
    return "\n".join(parts)


def _as_number(text: str) -> Any:
    try:
        return float(text) if text not in ("", "True", "False") else text
    except ValueError:
        return text


def write_report(out_dir: str | Path) -> Path:
    """Build ``out_dir/index.html`` from ``summary.json`` and the files beside it."""
    out_dir = Path(out_dir)
    summary = read_json(out_dir / "summary.json")
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sections = [f'<p class="note">Written {when}.</p>',
                _model_section(summary),
                _training_section(summary.get("training") or {}),
                "<h2>Summary</h2>",
                table_html(SUMMARY_HEADERS, _summary_rows(summary["systems"]), css="summary"),
                _notes_section(summary),
                _flags_section(summary.get("flags") or []),
                _groups_section(summary.get("groups") or []),
                _rd_section(out_dir, summary["rate_distortion"]),
                _clips_section(out_dir, summary.get("clips", [])),
                _wide_section(summary.get("wide") or {}),
                _files_section(out_dir, summary["systems"])]
    path = out_dir / "index.html"
    path.write_text(page("Codec evaluation", sections), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not (Path(args[0]) / "summary.json").is_file():
        print("usage: python -m eval.report OUT_DIR  (a folder written by eval.evaluate)",
              file=sys.stderr)
        return 2
    print(write_report(args[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
