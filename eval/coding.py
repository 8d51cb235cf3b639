"""Coding files as a user does, for the programs that measure a model.

- :func:`load_for_coding`: the model as ``codec encode`` loads it;
- :func:`code_with_model`: one file encoded to bytes, stored, read back and decoded
  (:func:`codes_in` reads the codes those bytes carry); :func:`code_with_opus` the same
  through Opus;
- :func:`matched`: the original and the decoded audio lined up for measuring;
- :func:`add_coding_arguments` and :func:`run_coding_command`: the options and the error
  handling of every command that codes a set of files with a model.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from codec import compress
from codec.audio import resample, to_channels
from codec.coding import bitstream
from codec.coding.entropy import EntropyTables
from codec.errors import CodecError
from codec.pretrained import PretrainedModel, load
from eval import opus
from eval.dataset import KINDS


@dataclass
class Coded:
    """Decoded audio ``[C, T]`` and what it took to get it."""
    audio: torch.Tensor
    sample_rate: int
    file_bytes: int
    encode_seconds: float
    decode_seconds: float
    payload_bytes: int | None = None
    codes: torch.Tensor | None = None


def load_for_coding(path: str, device: str = "cpu", entropy: bool = False,
                    postfilter: float | None = None,
                    band_levels: int | None = None) -> PretrainedModel:
    """The model as ``codec encode`` loads it, decoding through ``postfilter`` when given
    (``codec decode --postfilter``) and sending ``band_levels`` bands' levels when given
    (``codec encode --band-levels``); CodecError when ``entropy`` is set and it has no
    entropy tables."""
    model = load(path, device)
    if band_levels is not None:
        try:
            model = model.with_band_levels(band_levels)
        except CodecError as error:
            raise CodecError(f"--band-levels: {error}") from None
    if entropy:
        model.require_entropy_tables()
    if postfilter is not None:
        try:
            model = model.with_postfilter(postfilter)
        except CodecError as error:
            raise CodecError(f"--postfilter: {error}") from None
    return model


def code_with_model(model: PretrainedModel, audio: torch.Tensor, sample_rate: int, n_q: int,
                    workdir: Path, entropy: bool = False, level_match: bool = True) -> Coded:
    """Encode to bytes, store them in a file, read them back and decode, as a user would
    (range-coded with the model's entropy tables when ``entropy``, the level matched
    unless ``level_match`` is off)."""
    start = time.perf_counter()
    data = compress.encode(model, audio, sample_rate, n_q=n_q, entropy=entropy,
                           level_match=level_match)
    encode_seconds = time.perf_counter() - start
    path = workdir / f"nq{n_q}.qca"
    path.write_bytes(data)
    stored = path.read_bytes()
    start = time.perf_counter()
    decoded, rate = compress.decode(model, stored)
    decode_seconds = time.perf_counter() - start
    path.unlink()
    header, _ = bitstream.parse(stored)
    return Coded(decoded.detach().cpu().float(), rate, len(stored), encode_seconds,
                 decode_seconds, payload_bytes=header.payload_bytes,
                 codes=codes_in(stored, model.entropy_tables))


def codes_in(data: bytes, tables: EntropyTables | None = None) -> torch.Tensor:
    """The codes a compressed file carries, as ``[n_q, items * frames]``."""
    header, payload = bitstream.parse(data)
    codes = compress.payload_codes(header, payload[:header.codes_bytes], tables)
    codes = torch.from_numpy(codes.astype("int64"))
    return codes.transpose(0, 1).reshape(header.n_q, -1)


def code_with_opus(audio: torch.Tensor, sample_rate: int, kbps: float, workdir: Path) -> Coded:
    """``audio`` through opusenc and opusdec at ``kbps`` (``eval.opus``)."""
    result = opus.encode_decode(audio, sample_rate, kbps, workdir)
    return Coded(result.audio, result.sample_rate, result.file_bytes, result.encode_seconds,
                 result.decode_seconds, payload_bytes=result.payload_bytes)


def matched(original: torch.Tensor, rate: int, coded: Coded) -> tuple[torch.Tensor, torch.Tensor]:
    """``(reference, decoded)`` at the original's rate with the decoded channel count."""
    decoded = resample(coded.audio, coded.sample_rate, rate)
    reference = original
    if reference.shape[0] != decoded.shape[0]:
        reference = to_channels(reference, decoded.shape[0])
    return reference, decoded


def add_coding_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of every command that codes a set of files with a model: --model,
    --data, --max-files, --kind, --no-level-match, --postfilter, --band-levels and
    --threads."""
    parser.add_argument("--model", required=True,
                        help="run directory (uses best/), checkpoint directory or model file")
    parser.add_argument("--data", required=True,
                        help="JSONL manifest, folder of audio files, or one audio file")
    parser.add_argument("--max-files", type=int, default=None, help="use the first N files")
    parser.add_argument("--kind", choices=KINDS, default="auto",
                        help="speech or music for every file (default: from group/folder)")
    parser.add_argument("--no-level-match", dest="level_match", action="store_false",
                        help="code without the decoding pass that matches the decoded level "
                             "to the input's, as codec encode --no-level-match does")
    parser.add_argument("--postfilter", type=float, metavar="EXPONENT",
                        help="decode through the spectral-expansion post-filter with this "
                             "exponent, 1 for none, as codec decode --postfilter does "
                             "(default: the model's coding.postfilter)")
    parser.add_argument("--band-levels", type=int, metavar="BANDS",
                        help="send the input's level in BANDS bands beside the codes, 0 for "
                             "none, at every bitrate, as codec encode --band-levels does "
                             "(default: the model's coding.band_levels, and "
                             "coding.band_levels_low_rate at low bitrates)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (default: torch's choice)")


def run_coding_command(prog: str, args: argparse.Namespace, work: Callable[[], None]) -> int:
    """Run ``work`` for a command built with :func:`add_coding_arguments`: with the
    asked-for torch threads, and a CodecError as one line on stderr and exit status 2."""
    try:
        if args.threads:
            torch.set_num_threads(args.threads)
        work()
    except CodecError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    return 0
