"""``codec encode``, ``codec decode`` and ``codec entropy-tables``: folder plans, messages
and exit codes around ``codec.compress`` (the coding itself) and ``codec.coding.entropy``."""
from __future__ import annotations

import argparse
import contextlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from codec.cli.batch import check_plan, failure_line, files_under
from codec.cli.jobs import Message, Work, in_workers
from codec.coding.bitstream import SUFFIX as QCA_SUFFIX
from codec.coding.chunking import WORK_MEMORY_BYTES
from codec.errors import CodecError

if TYPE_CHECKING:
    from codec.pretrained import PretrainedModel

SUBTYPES = ("PCM_16", "PCM_24", "FLOAT")


def _plan(inputs: list[str], output: str | None, suffixes: frozenset[str],
          out_suffix: str) -> list[tuple[Path, Path]]:
    """(input, output) pairs. One file -> OUTPUT is the file (or a directory to put it in);
    folders are walked and their trees mirrored under OUTPUT."""
    if output is None:
        if len(inputs) < 2:
            raise CodecError("name the output: -o OUTPUT (or INPUT... OUTPUT)")
        *inputs, output = inputs
    out, paths = Path(output), [Path(p) for p in inputs]
    if len(paths) == 1 and not paths[0].is_dir():
        target = out / (paths[0].stem + out_suffix) if out.is_dir() else out
        return [(paths[0], target)]
    pairs = []
    for path in paths:
        if path.is_dir():
            base = out if len(paths) == 1 else out / path.name
            pairs += [(f, (base / f.relative_to(path)).with_suffix(out_suffix))
                      for f in files_under(path, suffixes)]
        else:
            pairs.append((path, out / (path.stem + out_suffix)))
    seen: dict[Path, Path] = {}
    for source, target in pairs:
        if target in seen:
            raise CodecError(f"{source} and {seen[target]} would both be written to {target}")
        seen[target] = source
    check_plan(pairs, paths, suffixes)
    return pairs


def _run_each(pairs: list[tuple[Path, Path]], command: str, work: Work, jobs: int = 1) -> int:
    """Run ``work`` on every pair, in ``jobs`` worker processes (1: in this one). A single
    file's error propagates (one line from the CLI); in a batch each failure is reported
    on one line and the rest still run."""
    from tqdm import tqdm

    if len(pairs) == 1:
        _show(work(*pairs[0]))
        return 0
    failed = 0
    outcomes = in_workers(pairs, work, jobs) if jobs > 1 else _in_turn(pairs, work)
    with contextlib.closing(outcomes):
        for lines, failure in tqdm(outcomes, total=len(pairs), unit="file", desc=command,
                                   disable=None):
            _show(lines)
            if failure is not None:
                failed += 1
                tqdm.write(f"codec {command}: error: {failure}", file=sys.stderr)
    if failed:
        tqdm.write(f"codec {command}: {failed} of {len(pairs)} files failed", file=sys.stderr)
    return 2 if failed else 0


def _in_turn(pairs: list[tuple[Path, Path]],
             work: Work) -> Iterator[tuple[list[Message], str | None]]:
    """``(lines to print, failure line or None)`` for each pair, coded here in turn."""
    for source, target in pairs:
        try:
            lines = work(source, target)
        except Exception as error:  # any failure, even a bug, is one file's, not the batch's
            yield [], failure_line(source, error)
        else:
            yield lines, None


def _show(lines: list[Message]) -> None:
    from tqdm import tqdm

    for to_stderr, text in lines:
        tqdm.write(text, file=sys.stderr if to_stderr else sys.stdout)


def refuse_existing(pairs: list[tuple[Path, Path]], *, force: bool) -> None:
    """CodecError when an output exists already, unless ``force`` allows replacing it."""
    existing = [target for _, target in pairs if target.exists()]
    if existing and not force:
        more = f" (and {len(existing) - 1} more outputs)" if len(existing) > 1 else ""
        raise CodecError(f"{existing[0]} exists{more}; pass -f/--force to overwrite")


