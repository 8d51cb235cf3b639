"""``codec export MODEL -o FILE [--half]``: an inference-only model file (``codec.export``);
``codec export MODEL --onnx DIR``: ONNX graphs of encoder and decoder (``codec.onnx_export``)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from codec.errors import CodecError

if TYPE_CHECKING:
    from codec.pretrained import PretrainedModel


def _size(num_bytes: int) -> str:
    return f"{num_bytes / 2**20:.2f} MiB" if num_bytes >= 2**20 else f"{num_bytes / 1024:.1f} KiB"


def training_facts(model: PretrainedModel) -> dict | None:
    """The training run's facts from the meta.json beside a checkpoint's model file
    (None for a model without one, such as an export)."""
    from codec import checkpoint

    folder = model.source.model_file.parent if model.source.model_file else None
    if folder is None or not (folder / checkpoint.META_FILE).is_file():
        return None
    meta = checkpoint.read_meta(folder)
    keys = ("step", "provenance", "trained_seconds", "skipped_steps", "metrics")
    return {key: meta[key] for key in keys if key in meta}


def refuse_to_replace(path: Path, *, force: bool) -> None:
    """CodecError for an output that exists, unless ``force``; never one inside a
    checkpoint (its meta.json records the hashes of its files)."""
    from codec import checkpoint

    if (path.parent / checkpoint.META_FILE).is_file():
        raise CodecError(f"{path}: inside a checkpoint folder, whose {checkpoint.META_FILE} "
                         f"records its files; export elsewhere")
    if (path.exists() or path.is_symlink()) and not force:
        raise CodecError(f"{path} exists; pass -f/--force to overwrite")


def run_onnx(args: argparse.Namespace) -> int:
    from codec.onnx_export import FILES, INFO_FILE, export_onnx
    from codec.pretrained import load

    if args.half:
        raise CodecError("--half is for the safetensors export; the ONNX graphs are float32")
    for name in FILES:
        refuse_to_replace(Path(args.onnx) / name, force=args.force)
    model = load(args.model)
    paths = export_onnx(model.network, args.onnx, target_lufs=model.target_lufs)
    for path in paths.values():
        print(f"{path}: {_size(path.stat().st_size)}")
    print(f"model id {model.model_id}; resampling, loudness gain, band levels, post-filter "
          f"and entropy coding stay outside the graphs ({INFO_FILE} lists them)")
    return 0


def run(args: argparse.Namespace) -> int:
    from safetensors.torch import load_file

    from codec.export import export_model
    from codec.pretrained import load

    if args.onnx:
        return run_onnx(args)
    refuse_to_replace(Path(args.output), force=args.force)
    model = load(args.model)
    if model.source.model_file and Path(args.output).resolve() == model.source.model_file.resolve():
        raise CodecError(f"{args.output} is the model being exported; choose another output")
    out = export_model(model.network.float(), args.output, half=args.half,
                       target_lufs=model.target_lufs, training=training_facts(model),
                       coding=model.coding)
    values = sum(t.numel() for t in load_file(out).values())
    precision = "float16 convs, float32 codebooks" if args.half else "float32"
    print(f"{out}: {_size(out.stat().st_size)} ({precision}, {values:,} values, weight norm "
          f"folded, model id {model.model_id})")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="write an inference-only model file, or ONNX graphs",
        description="Write an inference-only safetensors model: weight norm folded, "
                    "training state dropped, optionally float16 convs (codebooks stay "
                    "float32, so the model id does not change). With --onnx, write "
                    "encoder.onnx, decoder.onnx and codec.json instead (pip install "
                    "'codec-toolkit[onnx]' to run them with onnxruntime).")
    parser.add_argument("model", help="run directory, checkpoint directory or model file")
    output = parser.add_mutually_exclusive_group(required=True)
    output.add_argument("-o", "--output", help="the .safetensors file to write")
    output.add_argument("--onnx", metavar="DIR",
                        help="the folder to write encoder.onnx, decoder.onnx, codec.json in")
    parser.add_argument("-f", "--force", action="store_true",
                        help="overwrite existing output files")
    parser.add_argument("--half", action="store_true",
                        help="store encoder and decoder weights in float16")
    parser.set_defaults(run=run)
