"""Measure a trained codec on a set of files, against Opus, and write a report.

    python -m eval.evaluate --model exp/x/best --data data/test.jsonl -o exp/x/eval \\
        [--kbps 1.5,3,6] [--max-files N] [--opus [--opus-twice]] [--rd]
        [--kind auto|speech|music]

Every number comes from the path a user takes: audio -> ``codec.compress.encode``
-> bytes written to a file and read back -> ``codec.compress.decode`` -> audio. The bitrate is
measured from the file's size, and encode and decode are timed separately.

Written to OUT_DIR:

- ``results/<system>.csv``  one row per file: every metric, bytes, bitrate, timings
  (for a stereo file also each channel's RMS ratio and the inter-channel level
  difference error, ``eval.stereo``);
- ``results/<system>.json`` the set's summary for that system (means, medians, actual
  bitrate, codebook usage entropy, real-time factors);
- ``files.csv`` all rows together; ``summary.json`` everything the report shows;
- ``rd/`` rate-distortion tables and plots (``eval.rate_distortion``);
- ``clips/`` short excerpts for listening; ``index.html`` the report (``eval.report``).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

import codec
from codec import checkpoint, metrics
from codec.audio import read_audio
from codec.coding.bitrate import codebooks_for_kbps, coded_kbps
from codec.errors import CodecError
from codec.pretrained import PretrainedModel, read_metadata
from eval import breakdown, opus, rate_distortion, report, spectrograms, stereo
from eval.coding import (
    Coded,
    add_coding_arguments,
    code_with_model,
    code_with_opus,
    load_for_coding,
    matched,
    run_coding_command,
)
from eval.dataset import EvalItem, list_items
from eval.excerpts import pick_clip_items, start_excerpt
from eval.results import text_table, write_csv, write_json

DEFAULT_KBPS = (1.5, 3.0, 6.0)


@dataclass(frozen=True)
class System:
    """One way of coding: the model with ``n_q`` codebooks, or Opus at ``nominal_kbps``."""
    kind: str
    nominal_kbps: float
    n_q: int | None = None
    reference: bool = False

    @property
    def key(self) -> str:
        return f"codec-nq{self.n_q}" if self.kind == "codec" else f"opus-{self.nominal_kbps:g}kbps"

    @property
    def label(self) -> str:
        if self.kind == "codec":
            plural = "s" if self.n_q != 1 else ""
            return f"codec {self.nominal_kbps:g} kbps ({self.n_q} codebook{plural})"
        return f"Opus {self.nominal_kbps:g} kbps"


# ---------------------------------------------------------------------------
# Which systems to run


def plan_systems(model: PretrainedModel, kbps: tuple[float, ...], *, rd: bool,
                 with_opus: bool,
                 opus_twice: bool = False) -> tuple[list[System], list[System]]:
    """``(headline, all)``: the systems at the asked bitrates (plus the Opus reference
    row), and every system to run (adding each codebook count for the RD curves).

    Opus runs at the codec's nominal bitrate for each codebook count (with the share a
    model that sends band levels sets aside for them), so the two are compared at the
    same target; with ``opus_twice`` also at twice each headline bitrate, what a codec
    should be judged against when it claims to halve the rate.
    """
    network, coding = model.network, model.coding
    counts = [codebooks_for_kbps(network, coding, k) for k in kbps]
    headline: list[System] = []
    for n_q in dict.fromkeys(counts):
        rate = coded_kbps(network, coding, n_q)
        headline.append(System("codec", rate, n_q))
        if with_opus:
            headline.append(System("opus", rate))
        if with_opus and opus_twice:
            headline.append(System("opus", 2 * rate))
    if with_opus:
        headline.append(System("opus", opus.REFERENCE_KBPS, reference=True))
    headline = _each_once(headline)
    every = list(headline)
    if rd:
        for n_q in range(1, model.config.n_q + 1):
            rate = coded_kbps(network, coding, n_q)
            every.append(System("codec", rate, n_q))
            if with_opus:
                every.append(System("opus", rate))
    unique = {s.key: s for s in reversed(every)}  # the headline copy wins (reference flag)
    every = sorted(unique.values(), key=lambda s: (s.kind != "codec", s.nominal_kbps))
    return headline, every


def _each_once(systems: list[System]) -> list[System]:
    """``systems`` with each key once, where it first comes; the reference's copy wins,
    so that Opus at twice a rate and the reference row are one row."""
    kept: dict[str, System] = {}
    for system in systems:
        if system.key not in kept or system.reference:
            kept[system.key] = system
    return list(kept.values())


# ---------------------------------------------------------------------------
# Summaries


def summarize(system: System, rows: list[dict], model: codec.Codec,
              codes: list[torch.Tensor]) -> dict:
    """The set's figures for one system: mean and median of every metric (NaN results,
    such as PESQ finding no speech, are left out and counted), bitrate from the total
    bytes over the total duration, and real-time factors (compute seconds per second of
    audio; below 1 is faster than real time)."""
    duration = sum(r["duration"] for r in rows)
    summary = {
        "key": system.key, "label": system.label, "kind": system.kind,
        "n_q": system.n_q, "nominal_kbps": system.nominal_kbps, "reference": system.reference,
        "files": len(rows), "speech_files": sum(bool(r["speech"]) for r in rows),
        "duration_seconds": duration,
        "actual_kbps": sum(r["file_bytes"] for r in rows) * 8 / duration / 1000,
        "encode_rtf": sum(r["encode_seconds"] for r in rows) / duration,
        "decode_rtf": sum(r["decode_seconds"] for r in rows) / duration,
        "delay_samples": sorted({r["delay_samples"] for r in rows}),
        "mean": {}, "median": {}, "count": {},
    }
    if all("payload_bytes" in r for r in rows):
        summary["payload_kbps"] = sum(r["payload_bytes"] for r in rows) * 8 / duration / 1000
    for name in metrics.METRICS + metrics.SPEECH_METRICS + stereo.STEREO_METRICS:
        values = [r[name] for r in rows if name in r and not math.isnan(r[name])]
        if values:
            summary["mean"][name] = _mean(values)
            summary["median"][name] = float(statistics.median(values))
            summary["count"][name] = len(values)
    if codes:
        entropy = metrics.codebook_entropy(torch.cat(codes, dim=-1), model.config.codebook_size)
        summary["codebook_entropy_bits"] = entropy
        summary["entropy_kbps"] = sum(entropy) * model.frame_rate / 1000
    return summary


def _mean(values: list[float]) -> float:
    # math.fsum keeps inf (a lossless file) as inf instead of raising.
    return math.fsum(values) / len(values)


def summary_table(summaries: list[dict]) -> str:
    """The headline systems as the text table the command prints."""
    shown = report.TABLE_METRICS
    headers = ["system", "nominal kbps", "actual kbps", "payload kbps"] + \
        [rate_distortion.SHORT_LABELS[m] for m in shown] + ["enc RTF", "dec RTF"]
    rows = [[s["label"], s["nominal_kbps"], s["actual_kbps"], s.get("payload_kbps")]
            + [s["mean"].get(m) for m in shown] + [s["encode_rtf"], s["decode_rtf"]]
            for s in summaries]
    return text_table(headers, rows)


# ---------------------------------------------------------------------------
# The evaluation


def model_facts(model: PretrainedModel) -> dict:
    """What the summary records of the model: its id, shape, bitrate and coding settings."""
    network, config = model.network, model.config
    return {"model_id": model.model_id, "preset": config.preset,
            "sample_rate": network.sample_rate, "channels": config.channels,
            "n_q": config.n_q, "codebook_size": config.codebook_size,
            "frame_rate": network.frame_rate, "kbps_per_codebook": network.bitrate(1) / 1000,
            "parameters": network.num_parameters(), "postfilter": model.coding.postfilter,
            "band_levels": model.coding.band_levels}


def evaluate(model: PretrainedModel, items: list[EvalItem], out_dir: str | Path, *,
             kbps: tuple[float, ...] = DEFAULT_KBPS, with_opus: bool = False, rd: bool = False,
             opus_twice: bool = False,
             clips: int = 3, clip_seconds: float = 4.0, model_name: str = "",
             data_name: str = "", entropy: bool = False, level_match: bool = True) -> dict:
    """Run the evaluation and write everything under ``out_dir``; returns the summary.

    ``model`` is coded exactly as ``codec encode`` would: at its ``target_lufs``,
    range-coded with its entropy tables when ``entropy`` is set, its decoded level
    matched to the input's unless ``level_match`` is off.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    network = model.network.eval()
    notes: list[str] = []
    if with_opus and not opus.available():
        notes.append("Opus baseline skipped: opusenc/opusdec not found (install opus-tools).")
        with_opus = False
    headline, systems = plan_systems(model, kbps, rd=rd, with_opus=with_opus,
                                     opus_twice=opus_twice)
    started = time.perf_counter()
    measured = measure_set(model, items, systems, listened={s.key for s in headline},
                           clips=clips, clip_seconds=clip_seconds, entropy=entropy,
                           level_match=level_match)
    notes += measured.notes
    summaries = {s.key: summarize(s, measured.rows[s.key], network, measured.codes[s.key])
                 for s in systems}
    _write_results(out_dir, systems, measured.rows, summaries)
    notes += _notes(items, summaries, with_opus)
    summary = {
        "model": {"path": model_name, **model_facts(model),
                  "target_lufs": model.target_lufs, "entropy_coded": entropy,
                  "level_matched": level_match},
        "data": data_name,
        **_set_sections(model, items, headline, summaries, measured, out_dir),
        "notes": notes,
        "environment": _environment(),
        "runtime_seconds": time.perf_counter() - started,
    }
    write_json(out_dir / "summary.json", summary)
    report.write_report(out_dir)
    return summary


