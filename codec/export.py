"""``codec export``: an inference-only model file, and ``load_exported`` to read it back.

    codec export exp/run -o model.safetensors [--half]

The file is one safetensors file (no pickle) whose header metadata holds the format
tag, its version, the toolkit version, the model config (JSON), the model id and the
loudness the model was trained at. It holds only what ``encode``/``decode`` need:

- weight norm folded away (``codec.nn.fold_weight_norm``): one plain weight per conv
  instead of a direction and a magnitude, and no re-normalisation at every call;
- no training state: the quantisers' EMA statistics (``embed_sum``, ``cluster_size``)
  and their ``initialized`` flags are dropped; the codebooks (``embed``) stay;
- with ``--half``, encoder and decoder tensors in float16 (half the size), while the
  codebooks stay float32 so that ``codec.model.compute_model_id`` (config plus
  codebooks) is unchanged and files compressed with the full model still decode.
  ``load_exported`` turns everything back to float32 before computing.

An exported model cannot be trained further (its EMA statistics are gone): fine-tune
from the checkpoint it came from.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
from pathlib import Path
from typing import Optional

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from codec.config import ModelConfig, from_dict, to_dict
from codec.errors import CodecError
from codec.model import Codec, compute_model_id
from codec.nn import fold_weight_norm

FORMAT = "codec-export"
FORMAT_VERSION = 1
# Quantiser buffers that only training reads or writes.
TRAINING_BUFFERS = ("embed_sum", "cluster_size", "initialized")
# Tensors that --half leaves in float32 (the codebooks carry the model id).
FLOAT32_PREFIXES = ("quantizer.",)


class ExportError(CodecError):
    """An exported model file that cannot be read or does not fit its config."""


def _is_training_buffer(name: str) -> bool:
    return name.rsplit(".", 1)[-1] in TRAINING_BUFFERS


def inference_state(model: Codec, half: bool = False) -> dict[str, torch.Tensor]:
    """The state dict of ``model`` with weight norm folded and training buffers dropped.

    ``half`` stores floating-point tensors in float16, except the codebooks.
    """
    folded = fold_weight_norm(copy.deepcopy(model)).float().cpu()
    state = {}
    for name, tensor in folded.state_dict().items():
        if _is_training_buffer(name):
            continue
        if half and tensor.is_floating_point() and not name.startswith(FLOAT32_PREFIXES):
            tensor = tensor.half()
        state[name] = tensor.detach().contiguous()
    return state


_UNKNOWN = object()


def export_model(model: Codec, path: str | Path, *, half: bool = False,
                 target_lufs: Optional[float] | object = _UNKNOWN) -> Path:
    """Write ``model`` as an inference-only safetensors file at ``path`` (atomically).

    ``target_lufs``: the loudness the model's training data was normalised to
    (``data.target_lufs``; None: not normalised), stored so that ``codec encode`` with
    the exported file treats input the same way. Defaults to ``model.target_lufs``
    (set by ``load_model``); left out of the file when neither is known.
    """
    if target_lufs is _UNKNOWN:
        target_lufs = getattr(model, "target_lufs", _UNKNOWN)
    path = Path(path)
    state = inference_state(model, half)
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "codec_version": _toolkit_version(),
        "model_config": json.dumps(to_dict(model.config)),
        "model_id": compute_model_id(model),
        "dtype": "float16" if half else "float32",
    }
    if target_lufs is not _UNKNOWN:
        metadata["target_lufs"] = json.dumps(target_lufs)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        save_file(state, tmp, metadata=metadata)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _toolkit_version() -> str:
    from codec import __version__

    return __version__


def read_metadata(path: str | Path) -> dict[str, str]:
    """The safetensors header metadata of ``path`` ({} when it has none)."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            return handle.metadata() or {}
    except (SafetensorError, OSError) as error:
        raise ExportError(f"{path}: not a model file (cannot be read as safetensors: "
                          f"{error})") from None


def is_exported(path: str | Path) -> bool:
    """True when ``path`` is a safetensors file written by :func:`export_model`."""
    try:
        return read_metadata(path).get("format") == FORMAT
    except ExportError:
        return False


def load_exported(path: str | Path, device: str | torch.device = "cpu") -> Codec:
    """An exported model as an eval-mode :class:`Codec` computing in float32.

    Sets ``model.model_id`` and, when the file records it, ``model.target_lufs`` (as
    ``codec.checkpoint.load_model`` does).
    Raises ExportError for a file that is not an export, is newer than this toolkit,
    or whose weights or codebooks do not match its header.
    """
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such file")
    metadata = read_metadata(path)
    if metadata.get("format") != FORMAT:
        raise ExportError(f"{path}: not an exported codec model (no {FORMAT!r} format tag)")
    version = int(metadata.get("format_version", "0"))
    if version > FORMAT_VERSION:
        raise ExportError(f"{path}: export format version {version} is newer than this "
                          f"toolkit reads ({FORMAT_VERSION}); upgrade it")
    config = from_dict(ModelConfig, json.loads(metadata["model_config"]))
    # Build the architecture, then fold its (random) weight norm so that the parameter
    # names match the folded file.
    model = fold_weight_norm(Codec(config))
    state = {name: tensor.float() if tensor.is_floating_point() else tensor
             for name, tensor in load_file(path).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [name for name in missing if not _is_training_buffer(name)]
    if missing or unexpected:
        raise ExportError(f"{path}: weights do not fit its config (missing {missing[:5]}, "
                          f"unexpected {unexpected[:5]})")
    model.model_id = compute_model_id(model)
    if metadata.get("model_id") and metadata["model_id"] != model.model_id:
        raise ExportError(f"{path}: codebooks do not match the model id in its header "
                          f"({model.model_id} != {metadata['model_id']}); damaged file?")
    if "target_lufs" in metadata:
        model.target_lufs = json.loads(metadata["target_lufs"])
    return model.to(device).eval()


def _size(num_bytes: int) -> str:
    return f"{num_bytes / 2**20:.2f} MiB" if num_bytes >= 2**20 else f"{num_bytes / 1024:.1f} KiB"


def run(args: argparse.Namespace) -> int:
    from codec.checkpoint import load_model

    model = load_model(args.model)
    out = export_model(model.float(), args.output, half=args.half)
    values = sum(t.numel() for t in load_file(out).values())
    precision = "float16 convs, float32 codebooks" if args.half else "float32"
    print(f"{out}: {_size(out.stat().st_size)} ({precision}, {values:,} values, weight norm "
          f"folded, model id {compute_model_id(model)})")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="write an inference-only model file",
        description="Write an inference-only safetensors model: weight norm folded, "
                    "training state dropped, optionally float16 convs (codebooks stay "
                    "float32, so the model id does not change).")
    parser.add_argument("model", help="run directory, checkpoint directory or model file")
    parser.add_argument("-o", "--output", required=True, help="the .safetensors file to write")
    parser.add_argument("--half", action="store_true",
                        help="store encoder and decoder weights in float16")
    parser.set_defaults(run=run)