def summary(source: Path, target: Path, *, compressed: Path, seconds: float) -> Message:
    """The line on stdout for each file coded: audio duration, the compressed file's
    bitrate, and the time taken."""
    from codec.coding.bitstream import describe

    facts = describe(compressed)
    duration = facts["duration_seconds"]
    speed = f", {duration / seconds:.1f}x real time" if seconds > 0 else ""
    return False, (f"{source} -> {target}: {duration:.2f} s of audio, "
                   f"{facts['file_kbps']:.2f} kbps, {seconds:.2f} s{speed}")


def _load(path: str, device: str) -> PretrainedModel:
    import torch

    from codec.pretrained import load

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CodecError("--device cuda: no CUDA device is available")
    return load(path, device=device)


def add_rate_arguments(parser: argparse.ArgumentParser) -> None:
    """``--kbps`` or ``--n-q``: how many codebooks to code with (read by ``_n_q``)."""
    rate = parser.add_mutually_exclusive_group()
    rate.add_argument("--kbps", type=float, help="largest bitrate to use (per channel)")
    rate.add_argument("--n-q", type=int, help="codebooks to use (default: all)")


def _n_q(model: PretrainedModel, args: argparse.Namespace) -> int:
    from codec.compress import codebooks

    try:
        return codebooks(model, kbps=args.kbps, n_q=args.n_q)
    except CodecError as error:
        raise CodecError(f"--{'kbps' if args.kbps is not None else 'n-q'}: {error}") from None


def _check_running(args: argparse.Namespace) -> None:
    if args.chunk_seconds is not None and not 0 < args.chunk_seconds < float("inf"):
        raise CodecError(f"--chunk-seconds must be a positive number, got {args.chunk_seconds}")
    if args.jobs < 1:
        raise CodecError(f"--jobs must be at least 1, got {args.jobs}")


def _encoding_model(args: argparse.Namespace) -> PretrainedModel:
    model = _load(args.model, args.device)
    return model if args.band_levels is None else model.with_band_levels(args.band_levels)


@dataclass
class _EncodeWork:
    """Encodes one file as ``codec encode`` does. A copy sent to a worker process leaves
    the model behind and loads its own on its first file."""
    args: argparse.Namespace
    n_q: int
    progress: bool
    model: PretrainedModel | None = None

    def __getstate__(self) -> dict:
        return {**vars(self), "model": None}

    def __call__(self, source: Path, target: Path) -> list[Message]:
        from codec.compress import encode_file

        if self.model is None:
            self.model = _encoding_model(self.args)
        args, started = self.args, time.perf_counter()
        encode_file(self.model, source, target, n_q=self.n_q, entropy=args.entropy,
                    chunk_seconds=args.chunk_seconds, level_match=args.level_match,
                    progress=self.progress, overwrite=args.force)
        return [summary(source, target, compressed=target,
                        seconds=time.perf_counter() - started)]


@dataclass
class _DecodeWork:
    """Decodes one file as ``codec decode`` does, with the model it names (or
    ``--model``), each model loaded once per process (not sent to workers)."""
    args: argparse.Namespace
    progress: bool
    models: dict[str, PretrainedModel] = field(default_factory=dict)

    def __getstate__(self) -> dict:
        return {**vars(self), "models": {}}

    def model_for(self, source: Path) -> PretrainedModel:
        path = self.args.model or _recorded_model(source)
        if path not in self.models:
            model = _load(path, self.args.device)
            if self.args.postfilter is not None:
                model = model.with_postfilter(self.args.postfilter)
            self.models[path] = model
        return self.models[path]

    def __call__(self, source: Path, target: Path) -> list[Message]:
        from codec.compress import decode_file

        args, started = self.args, time.perf_counter()
        clipped = decode_file(self.model_for(source), source, target, subtype=args.subtype,
                              chunk_seconds=args.chunk_seconds, progress=self.progress,
                              overwrite=args.force)
        lines = []
        if clipped:
            lines.append((True, f"codec decode: warning: {target}: {clipped} samples beyond "
                                f"full scale were clipped; --subtype FLOAT keeps them"))
        return lines + [summary(source, target, compressed=source,
                                seconds=time.perf_counter() - started)]