@dataclass
class Measurements:
    """What coding the set gave: per system key, one row per file and the codes of each
    file; the listening excerpts; a note for each file left out."""
    rows: dict[str, list[dict]]
    codes: dict[str, list[torch.Tensor]]
    excerpts: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def measure_set(model: PretrainedModel, items: list[EvalItem], systems: list[System], *,
                listened: set[str], clips: int, clip_seconds: float, entropy: bool,
                level_match: bool) -> Measurements:
    """Code every file with every system and measure it against the original; keep
    excerpts of ``clips`` files as decoded by the ``listened`` systems. CodecError when
    every file is empty."""
    clip_items = {i.name for i in pick_clip_items(list(items), clips)}
    measured = Measurements({s.key: [] for s in systems}, {s.key: [] for s in systems})
    with tempfile.TemporaryDirectory(prefix="codec-eval-") as scratch:
        for item in tqdm(items, desc="evaluate", unit="file", disable=None):
            original, rate = read_audio(item.path)
            if original.shape[-1] == 0:
                measured.notes.append(f"{item.name}: empty file, skipped.")
                continue
            excerpt = start_excerpt(item, original, rate, clip_seconds) \
                if item.name in clip_items else None
            for system in systems:
                coded = _code(system, model, original, rate, Path(scratch), entropy,
                              level_match)
                reference, decoded = matched(original, rate, coded)
                row = _file_row(item, rate, original.shape[-1], system, coded)
                row.update(metrics.measure(reference, decoded, rate, speech=item.speech))
                if reference.shape[0] == decoded.shape[0] == 2:
                    row.update(stereo.measure(reference, decoded, rate))
                measured.rows[system.key].append(row)
                if coded.codes is not None:
                    measured.codes[system.key].append(coded.codes.cpu())
                if excerpt is not None and system.key in listened:
                    start, length = excerpt["start"], excerpt["length"]
                    excerpt["audio"][system.key] = decoded[..., start:start + length]
            if excerpt is not None:
                measured.excerpts.append(excerpt)
    if not any(measured.rows.values()):
        raise CodecError("no audio to evaluate: every file was empty")
    return measured


