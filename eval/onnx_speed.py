"""A codec's ONNX graphs under onnxruntime, as calls the benchmark can time beside torch's
(``python -m eval.bench --onnx DIR``).

``DIR`` holds the graphs ``codec export --onnx`` writes. If it holds none, the model under
test is exported there first, so that both runtimes run the same weights; graphs of
another model are refused (their speed would not be this model's).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

from codec.errors import CodecError
from codec.network.model import Codec, compute_model_id
from codec.onnx_export import DECODER_FILE, ENCODER_FILE, INFO_FILE, export_onnx


def _session(path: Path, threads: int):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_calls(model: Codec, folder: str | Path, *, threads: int
               ) -> tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]:
    """(encode, decode) through onnxruntime on the CPU with ``threads`` threads: audio
    ``[B, C, T]`` float32 -> codes, codes -> audio."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise CodecError("--onnx needs onnxruntime: pip install -e '.[onnx]'") from None
    folder = Path(folder)
    if not (folder / INFO_FILE).is_file():
        export_onnx(model, folder)
    exported = json.loads((folder / INFO_FILE).read_text())["model_id"]
    if exported != compute_model_id(model):
        raise CodecError(f"{folder} holds the graphs of model {exported}, not of the model "
                         f"under test; name an empty folder to export this one there")
    encoder = _session(folder / ENCODER_FILE, threads)
    decoder = _session(folder / DECODER_FILE, threads)
    return (lambda audio: encoder.run(None, {"audio": audio})[0],
            lambda codes: decoder.run(None, {"codes": codes})[0])
