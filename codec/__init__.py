"""A neural audio codec toolkit: encoder -> residual VQ -> unbounded decoder.

The Python API::

    model = codec.load("exp/run")                       # a run, checkpoint or export
    data = codec.encode(model, audio, sample_rate, kbps=6)  # audio [C, T] -> bytes
    audio, sample_rate = codec.decode(model, data)

``load``, ``encode``, ``decode``, ``encode_file``, ``decode_file``, ``encode_batch``,
``decode_batch`` and ``PretrainedModel`` are imported on first use, so that ``import
codec`` (and the ``codec`` command's argument parsing) needs no more than torch.
"""
from __future__ import annotations

import importlib
from typing import Any

from codec.config import ModelConfig, model_config
from codec.network.model import Codec, CodecOutput
from codec.version import __version__

# Public name -> the module that holds it, imported when the name is first used.
_LAZY = {"load": "codec.pretrained", "PretrainedModel": "codec.pretrained",
         "encode": "codec.compress", "decode": "codec.compress",
         "encode_file": "codec.compress", "decode_file": "codec.compress",
         "encode_batch": "codec.batch_coding", "decode_batch": "codec.batch_coding"}

__all__ = ["Codec", "CodecOutput", "ModelConfig", "model_config", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'codec' has no attribute {name!r}")