def _set_sections(model: PretrainedModel, items: list[EvalItem], headline: list[System],
                  summaries: dict[str, dict], measured: Measurements, out_dir: Path) -> dict:
    """The summary's figures of the set: its files, the headline systems, the
    rate-distortion curves and listening clips (written under ``out_dir``), how the model
    was trained, and the per-group breakdown with its flags."""
    shown = [summaries[s.key] for s in headline]
    return {
        "files": [i.name for i in items],
        "speech_files": sum(i.speech for i in items),
        "duration_seconds": next(iter(summaries.values()))["duration_seconds"],
        "systems": shown,
        "rate_distortion": rate_distortion.write(list(summaries.values()), out_dir / "rd"),
        "clips": _write_clips(measured.excerpts, [(s.key, s.label) for s in headline],
                              out_dir),
        "training": training_facts(model),
        **_breakdown(measured.rows, headline, shown, model.config.codebook_size),
    }


def _write_clips(excerpts: list[dict], systems: list[tuple[str, str]],
                 out_dir: Path) -> list[dict]:
    """The excerpts as FLAC (``eval.report.write_clips``) and, for each, a spectrogram
    figure of original, decoded and difference per system (``eval.spectrograms``)."""
    listing = report.write_clips(excerpts, systems, out_dir / "clips")
    for number, (clip, excerpt) in enumerate(zip(listing, excerpts, strict=True), 1):
        path = out_dir / "clips" / f"{number:02d}" / "spectrogram.png"
        spectrograms.write_excerpt_figure(excerpt["audio"], excerpt["sample_rate"], systems,
                                          path)
        clip["spectrogram"] = str(path.relative_to(out_dir))
    return listing


