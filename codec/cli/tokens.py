"""``codec tokenize`` and ``codec detokenize``: a corpus coded into token shards for
sequence models, and tokens back to audio (``codec.tokens``: the format and the work)."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from codec.errors import CodecError

if TYPE_CHECKING:
    from codec.pretrained import PretrainedModel
    from codec.tokens.plan import Source
    from codec.tokens.tokenize import Event, TokenJob

SUBTYPES = ("PCM_16", "PCM_24", "FLOAT")
DEFAULT_SHARD_ROWS = 1_000_000


def _load(path: str, device: str) -> PretrainedModel:
    import torch

    from codec.pretrained import load

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CodecError("--device cuda: no CUDA device is available")
    return load(path, device=device)


def _manifest_sources(path: Path) -> list[Source]:
    """A manifest's files with their line numbers (a relative path is taken from the
    manifest's folder), and their length, rate and channels where the line gives them."""
    from codec.tokens.plan import Source

    base, sources = path.resolve().parent, []
    try:
        with open(path, encoding="utf-8") as handle:
            for number, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                try:
                    line = json.loads(text)
                except json.JSONDecodeError as error:
                    raise CodecError(f"{path}:{number}: not a JSON line ({error.msg})") from None
                if not isinstance(line, dict) or not isinstance(line.get("path"), str):
                    raise CodecError(f"{path}:{number}: no 'path' (a manifest line names a file)")
                facts = [line.get(name) for name in ("frames", "sample_rate", "channels")]
                if not all(type(value) is int and value > 0 for value in facts):
                    facts = [None, None, None]  # read from the file's header instead
                sources.append(Source(str(base / line["path"]), number, *facts))
    except (OSError, UnicodeDecodeError) as error:
        raise CodecError(f"{path}: cannot read the manifest ({error})") from None
    return sources


def _sources(data: Path) -> list[Source]:
    """The files ``--data`` names: a manifest's lines, or a folder's audio files sorted."""
    from codec.audio import AUDIO_SUFFIXES
    from codec.cli.batch import files_under
    from codec.tokens.plan import Source

    if data.is_dir():
        return [Source(str(path.resolve()), number)
                for number, path in enumerate(files_under(data, AUDIO_SUFFIXES), start=1)]
    if data.is_file():
        return _manifest_sources(data)
    raise CodecError(f"--data {data}: no such manifest or folder")


def _check_options(args: argparse.Namespace) -> None:
    named = {"--model": args.model, "--data": args.data, "-o": args.output, "--kbps": args.kbps}
    if args.merge is not None:
        given = [flag for flag, value in named.items() if value is not None]
        if given:
            raise CodecError(f"--merge OUT_DIR takes no other options (got {', '.join(given)})")
        return
    missing = [flag for flag, value in named.items() if value is None]
    if missing:
        raise CodecError(f"name {', '.join(missing)} (or only --merge OUT_DIR)")
    if args.workers < 1:
        raise CodecError(f"--workers must be at least 1, got {args.workers}")
    if args.min_seconds is not None and not 0 <= args.min_seconds < float("inf"):
        raise CodecError(f"--min-seconds must be 0 or more, got {args.min_seconds}")


def _token_job(args: argparse.Namespace, model: PretrainedModel) -> TokenJob:
    from codec.compress import codebooks
    from codec.tokens.plan import make_plan
    from codec.tokens.tokenize import TokenJob, token_settings

    try:
        n_q = codebooks(model, kbps=args.kbps)
    except CodecError as error:
        raise CodecError(f"--kbps: {error}") from None
    min_seconds = (1 / model.network.frame_rate if args.min_seconds is None
                   else args.min_seconds)
    settings = token_settings(model, n_q, args.kbps, side_info=args.side_info,
                              min_seconds=min_seconds, shard_rows=args.shard_rows)
    plan = make_plan(_sources(Path(args.data)), model.network, args.shard_rows, settings)
    return TokenJob(args.model, args.device, Path(args.output), settings, plan)


