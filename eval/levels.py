"""Where a codec's decoded level departs from the input's: by frequency band and by the
loudness of each frame.

    python -m eval.levels --model RUN --data MANIFEST [--kbps 6] [--opus] [--json OUT]

A mean SNR or mel distance says how far off a codec is, not where. For each top-level
group of files (speech, music, ...) this prints two tables, summed over the group:

- **bands**: the decoded energy over the input's in each frequency band (dB), and the
  SNR there. A band far below 0 dB is one the codec leaves out (a low-pass); a band near
  0 dB with an SNR near or under 0 dB is filled at the right level with the wrong
  waveform.
- **frame loudness**: 20 ms frames classed by the input's level (dBFS); the mean level
  of the input and of the decoded audio in each class, and the part of the mean mel
  distance (codec.metrics.mel_distance) that the class's frames make (the parts add up
  to it). Pauses coded as noise show as a quiet class decoded far louder than it was, and
  as a mel part far above the class's share of frames; a codec that flattens the
  dynamics shows quiet classes too loud and loud ones too quiet.

Files are coded as ``codec encode`` codes them (the level matched unless
``--no-level-match``), and with ``--opus`` by Opus at the same bitrate beside them.
"""
from __future__ import annotations

import argparse
import bisect
import json
import math
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from codec.audio import read_audio
from codec.compress import codebooks
from codec.errors import CodecError
from codec.metrics import MEL_SCALES, mel_frame_distances
from eval import opus
from eval.breakdown import group_of
from eval.coding import (
    add_coding_arguments,
    code_with_model,
    code_with_opus,
    load_for_coding,
    matched,
    run_coding_command,
)
from eval.dataset import list_items
from eval.results import markdown_table

# Upper edges of the bands (Hz); the last band ends at the Nyquist frequency.
UPPER_BAND_EDGES_HZ = (250, 500, 1000, 1500, 2000, 3000, 4000, 6000, 8000, 12000, 16000)
# Lower edges of the frame-loudness classes (dBFS); the first class takes everything
# quieter, digital silence included.
LEVEL_CLASSES_DB = (-200.0, -80.0, -60.0, -45.0, -30.0, -15.0)
FRAME_SECONDS = 0.02
STFT_SIZE = 1024
# Keeps the decibels of digital silence finite (-200 dBFS).
POWER_FLOOR = 1e-20


@dataclass
class Tally:
    """Sums for one group and one system: the energy of the input, the decoded audio and
    the error in each band; per loudness class, the frame count, the sums of the
    input's and the decoded audio's frame levels (dB) and of each file's mel distance
    over the class's frames; the file count."""
    bands: list[tuple[float, float]]
    reference: list[float] = field(init=False)
    decoded: list[float] = field(init=False)
    error: list[float] = field(init=False)
    frames: list[int] = field(init=False)
    input_db: list[float] = field(init=False)
    decoded_db: list[float] = field(init=False)
    mel: list[float] = field(init=False)
    files: int = 0

    def __post_init__(self) -> None:
        self.reference, self.decoded, self.error = ([0.0] * len(self.bands) for _ in range(3))
        self.frames = [0] * len(LEVEL_CLASSES_DB)
        self.input_db, self.decoded_db, self.mel = (
            [0.0] * len(LEVEL_CLASSES_DB) for _ in range(3))


def band_edges_hz(rate: int) -> list[tuple[float, float]]:
    """``(low, high)`` Hz of each band below the Nyquist frequency of ``rate``."""
    nyquist = rate / 2
    highs = [edge for edge in UPPER_BAND_EDGES_HZ if edge < nyquist] + [nyquist]
    return list(zip([0.0, *highs[:-1]], highs, strict=True))