def _breakdown(rows: dict[str, list[dict]], systems: list[System], headline: list[dict],
               codebook_size: int) -> dict:
    """Per-group figures with spread, the wide per-file table and the flags
    (``eval.breakdown``) of the systems the report shows."""
    labels = {s.key: s.label for s in systems}
    headers, table = breakdown.wide_rows(rows, labels)
    return {"groups": breakdown.group_summaries(rows, labels),
            "wide": {"headers": headers, "rows": table},
            "flags": breakdown.collapsed_codebooks(headline, codebook_size)
            + breakdown.outlier_files(rows, labels)}


def training_facts(model: PretrainedModel) -> dict:
    """How the model was trained, as its checkpoint's meta.json (or an export's header)
    records it: step, wall time, provenance of each training invocation, the data
    manifests and the config. Empty when nothing is recorded."""
    meta: dict = {}
    model_file = model.source.model_file
    if model_file is not None and (model_file.parent / checkpoint.META_FILE).is_file():
        with contextlib.suppress(CodecError):
            meta = checkpoint.read_meta(model_file.parent)
    elif model_file is not None:
        with contextlib.suppress(CodecError, ValueError):
            meta = json.loads(read_metadata(model_file).get("training", "{}"))
    config = meta.get("config") or {}
    facts = {key: meta[key] for key in ("step", "trained_seconds", "skipped_steps",
                                        "provenance") if key in meta}
    if config:
        facts["data"] = {key: config.get("data", {}).get(key) for key in ("train", "valid")}
        facts["config"] = config
    return facts


def _code(system: System, model: PretrainedModel, audio: torch.Tensor, rate: int,
          workdir: Path, entropy: bool, level_match: bool) -> Coded:
    if system.kind == "codec":
        return code_with_model(model, audio, rate, system.n_q, workdir, entropy, level_match)
    return code_with_opus(audio, rate, system.nominal_kbps, workdir)


def _write_results(out_dir: Path, systems: list[System], rows: dict[str, list[dict]],
                   summaries: dict[str, dict]) -> None:
    for system in systems:
        write_csv(out_dir / "results" / f"{system.key}.csv", rows[system.key])
        write_json(out_dir / "results" / f"{system.key}.json", summaries[system.key])
    write_csv(out_dir / "files.csv", [r for s in systems for r in rows[s.key]])


def _environment() -> dict:
    return {"toolkit": codec.__version__, "torch": torch.__version__,
            "threads": torch.get_num_threads(), "python": platform.python_version(),
            "machine": platform.machine()}


def _file_row(item: EvalItem, rate: int, frames: int, system: System, coded: Coded) -> dict:
    duration = frames / rate
    row = {"file": item.name, "group": item.group, "speech": item.speech,
           "system": system.key, "n_q": system.n_q, "nominal_kbps": system.nominal_kbps,
           "duration": duration, "sample_rate": rate, "file_bytes": coded.file_bytes,
           "actual_kbps": coded.file_bytes * 8 / duration / 1000}
    if coded.payload_bytes is not None:
        row["payload_bytes"] = coded.payload_bytes
        row["payload_kbps"] = coded.payload_bytes * 8 / duration / 1000
    row["encode_seconds"] = coded.encode_seconds
    row["decode_seconds"] = coded.decode_seconds
    return row


