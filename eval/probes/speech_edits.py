"""Scoring edits of a codec's decoded speech: PESQ and STOI of each edit, against the input.

The speech files of a manifest are coded as ``codec encode`` does; an *edit* turns each
decoded file into named variants (``(reference, decoded, rate) -> {name: audio}``), and
each variant's PESQ and STOI are averaged over the files. ``eval.probes.band_worth`` and
``eval.probes.substitute`` are the edits; this module is what they share: the scoring, the
table, and the command-line options.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

from codec.audio import read_audio
from codec.compress import codebooks
from codec.errors import CodecError
from codec.metrics import missing_speech_packages, pesq_wb, stoi
from eval.coding import (
    add_coding_arguments,
    code_with_model,
    load_for_coding,
    matched,
    run_coding_command,
)
from eval.dataset import list_items
from eval.results import markdown_table

AS_DECODED = "as decoded"

Edits = Callable[[torch.Tensor, torch.Tensor, int], dict[str, torch.Tensor]]


def measure(model_path: str, data: str, kbps: float, edits: Edits, *, kind: str = "auto",
            level_match: bool = True, max_files: int | None = None,
            postfilter: float | None = None) -> dict[str, dict]:
    """``{edit: {"pesq": mean, "stoi": mean, "files": n}}`` over the speech files, each
    edit of the decoded audio scored against the original."""
    missing = missing_speech_packages()
    if missing:
        raise CodecError(f"PESQ and STOI need {missing}: pip install .[speech]")
    items = [item for item in list_items(data, kind, max_files) if item.speech]
    if not items:
        raise CodecError(f"no speech files in {data} (speech is told by group/folder or --kind)")
    model = load_for_coding(model_path, postfilter=postfilter)
    n_q = codebooks(model, kbps=kbps)
    scores: dict[str, list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="codec-speech-edits-") as scratch:
        for item in tqdm(items, desc="speech files", unit="file", disable=None):
            original, rate = read_audio(item.path)
            coded = code_with_model(model, original, rate, n_q, Path(scratch),
                                    level_match=level_match)
            reference, decoded = matched(original, rate, coded)
            for name, edited in edits(reference, decoded, rate).items():
                scores.setdefault(name, []).append((pesq_wb(reference, edited, rate),
                                                    stoi(reference, edited, rate)))
    return {name: {"pesq": sum(p for p, _ in pairs) / len(pairs),
                   "stoi": sum(s for _, s in pairs) / len(pairs), "files": len(pairs)}
            for name, pairs in scores.items()}


def markdown(results: dict[str, dict]) -> str:
    """The scores as a Markdown table, one row per edit."""
    return markdown_table(["decoded speech", "PESQ (wb)", "STOI", "files"],
                          [[name, f"{r['pesq']:.3f}", f"{r['stoi']:.3f}", r["files"]]
                           for name, r in results.items()])


# The live model's frames, 75 a second: edits that work frame by frame put theirs there.
LIVE_FRAMES_PER_SECOND = 75


def live_hop(rate: int) -> int:
    """Samples in one of the live model's frames at ``rate``."""
    return round(rate / LIVE_FRAMES_PER_SECOND)


def number_list(kind: type, low: float, high: float) -> Callable[[str], list]:
    """An argparse type: numbers of ``kind`` from ``low`` to ``high``, comma-separated."""
    def parse(text: str) -> list:
        try:
            values = [kind(part) for part in text.split(",")]
        except ValueError:
            values = []
        if not values or not all(low <= value <= high for value in values):
            raise argparse.ArgumentTypeError(f"must be numbers from {low:g} to {high:g} "
                                             f"separated by commas, got {text!r}")
        return values
    return parse


def edit_parser(module: str, doc: str) -> argparse.ArgumentParser:
    """The options every command that scores edits of decoded speech takes."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}",
                                     description=doc.split("\n")[0])
    add_coding_arguments(parser)
    parser.add_argument("--kbps", type=float, default=6.0, help="bitrate (default: 6)")
    return parser


def print_edit_scores(module: str, args: argparse.Namespace, edits: Edits) -> int:
    """Score ``edits`` as ``args`` say and print the table; the command's exit status."""
    def work() -> None:
        print(markdown(measure(args.model, args.data, args.kbps, edits, kind=args.kind,
                               level_match=args.level_match, max_files=args.max_files,
                               postfilter=args.postfilter)))

    return run_coding_command(module, args, work)