class _Progress:
    """A bar over the seconds of audio to code, with the rate and the time left, moved by
    each event of the coding; a line for each file skipped."""

    def __init__(self, total_seconds: float, shards: int, workers: int):
        from tqdm import tqdm

        self.bar = tqdm(total=total_seconds, desc="tokenize", disable=None, dynamic_ncols=True,
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s "
                                   "of audio [{elapsed}<{remaining}, {rate_fmt}]{postfix}")
        self.shards, self.written, self.workers = shards, 0, workers
        self.seconds = 0.0  # the bar's count, which a disabled bar does not keep
        self.started = time.perf_counter()
        self.first_shard: float | None = None  # workers take a while to start

    def __call__(self, event: Event) -> None:
        kind, value = event
        if kind == "start" and self.first_shard is None:
            self.first_shard = time.perf_counter()
        elif kind == "file":
            self.seconds += value
            self.bar.update(value)
        elif kind == "skipped":
            self.bar.write(f"codec tokenize: skipped {value['path']}: {value['reason']} "
                           f"({value['detail']})", file=sys.stderr)
        elif kind == "shard":
            self.written += 1
            self.bar.set_postfix_str(f"{self.written}/{self.shards} shards")

    def speed(self) -> str:
        """How fast the audio was coded, in all and once the workers had started."""
        seconds, now = self.seconds, time.perf_counter()
        took, coding = now - self.started, now - (self.first_shard or self.started)
        line = f"coded {seconds:.1f} s of audio in {took:.1f} s: {seconds / took:.1f} s a second"
        if self.workers > 1:
            line += (f" with {self.workers} workers ({took - coding:.1f} s of that starting "
                     f"them; {seconds / coding:.1f} s a second after)")
        return line


def run_tokenize(args: argparse.Namespace) -> int:
    from codec.tokens.merge import merge
    from codec.tokens.plan import job_slot, taken
    from codec.tokens.tokenize import check_out_dir, shard_done
    from codec.tokens.workers import code_shards

    _check_options(args)
    if args.merge is not None:
        return _report_merge(merge(Path(args.merge)), Path(args.merge))
    slot = job_slot(args.shard, os.environ)
    model = _load(args.model, args.device)
    job = _token_job(args, model)
    plan = job.plan
    check_out_dir(job)
    mine = taken(len(plan.shards), slot)
    todo = [index for index in mine if not shard_done(job, index)]
    print(f"codec tokenize: {len(plan.sources)} files in {len(plan.shards)} shards; this job "
          f"codes {len(todo)} of its {len(mine)} ({len(mine) - len(todo)} written already)",
          file=sys.stderr)
    seconds = sum(plan.seconds[p] for index in todo for p in plan.shards[index])
    progress = _Progress(seconds, len(todo), min(args.workers, len(todo)))
    with progress.bar:
        code_shards(job, todo, args.workers, progress, model=model)
    if todo:
        print(progress.speed())
    if all(job.shard_path(index).exists() for index in range(len(plan.shards))):
        return _report_merge(merge(job.out_dir), job.out_dir)
    print(f"codec tokenize: the other jobs' shards are not all written yet; the last job "
          f"merges them (or: codec tokenize --merge {job.out_dir})", file=sys.stderr)
    return 0


def _report_merge(summary: dict, out_dir: Path) -> int:
    skipped = sum(summary["skipped"].values())
    reasons = ", ".join(f"{k}: {v}" for k, v in summary["skipped"].items())
    settings = summary["settings"]
    print(f"{out_dir}: {summary['files']} files, {summary['seconds'] / 3600:.3f} h, "
          f"{summary['rows']} frames of {settings['n_q']} codes at "
          f"{settings['frame_rate']:g} frames/s in {summary['shards']} shards; "
          f"{skipped} skipped{f' ({reasons})' if skipped else ''}")
    if summary["mixed_versions"]:
        print(f"codec tokenize: warning: the shards in {out_dir} were written with different "
              f"package versions (see each shard's metadata)", file=sys.stderr)
    return 0