def run_encode(args: argparse.Namespace) -> int:
    from codec.audio import AUDIO_SUFFIXES

    _check_running(args)
    model = _encoding_model(args)
    n_q = _n_q(model, args)
    if args.entropy:
        try:
            model.require_entropy_tables()
        except CodecError as error:
            raise CodecError(f"--entropy: {error}") from None
    pairs = _plan(args.inputs, args.output, AUDIO_SUFFIXES, QCA_SUFFIX)
    if len(pairs) == 1 and pairs[0][1].suffix != QCA_SUFFIX:
        raise CodecError(f"{pairs[0][1]}: the output of encode should end in {QCA_SUFFIX}")
    refuse_existing(pairs, force=args.force)
    work = _EncodeWork(args, n_q, progress=len(pairs) == 1, model=model)
    return _run_each(pairs, "encode", work, args.jobs)


def run_decode(args: argparse.Namespace) -> int:
    _check_running(args)
    pairs = _plan(args.inputs, args.output, frozenset({QCA_SUFFIX}), ".wav")
    if len(pairs) == 1 and pairs[0][1].suffix == QCA_SUFFIX:
        raise CodecError(f"{pairs[0][1]}: the output of decode is audio (.wav or .flac)")
    refuse_existing(pairs, force=args.force)
    return _run_each(pairs, "decode", _DecodeWork(args, progress=len(pairs) == 1), args.jobs)


def _recorded_model(source: Path) -> str:
    """The model a compressed file names, found near it (``codec.model_name``), or a
    CodecError asking for ``--model``."""
    from codec.coding import bitstream
    from codec.model_name import find_model

    header = bitstream.read_file(source)[0]
    found = find_model(header.model_hint, source)
    if found is None:
        raise CodecError(f"{source}: no --model given, and the model it was encoded with "
                         f"({header.model_hint or 'name not recorded'}, id {header.model_id}) "
                         f"is not near it or in the current folder; pass --model")
    return str(found)


def _training_files(data: list[str]) -> list[Path]:
    """Audio files named by JSONL manifests (a ``path`` per line), folders (walked) or
    audio files."""
    from codec.audio import AUDIO_SUFFIXES
    from codec.train.data import read_manifest

    files: list[Path] = []
    for entry in map(Path, data):
        if entry.is_dir():  # an unreadable sub-folder gets a warning line
            files += files_under(entry, AUDIO_SUFFIXES)
        elif entry.suffix == ".jsonl":
            files += [Path(line["path"]) for line in read_manifest(entry, fields=("path",))]
        elif entry.is_file():
            files.append(entry)
        else:
            raise CodecError(f"{entry}: no such manifest, folder or file")
    return files


