"""``codec export``: an inference-only model file (``codec.pretrained.load`` reads it back).

    codec export exp/run -o model.safetensors [--half]

The file is one safetensors file (no pickle) whose header metadata holds the format
tag, its version, the toolkit version, the model config (JSON), the model id and the
loudness the model was trained at. It holds only what ``encode``/``decode`` need:

- weight norm folded away (``codec.network.nn.fold_weight_norm``): one plain weight per conv
  instead of a direction and a magnitude, and no re-normalisation at every call;
- no training state: the quantisers' EMA statistics (``embed_sum``, ``cluster_size``)
  and their ``initialized`` flags are dropped; the codebooks (``embed``) stay;
- with ``--half``, encoder and decoder tensors in float16 (half the size), while the
  codebooks stay float32 so that ``codec.network.model.compute_model_id`` (config plus
  codebooks) is unchanged and files compressed with the full model still decode.
  Loading turns everything back to float32 before computing.

An exported model cannot be trained further (its EMA statistics are gone): fine-tune
from the checkpoint it came from.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
from pathlib import Path
from typing import Optional

import torch
from safetensors import SafetensorError
from safetensors.torch import save_file

from codec.config import CodingConfig, to_dict
from codec.errors import CodecError
from codec.network.model import Codec, compute_model_id
from codec.network.nn import fold_weight_norm
from codec.provenance import collect
from codec.version import __version__

FORMAT = "codec-export"
FORMAT_VERSION = 1
# Quantiser buffers that only training reads or writes.
TRAINING_BUFFERS = ("embed_sum", "cluster_size", "initialized")
# Tensors that --half leaves in float32 (the codebooks carry the model id).
FLOAT32_PREFIXES = ("quantizer.",)


class ExportError(CodecError):
    """An exported model file that cannot be read or does not fit its config."""


def is_training_buffer(name: str) -> bool:
    return name.rsplit(".", 1)[-1] in TRAINING_BUFFERS


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of every tensor of an exported file (name, dtype, shape and bytes, in name
    order): the header records it, so that weights changed after export are found (the
    model id covers only the config and the codebooks)."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{list(tensor.shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def inference_state(model: Codec, half: bool = False) -> dict[str, torch.Tensor]:
    """The state dict of ``model`` with weight norm folded and training buffers dropped.

    ``half`` stores floating-point tensors in float16, except the codebooks.
    """
    folded = fold_weight_norm(copy.deepcopy(model)).float().cpu()
    state = {}
    for name, tensor in folded.state_dict().items():
        if is_training_buffer(name):
            continue
        if half and tensor.is_floating_point() and not name.startswith(FLOAT32_PREFIXES):
            tensor = tensor.half()
        state[name] = tensor.detach().contiguous()
    return state


_UNKNOWN = object()


def export_model(model: Codec, path: str | Path, *, half: bool = False,
                 target_lufs: Optional[float] | object = _UNKNOWN,
                 training: Optional[dict] = None,
                 coding: Optional[CodingConfig] = None) -> Path:
    """Write ``model`` as an inference-only safetensors file at ``path`` (atomically).

    ``target_lufs``: the loudness the model's training data was normalised to
    (``data.target_lufs``; None: not normalised), stored so that ``codec encode`` with
    the exported file treats input the same way; left out of the file when not given
    (coding then assumes the default).

    The header also records the export's provenance (``codec.provenance.collect``:
    git commit, package versions, command line) under ``provenance``, and
    ``training`` (the run's facts from its meta.json: provenance of each training
    invocation, steps, wall time), when given, under ``training``.
    """
    path = Path(path)
    state = inference_state(model, half)
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "codec_version": __version__,
        "model_config": json.dumps(to_dict(model.config)),
        "coding_config": json.dumps(to_dict(coding or CodingConfig())),
        "model_id": compute_model_id(model),
        "weights_sha256": weights_digest(state),
        "dtype": "float16" if half else "float32",
        "provenance": json.dumps(collect()),
    }
    if training is not None:
        metadata["training"] = json.dumps(training)
    if target_lufs is not _UNKNOWN:
        metadata["target_lufs"] = json.dumps(target_lufs)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(state, tmp, metadata=metadata)
        os.replace(tmp, path)
    except (OSError, SafetensorError) as error:  # a full disk, a read-only folder
        raise ExportError(f"{path}: cannot write ({getattr(error, 'strerror', None) or error})"
                          ) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    return path



