"""What a token set (``codec tokenize``) offers a sequence model: tokens per second; per
codebook, the share of its codes used, entropy, perplexity and conditional entropies
(:mod:`eval.token_stats`, plug-in estimates on the training tokens); and the held-out
cross-entropy of a small code language model (:mod:`eval.code_lm`) in bits per second,
beside the bitrate the codes are sent at.

    python -m eval.tokens OUT_DIR [--json out.json] [--lm-steps 300]
    python -m eval.tokens --train OUT_DIR_TRAIN --test OUT_DIR_TEST [--json out.json]

With one OUT_DIR, every fifth file (the 5th, 10th, ... of its index) is held out for the
language model's test, and the rest is the training set. ``--lm-steps 0`` leaves the
language model out. At the default settings it trains in a minute or two on a CPU.
"""
from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from codec.errors import CodecError
from codec.tokens.shards import read_index, read_rows, stored_settings
from eval import code_lm
from eval.results import format_number, text_table, write_json
from eval.token_stats import CodeCounts, totals

HELD_OUT_EVERY = 5


def file_sequences(out_dir: Path) -> Iterator[list[np.ndarray]]:
    """Each tokenized file's sequences ``[frames, n_q]``, in the index's order, one
    shard in memory at a time."""
    lines = read_index(out_dir)
    for shard, group in itertools.groupby(lines, key=lambda line: line["shard"]):
        codes = read_rows(out_dir / shard)
        for line in group:
            rows, frames = codes[line["start"]:line["end"]], line["frames"]
            yield [rows[i * frames:(i + 1) * frames].copy() for i in range(line["items"])]