def run_entropy_tables(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from codec.audio import audio_info
    from codec.coding import entropy
    from codec.compress import encode_codes, file_source, named_error

    if not 0 < args.max_seconds < float("inf"):
        raise CodecError(f"--max-seconds must be a positive number, got {args.max_seconds}")
    model = _load(args.model, args.device)
    files = _training_files(args.data)[:args.max_files]
    if not files:
        raise CodecError("no audio files found in --data")
    size, n_q = model.config.codebook_size, model.config.n_q
    counts = np.zeros((n_q, size), dtype=np.int64)
    used = 0
    for path in tqdm(files, unit="file", desc="count codes", disable=None):
        try:
            rate = audio_info(path).sample_rate if path.exists() else 1
            source = file_source(path, max_frames=int(args.max_seconds * rate))
            result = encode_codes(model, source, n_q, level_match=False,  # codes only
                                  band_levels=False)
        except CodecError as error:
            tqdm.write(f"codec entropy-tables: skipped: {named_error(path, error)}",
                       file=sys.stderr)
            continue
        counts += entropy.count_codes(result.codes, size)
        used += 1
    if used == 0:
        raise CodecError("none of the --data files could be read")
    tables = entropy.EntropyTables(model.model_id, counts)
    target = entropy.tables_dir(args.model) / entropy.TABLES_FILE
    entropy.save_tables(tables, target, files=str(used))
    saving = 1 - entropy.mean_code_bits(tables) / (size.bit_length() - 1)
    print(f"wrote {target}: {used} files, {int(counts[0].sum())} frames; expected saving "
          f"{100 * saving:.1f}% of the bit-packed size on this data")
    return 0


def _add_running_arguments(parser: argparse.ArgumentParser, done: str) -> None:
    """--device, --chunk-seconds, --jobs and -f/--force, as encode and decode take them."""
    parser.add_argument("-f", "--force", action="store_true",
                        help="overwrite outputs that exist (default: refuse)")
    parser.add_argument("-j", "--jobs", type=int, default=1, metavar="N",
                        help=f"files {done} at once, each worker process on one thread "
                             f"(default: 1, in this process)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--chunk-seconds", type=float,
                        help=f"audio {done} at a time; bounds memory (default: what fits in "
                             f"{WORK_MEMORY_BYTES >> 20} MiB of working memory)")


def register(subparsers: argparse._SubParsersAction) -> None:
    enc = subparsers.add_parser(
        "encode", help="compress audio files with a trained model",
        description="Compress audio files (or folders of them) to .qca files. "
                    "Without -o, the last INPUT is the output.")
    enc.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files or folders")
    enc.add_argument("-o", "--output", help="output .qca file, or folder for several inputs")
    enc.add_argument("--model", required=True, help="run directory, checkpoint or model file")
    add_rate_arguments(enc)
    enc.add_argument("--band-levels", type=int, metavar="BANDS",
                     help="send the input's level in BANDS bands beside the codes, which "
                          "the decoded audio then follows, at every bitrate; 0 for none "
                          "(default: the model's coding.band_levels, and "
                          "coding.band_levels_low_rate at low bitrates)")
    enc.add_argument("--entropy", action="store_true",
                     help="range-code the codes with the model's entropy tables")
    enc.add_argument("--no-level-match", dest="level_match", action="store_false",
                     help="skip the decoding pass that gives the decoded audio the input's "
                          "RMS (faster encoding; the level is then the model's own)")
    _add_running_arguments(enc, "coded")
    enc.set_defaults(run=run_encode)

    dec = subparsers.add_parser(
        "decode", help="decompress .qca files to audio",
        description="Decode .qca files (or folders of them) to audio files. "
                    "Without -o, the last INPUT is the output.")
    dec.add_argument("inputs", nargs="+", metavar="INPUT", help=".qca files or folders")
    dec.add_argument("-o", "--output", help="output audio file, or folder for several inputs")
    dec.add_argument("--model", help="the model that encoded the files (default: the model "
                                     "named in each file, looked for in the folders above "
                                     "it, the current folder, their exp/, and "
                                     "$CODEC_MODEL_PATH)")
    dec.add_argument("--subtype", choices=SUBTYPES, default="PCM_16",
                     help="sample format; PCM clips beyond full scale, FLOAT keeps everything "
                          "(default: %(default)s)")
    dec.add_argument("--postfilter", type=float, metavar="EXPONENT",
                     help="decode through the spectral-expansion post-filter with this "
                          "exponent, 1 for none (default: the model's coding.postfilter)")
    _add_running_arguments(dec, "decoded")
    dec.set_defaults(run=run_decode)

    tab = subparsers.add_parser(
        "entropy-tables", help="measure code frequencies for --entropy",
        description="Count how often each code of each codebook occurs on training data "
                    "and save the tables next to the model (RUN/entropy.safetensors).")
    tab.add_argument("--model", required=True, help="run directory, checkpoint or model file")
    tab.add_argument("--data", required=True, nargs="+",
                     help="JSONL manifests (a 'path' per line), folders or audio files")
    tab.add_argument("--max-files", type=int, default=500, help="default: %(default)s")
    tab.add_argument("--max-seconds", type=float, default=60.0,
                     help="seconds read from each file (default: %(default)s)")
    tab.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    tab.set_defaults(run=run_entropy_tables)