def _notes(items: list[EvalItem], summaries: dict[str, dict], with_opus: bool) -> list[str]:
    notes = ["Actual kbps is the compressed file's size over the audio's duration, "
             "headers included; payload kbps counts the coded audio alone; nominal kbps "
             "is frame rate x codebooks x bits per code."]
    if with_opus:
        notes.append("Opus actual kbps is the .opus file's size (Ogg pages and the OpusHead/"
                     "OpusTags headers included); Opus payload kbps counts its audio packets "
                     "alone. The difference is container overhead, large on short clips.")
    for s in summaries.values():
        if s["kind"] == "opus" and s["payload_kbps"] < 0.95 * s["nominal_kbps"]:
            notes.append(f"Opus asked for {s['nominal_kbps']:g} kbps spent "
                         f"{s['payload_kbps']:.3g} kbps on audio packets: hard CBR rounds each "
                         f"20 ms packet down to whole bytes.")
    speech = sum(i.speech for i in items)
    missing = metrics.missing_speech_packages()
    if speech and missing:
        notes.append(f"PESQ/STOI not computed: {', '.join(missing)} not installed "
                     f"(pip install '.[speech]').")
    elif not speech:
        notes.append("No speech files in the set, so no PESQ/STOI "
                     "(speech is a manifest group or folder named speech; or --kind speech).")
    delays = sorted({d for s in summaries.values() for d in s["delay_samples"]})
    if delays != [0]:
        notes.append(f"A constant delay between original and decoded audio was found and "
                     f"compensated before measuring (samples: {delays}).")
    return notes


# ---------------------------------------------------------------------------
# Command line


def parse_kbps(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise CodecError(f"--kbps must be numbers separated by commas, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise CodecError(f"--kbps needs positive numbers, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m eval.evaluate", description=__doc__.split(
        "\n")[0])
    add_coding_arguments(parser)
    parser.add_argument("-o", "--out", required=True, help="output folder")
    parser.add_argument("--kbps", default=",".join(f"{k:g}" for k in DEFAULT_KBPS),
                        help="comma-separated target bitrates (default: %(default)s)")
    parser.add_argument("--opus", action="store_true",
                        help="also measure Opus at the same bitrates and at 12 kbps")
    parser.add_argument("--opus-twice", action="store_true",
                        help="with --opus, also measure Opus at twice each bitrate")
    parser.add_argument("--rd", action="store_true",
                        help="rate-distortion curves over every codebook count")
    parser.add_argument("--clips", type=int, default=3, help="listening excerpts in the report")
    parser.add_argument("--clip-seconds", type=float, default=4.0)
    parser.add_argument("--entropy", action="store_true",
                        help="range-code with the model's entropy tables, as codec encode "
                             "--entropy does (made by codec entropy-tables)")
    parser.add_argument("--device", default="cpu")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def work() -> None:
        model = load_for_coding(args.model, args.device, args.entropy, args.postfilter,
                                args.band_levels)
        items = list_items(args.data, args.kind, args.max_files)
        summary = evaluate(model, items, args.out, kbps=parse_kbps(args.kbps),
                           with_opus=args.opus, opus_twice=args.opus_twice, rd=args.rd,
                           clips=args.clips,
                           clip_seconds=args.clip_seconds, model_name=str(args.model),
                           data_name=str(args.data), entropy=args.entropy,
                           level_match=args.level_match)
        print(summary_table(summary["systems"]))
        for note in summary["notes"]:
            print(f"note: {note}")
        print(f"{len(summary['files'])} files, {summary['duration_seconds']:.1f} s of audio, "
              f"{summary['runtime_seconds']:.1f} s; report: {Path(args.out) / 'index.html'}")

    return run_coding_command("eval.evaluate", args, work)

if __name__ == "__main__":
    sys.exit(main())