def token_sets(train: Path, test: Path | None,
               max_frames: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The training and test sequences, up to ``max_frames`` frames each."""
    def gathered(files: Iterator[list[np.ndarray]]) -> list[np.ndarray]:
        kept, frames = [], 0
        for sequences in files:
            if frames >= max_frames:
                break
            kept += sequences
            frames += sum(len(s) for s in sequences)
        return kept

    if test is not None:
        return gathered(file_sequences(train)), gathered(file_sequences(test))
    files = list(file_sequences(train))
    if len(files) < 2:
        raise CodecError(f"{train} holds {len(files)} file(s): the language model needs one "
                         f"to train on and one to test on (or --train and --test)")
    held = set(range(HELD_OUT_EVERY - 1, len(files), HELD_OUT_EVERY)) or {len(files) - 1}
    return (gathered(f for i, f in enumerate(files) if i not in held),
            gathered(f for i, f in enumerate(files) if i in held))


def _check_same_codes(train: dict, test: dict) -> None:
    fields = ("model_id", "n_q", "codebook_size", "frame_rate")
    if any(train[name] != test[name] for name in fields):
        raise CodecError(f"--train and --test tokens differ in {', '.join(fields)}: "
                         f"{[train[n] for n in fields]} against {[test[n] for n in fields]}")


def _lm_figures(train: list[np.ndarray], test: list[np.ndarray], settings: dict,
                lm: code_lm.LMSettings) -> dict[str, Any]:
    started = time.perf_counter()
    model = code_lm.train(train, settings["n_q"], settings["codebook_size"], lm)
    trained = time.perf_counter() - started
    per_codebook, frames = code_lm.score(model, test)
    bits = float(per_codebook.sum())
    return {"steps": lm.steps, "width": lm.width, "layers": lm.layers, "batch": lm.batch,
            "window": lm.window, "train_seconds": round(trained, 1), "test_frames": frames,
            "bits_per_frame": bits, "bps": bits * settings["frame_rate"],
            "codebook_bits": [float(b) for b in per_codebook]}


def figures(train_dir: Path, test_dir: Path | None, lm: code_lm.LMSettings,
            max_frames: int) -> dict[str, Any]:
    """Everything the report shows, JSON-ready."""
    settings = stored_settings(train_dir)
    if test_dir is not None:
        _check_same_codes(settings, stored_settings(test_dir))
    train, test = token_sets(train_dir, test_dir, max_frames)
    counts = CodeCounts(settings["n_q"], settings["codebook_size"])
    for sequence in train:
        counts.add(sequence)
    rows = counts.codebook_figures()
    rate, bits = settings["frame_rate"], settings["codebook_size"].bit_length() - 1
    result = {"tokens": str(train_dir), "test_tokens": str(test_dir or train_dir),
              "model_id": settings["model_id"], "n_q": settings["n_q"],
              "codebook_size": settings["codebook_size"], "frame_rate": rate,
              "tokens_per_second": rate * settings["n_q"], "train_frames": counts.frames,
              "train_sequences": counts.sequences, "codebooks": rows,
              "rates": totals(rows, rate, bits), "lm": None}
    if lm.steps > 0:
        result["lm"] = _lm_figures(train, test, settings, lm)
        result["rates"]["lm_test_bps"] = result["lm"]["bps"]
    return result


def report(result: dict) -> str:
    """The table and the rates, as text."""
    lm = result["lm"]
    headers = ["codebook", "usage", "entropy bits", "perplexity", "H | previous frame",
               "H | coarser", "LM bits (test)"]
    rows = [[row["codebook"], row["usage"], row["entropy_bits"], row["perplexity"],
             row["given_previous_frame_bits"], row["given_coarser_bits"],
             None if lm is None else lm["codebook_bits"][i]]
            for i, row in enumerate(result["codebooks"])]
    rates = result["rates"]
    lines = [f"{result['tokens']}: {result['n_q']} codebooks of {result['codebook_size']} at "
             f"{result['frame_rate']:g} frames/s = {result['tokens_per_second']:g} tokens/s; "
             f"counted on {result['train_frames']} frames ({result['train_sequences']} "
             f"sequences)", text_table(headers, rows),
             f"bits per second: nominal {rates['nominal_bps']:.0f}, codebooks' entropies "
             f"{rates['entropy_bps']:.0f}, each given its previous frame "
             f"{rates['given_previous_frame_bps']:.0f}"]
    if lm is not None:
        lines.append(f"code LM ({lm['layers']}-layer GRU, width {lm['width']}, {lm['steps']} "
                     f"steps, {lm['train_seconds']} s) on {result['test_tokens']}, "
                     f"{lm['test_frames']} frames: {lm['bits_per_frame']:.3f} bits/frame = "
                     f"{format_number(lm['bps'])} bits/s against {rates['nominal_bps']:.0f} "
                     f"nominal")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m eval.tokens", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tokens", nargs="?", metavar="OUT_DIR",
                        help="a token folder (every fifth file held out for the LM)")
    parser.add_argument("--train", metavar="OUT_DIR", help="tokens to count and train on")
    parser.add_argument("--test", metavar="OUT_DIR", help="tokens to score the LM on")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--lm-steps", type=int, default=300, help="default: %(default)s; "
                        "0 leaves the language model out")
    parser.add_argument("--lm-width", type=int, default=128, help="default: %(default)s")
    parser.add_argument("--max-frames", type=int, default=2_000_000,
                        help="frames read from each set at most (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if (args.tokens is None) == (args.train is None) or (args.train is None) != (
                args.test is None):
            raise CodecError("name OUT_DIR, or --train OUT_DIR and --test OUT_DIR")
        if args.lm_steps < 0 or args.lm_width < 1 or args.max_frames < 1 or args.threads < 1:
            raise CodecError("--lm-steps must be 0 or more; --lm-width, --max-frames and "
                             "--threads at least 1")
        torch.set_num_threads(args.threads)
        result = figures(Path(args.tokens or args.train), args.test and Path(args.test),
                         code_lm.LMSettings(steps=args.lm_steps, width=args.lm_width),
                         args.max_frames)
    except CodecError as error:
        print(f"eval.tokens: error: {error}", file=sys.stderr)
        return 2
    print(report(result))
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