def band_energies(audio: torch.Tensor, rate: int,
                  bands: list[tuple[float, float]]) -> list[float]:
    """STFT energy of ``audio`` ``[C, T]`` in each band, summed over channels and frames."""
    window = torch.hann_window(STFT_SIZE)
    power = torch.stft(audio.double().reshape(-1, audio.shape[-1]), STFT_SIZE,
                       STFT_SIZE // 4, window=window.double(), return_complex=True).abs().pow(2)
    per_bin = power.sum(dim=(0, 2))
    freqs = torch.arange(per_bin.shape[0]) * rate / STFT_SIZE
    return [float(per_bin[(freqs >= low) & (freqs < high)].sum()) for low, high in bands]


def frame_levels_db(audio: torch.Tensor, rate: int) -> torch.Tensor:
    """Level in dBFS of each ``FRAME_SECONDS`` frame of ``audio`` ``[C, T]`` (channels
    pooled); a partial last frame is left out."""
    size = max(1, round(FRAME_SECONDS * rate))
    count = audio.shape[-1] // size
    frames = audio[:, :count * size].double().reshape(audio.shape[0], count, size)
    return 10 * torch.log10(frames.pow(2).mean(dim=(0, 2)) + POWER_FLOOR)


def level_class(level_db: float) -> int:
    """Index of the loudness class that holds a frame of ``level_db``."""
    return max(bisect.bisect_right(LEVEL_CLASSES_DB, level_db) - 1, 0)


def add_file(tally: Tally, reference: torch.Tensor, decoded: torch.Tensor, rate: int) -> None:
    """Add one file's band energies and frame levels to ``tally``."""
    length = min(reference.shape[-1], decoded.shape[-1])
    reference, decoded = reference[..., :length], decoded[..., :length]
    for sums, audio in ((tally.reference, reference), (tally.decoded, decoded),
                        (tally.error, decoded - reference)):
        for i, energy in enumerate(band_energies(audio, rate, tally.bands)):
            sums[i] += energy
    classes = []
    for ref_db, out_db in zip(frame_levels_db(reference, rate).tolist(),
                              frame_levels_db(decoded, rate).tolist(), strict=True):
        index = level_class(ref_db)
        classes.append(index)
        tally.frames[index] += 1
        tally.input_db[index] += ref_db
        tally.decoded_db[index] += out_db
    if classes:
        add_mel_parts(tally, reference, decoded, rate, classes)


def add_mel_parts(tally: Tally, reference: torch.Tensor, decoded: torch.Tensor, rate: int,
                  classes: list[int]) -> None:
    """Add each class's part of the file's mel distance: every mel frame counts in the
    class of the 20 ms frame that holds its centre (``classes``, one per such frame)."""
    size = max(1, round(FRAME_SECONDS * rate))
    tally.files += 1
    for n_fft in MEL_SCALES:
        distances = mel_frame_distances(reference, decoded, rate, n_fft)
        holder = (torch.arange(len(distances)) * (n_fft // 4) // size).clamp(max=len(classes) - 1)
        for frame, distance in zip(holder.tolist(), distances.tolist(), strict=True):
            tally.mel[classes[frame]] += distance / (len(distances) * len(MEL_SCALES))


def _db(numerator: float, denominator: float) -> float:
    if numerator <= 0 or denominator <= 0:
        return math.nan
    return 10 * math.log10(numerator / denominator)


def summary(tally: Tally) -> dict:
    """The tables' figures: per band the level (dB) and SNR (dB), per class the share of
    frames, the mean levels of input and decoded audio and the part of the files' mean
    mel distance."""
    bands = [{"low_hz": low, "high_hz": high,
              "level_db": _db(tally.decoded[i], tally.reference[i]),
              "snr_db": _db(tally.reference[i], tally.error[i])}
             for i, (low, high) in enumerate(tally.bands)]
    total = sum(tally.frames) or 1
    classes = [{"from_db": low, "share": count / total, "input_db": tally.input_db[i] / count,
                "decoded_db": tally.decoded_db[i] / count,
                "mel_distance": tally.mel[i] / max(tally.files, 1)}
               for i, (low, count) in enumerate(zip(LEVEL_CLASSES_DB, tally.frames, strict=True))
               if count]
    return {"bands": bands, "frame_levels": classes}


def markdown(group: str, summaries: dict[str, dict]) -> str:
    """Both tables of one group, a column pair per system."""
    names = list(summaries)
    first = summaries[names[0]]
    band_rows = []
    for i, band in enumerate(first["bands"]):
        row = [f"{band['low_hz']:.0f}-{band['high_hz']:.0f}"]
        for name in names:
            figures = summaries[name]["bands"][i]
            row += [f"{figures['level_db']:.1f}", f"{figures['snr_db']:.1f}"]
        band_rows.append(row)
    level_rows = []
    for i, level in enumerate(first["frame_levels"]):
        row = [f"{level['from_db']:.0f}", f"{level['share']:.2f}", f"{level['input_db']:.1f}"]
        for name in names:
            figures = summaries[name]["frame_levels"][i]
            row += [f"{figures['decoded_db']:.1f}", f"{figures['mel_distance']:.3f}"]
        level_rows.append(row)
    band_headers = ["band Hz"] + [f"{n} {c}" for n in names for c in ("level dB", "SNR dB")]
    level_headers = ["input frames from dBFS", "share", "input dB"] + [
        f"{n} {c}" for n in names for c in ("dB", "mel")]
    return "\n".join([f"### {group}", "", markdown_table(band_headers, band_rows), "",
                      markdown_table(level_headers, level_rows)])


def measure(model_path: str, data: str, kbps: float, *, kind: str = "auto",
            with_opus: bool = False, level_match: bool = True,
            max_files: int | None = None,
            postfilter: float | None = None) -> dict[str, dict[str, dict]]:
    """``{group: {system: summary}}`` for the files of ``data`` coded at ``kbps``."""
    model = load_for_coding(model_path, postfilter=postfilter)
    n_q = codebooks(model, kbps=kbps)
    if with_opus and not opus.available():
        raise CodecError("--opus: opusenc/opusdec not found (install opus-tools)")
    tallies: dict[str, dict[str, Tally]] = {}
    with tempfile.TemporaryDirectory(prefix="codec-levels-") as scratch:
        for item in tqdm(list_items(data, kind, max_files), desc="levels", unit="file",
                         disable=None):
            original, rate = read_audio(item.path)
            if original.shape[-1] == 0:
                continue
            coded = {"codec": code_with_model(model, original, rate, n_q, Path(scratch),
                                              level_match=level_match)}
            if with_opus:
                coded["opus"] = code_with_opus(original, rate, kbps, Path(scratch))
            group = tallies.setdefault(group_of({"group": item.group,
                                                 "speech": item.speech}), {})
            for system, result in coded.items():
                reference, decoded = matched(original, rate, result)
                tally = group.setdefault(system, Tally(band_edges_hz(rate)))
                if tally.bands != band_edges_hz(rate):
                    raise CodecError(f"{item.name}: {rate} Hz gives other bands than the "
                                     f"group's first file; measure one rate at a time")
                add_file(tally, reference, decoded, rate)
    if not tallies:
        raise CodecError("no audio to measure: every file was empty")
    return {group: {system: summary(tally) for system, tally in systems.items()}
            for group, systems in tallies.items()}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m eval.levels",
                                     description=__doc__.split("\n")[0])
    add_coding_arguments(parser)
    parser.add_argument("--kbps", type=float, default=6.0, help="bitrate (default: 6)")
    parser.add_argument("--opus", action="store_true", help="Opus at the same bitrate beside it")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def work() -> None:
        results = measure(args.model, args.data, args.kbps, kind=args.kind,
                          with_opus=args.opus, level_match=args.level_match,
                          max_files=args.max_files, postfilter=args.postfilter)
        print("\n\n".join(markdown(group, systems) for group, systems in results.items()))
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2) + "\n")

    return run_coding_command("eval.levels", args, work)

if __name__ == "__main__":
    sys.exit(main())