def run_detokenize(args: argparse.Namespace) -> int:
    from codec.tokens import detokenize as tokens
    from codec.tokens.shards import stored_settings

    out_dir, output = Path(args.tokens), Path(args.output)
    if output.exists() and not args.force:
        raise CodecError(f"{output} exists; pass -f/--force to overwrite")
    settings = stored_settings(out_dir)
    model = _load(args.model, args.device)
    if args.file is not None:
        line = tokens.find_file(out_dir, args.file)
        data, seconds = tokens.file_container(out_dir, settings, line), line["seconds"]
        if not settings["side_info"]:
            print("codec detokenize: warning: tokenized with --no-side-info: the audio comes "
                  "out at the model's training level, without band levels", file=sys.stderr)
    else:
        shard, start, end = tokens.parse_rows(args.rows)
        data = tokens.rows_container(out_dir, settings, shard, start, end)
        seconds = (end - start) / settings["frame_rate"]
    clipped = tokens.decode_container(model, settings, data, output, subtype=args.subtype,
                                      overwrite=args.force)
    if clipped:
        print(f"codec detokenize: warning: {output}: {clipped} samples beyond full scale "
              f"were clipped; --subtype FLOAT keeps them", file=sys.stderr)
    print(f"{args.file or args.rows} -> {output}: {seconds:.2f} s of audio")
    return 0


def _add_tokenize(subparsers: argparse._SubParsersAction) -> None:
    tok = subparsers.add_parser(
        "tokenize", help="code a corpus into token shards for sequence models",
        description="Code every file of a manifest or folder as codec encode codes it, into "
                    "shards of codes (safetensors) with an index, for sequence models. A "
                    "rerun codes only the shards not written yet; the last job merges.")
    tok.add_argument("--model", help="run directory, checkpoint or model file")
    tok.add_argument("--data", help="JSONL manifest (a 'path' per line) or folder of audio")
    tok.add_argument("-o", "--output", metavar="OUT_DIR", help="folder for the tokens")
    tok.add_argument("--kbps", type=float, help="bitrate (per channel), as codec encode --kbps")
    tok.add_argument("--workers", type=int, default=1, metavar="N",
                     help="worker processes, one thread each (default: 1, in this process)")
    tok.add_argument("--shard", metavar="I/N",
                     help="code only shards whose number modulo N is I, for job arrays "
                          "(default: RANK/WORLD_SIZE under torchrun, else all)")
    tok.add_argument("--shard-rows", type=int, default=DEFAULT_SHARD_ROWS, metavar="R",
                     help="frames per shard: files are added until a shard has R "
                          "(default: %(default)s)")
    tok.add_argument("--no-side-info", dest="side_info", action="store_false",
                     help="store codes only: no gain or band levels (detokenized audio "
                          "then has the model's training level) and no level-match pass")
    tok.add_argument("--min-seconds", type=float,
                     help="skip files shorter than this (default: one frame)")
    tok.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    tok.add_argument("--merge", metavar="OUT_DIR",
                     help="only check that OUT_DIR's shards are complete and write its index")
    tok.set_defaults(run=run_tokenize)


def _add_detokenize(subparsers: argparse._SubParsersAction) -> None:
    det = subparsers.add_parser(
        "detokenize", help="decode tokens back to audio",
        description="Decode one source file's tokens (as codec decode decodes its .qca: "
                    "same rate, length and level) or a range of rows to an audio file.")
    det.add_argument("tokens", metavar="OUT_DIR", help="folder written by codec tokenize")
    which = det.add_mutually_exclusive_group(required=True)
    which.add_argument("--file", metavar="SOURCE_PATH", help="a tokenized file, as listed")
    which.add_argument("--rows", metavar="SHARD:START:END",
                       help="rows of one shard, decoded as one sequence at the model's rate")
    det.add_argument("-o", "--output", required=True, help="output audio file (.wav, .flac)")
    det.add_argument("--model", required=True, help="the model that made the tokens")
    det.add_argument("--subtype", choices=SUBTYPES, default="PCM_16",
                     help="sample format (default: %(default)s)")
    det.add_argument("-f", "--force", action="store_true", help="overwrite the output")
    det.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    det.set_defaults(run=run_detokenize)


def register(subparsers: argparse._SubParsersAction) -> None:
    _add_tokenize(subparsers)
    _add_detokenize(subparsers)
