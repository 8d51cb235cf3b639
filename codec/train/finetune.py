"""Starting from a trained model: its weights in a new model, and parts that stay fixed.

``train.init_from`` names a run directory, a checkpoint directory or an exported file.
:func:`read_source` reads it; :func:`transfer` copies its tensors into a freshly built
model whose config may differ in the number of codebooks:

- every tensor whose name and shape match is copied (weight norm is unfolded or folded
  when only one side uses it, so an exported file works too);
- a larger ``model.n_q`` keeps the trained codebooks and leaves the new ones
  uninitialised, so that the first training batch places them by k-means on its
  residuals, as in a fresh run (codec/network/quantize.py);
- a smaller ``model.n_q`` drops the codebooks beyond it;
- frame levels (``model.level_bands``) turned on or off move the residual codebooks by
  one row, since the level codebook is row 0: turned on, the trained codebooks follow
  a new level codebook (k-means on the first batch's level vectors); turned off, the
  source's level codebook is dropped;
- any other difference in shape (width, stride, codebook size) is one CodecError that
  lists each tensor with the shape the model expects and the shape found.

``train.freeze`` names parts (:data:`FREEZABLE`) whose parameters leave the optimiser;
a frozen quantizer also stops its EMA codebook updates and dead-code revival.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from codec.config import ConfigError, ModelConfig
from codec.errors import CodecError
from codec.network.model import Codec

FREEZABLE = ("encoder", "quantizer", "decoder")
_CODEBOOK = re.compile(r"^quantizer\.layers\.(\d+)\.")
# torch.nn.utils.parametrizations.weight_norm's names: magnitude g, direction v.
_MAGNITUDE, _DIRECTION = ".parametrizations.weight.original0", ".parametrizations.weight.original1"
_ERRORS_SHOWN = 8


@dataclass
class SourceModel:
    """The weights a run starts from. ``state``: a training state dict (codebook
    statistics included) of a Codec built from ``config``."""
    path: Path
    model_id: str
    config: ModelConfig
    state: dict[str, torch.Tensor]

    def origin(self) -> dict[str, str]:
        """What a run records about where its weights came from."""
        return {"path": str(self.path), "model_id": self.model_id}


@dataclass
class Transfer:
    """What :func:`transfer` did: tensors copied, codebooks left to k-means (new) or
    dropped, and model settings that differ from the source's (``'field: old -> new'``)."""
    copied: int
    new_codebooks: list[int] = field(default_factory=list)
    dropped_codebooks: list[int] = field(default_factory=list)
    changed_settings: list[str] = field(default_factory=list)

    def describe(self) -> str:
        parts = [f"{self.copied} tensors copied"]
        if self.new_codebooks:
            parts.append(f"codebooks {self.new_codebooks} new (k-means on the first batch)")
        if self.dropped_codebooks:
            parts.append(f"codebooks {self.dropped_codebooks} dropped")
        if self.changed_settings:
            parts.append("model settings changed: " + ", ".join(self.changed_settings))
        return "; ".join(parts)


# ---------------------------------------------------------------------------
# Reading the source


def read_source(path: str | Path) -> SourceModel:
    """The model at ``path``: an exported file, a checkpoint directory, its
    model.safetensors, or a run directory (its best/, else its newest checkpoint)."""
    from codec.pretrained import load

    model = load(path)
    state = model.network.state_dict()
    if model.source.kind == "export":
        state = _with_fresh_statistics(state, model.network.config.n_q)
    return SourceModel(model.source.model_file, model.model_id, model.network.config, state)


def _with_fresh_statistics(state: dict[str, torch.Tensor], n_q: int) -> dict[str, torch.Tensor]:
    """An exported model's state with the codebook statistics it lacks: every code counted
    as used once (so none starts dead), sums to match, and each codebook initialised."""
    state = dict(state)
    for index in range(n_q):
        prefix = f"quantizer.layers.{index}."
        embed = state[prefix + "embed"]
        state[prefix + "cluster_size"] = torch.ones(embed.shape[0])
        state[prefix + "embed_sum"] = embed.clone()
        state[prefix + "initialized"] = torch.tensor(True)
    return state


# ---------------------------------------------------------------------------
# Copying into a new model


def _codebook_index(name: str) -> int | None:
    match = _CODEBOOK.match(name)
    return int(match.group(1)) if match else None


def _source_tensor(name: str, source: dict[str, torch.Tensor]) -> torch.Tensor | None:
    """The tensor of ``source`` that fills the target's ``name``, converting between a
    weight-norm pair (magnitude g, direction v) and a plain weight when needed."""
    if name in source:
        return source[name]
    if name.endswith((_MAGNITUDE, _DIRECTION)):
        plain = source.get(name[:-len(_MAGNITUDE)] + ".weight")
        if plain is None:
            return None
        # weight = g * v / |v| with norms over every dim but the first: v = weight works.
        return torch.norm_except_dim(plain, 2, 0) if name.endswith(_MAGNITUDE) else plain
    if name.endswith(".weight"):
        base = name[:-len(".weight")]
        g, v = source.get(base + _MAGNITUDE), source.get(base + _DIRECTION)
        if g is not None and v is not None:
            return g * v / torch.norm_except_dim(v, 2, 0)
    return None


def _source_names(name: str) -> tuple[str, ...]:
    """The names a source may hold the target's ``name`` under."""
    if name.endswith((_MAGNITUDE, _DIRECTION)):
        return name, name[:-len(_MAGNITUDE)] + ".weight"
    if name.endswith(".weight"):
        return name, name[:-len(".weight")] + _MAGNITUDE, name[:-len(".weight")] + _DIRECTION
    return (name,)


def _shape(tensor: torch.Tensor | None) -> str:
    return "missing" if tensor is None else str(list(tensor.shape))


def _level_rows(config: ModelConfig) -> int:
    """Code rows ahead of the residual codebooks: the frame levels' codebooks."""
    return config.level_codebooks if config.level_bands else 0


def _renamed(name: str, source_index: int) -> str:
    """A codebook tensor's ``name`` with its layer index set to ``source_index``."""
    return _CODEBOOK.sub(f"quantizer.layers.{source_index}.", name, count=1)


def transfer(codec: Codec, source: SourceModel) -> Transfer:
    """Copy ``source``'s tensors into ``codec`` (see the module docstring); CodecError
    listing every tensor that does not fit, before anything is copied."""
    target, old_n_q, new_n_q = codec.state_dict(), source.config.n_q, codec.config.n_q
    # Target codebook row t is the source's row t - shift (frame levels turned on: plus
    # their codebooks).
    shift = _level_rows(codec.config) - _level_rows(source.config)
    copied: dict[str, torch.Tensor] = {}
    misfits: list[str] = []
    used: set[str] = set()
    for name, tensor in target.items():
        index = _codebook_index(name)
        if index is not None:
            if not 0 <= index - shift < old_n_q:
                continue  # a new codebook: k-means on the first batch's residuals
            name_there = _renamed(name, index - shift)
        else:
            name_there = name
        found = _source_tensor(name_there, source.state)
        used.update(n for n in _source_names(name_there) if n in source.state)
        if found is None or found.shape != tensor.shape:
            misfits.append(f"{name}: expected {_shape(tensor)}, found {_shape(found)}")
        else:
            copied[name] = found
    kept = range(max(0, -shift), min(old_n_q, new_n_q - shift))
    misfits += [f"{name}: not in this model (found {_shape(source.state[name])})"
                for name in source.state if name not in used
                and (_codebook_index(name) is None or _codebook_index(name) in kept)]
    if misfits:
        more = f"; and {len(misfits) - _ERRORS_SHOWN} more" if len(misfits) > _ERRORS_SHOWN else ""
        raise CodecError(
            f"train.init_from={source.path}: {len(misfits)} tensor(s) do not fit this model "
            f"(only model.n_q and model.level_bands may differ in shape): "
            f"{'; '.join(misfits[:_ERRORS_SHOWN])}{more}")
    codec.load_state_dict(copied, strict=False)
    return Transfer(copied=len(copied),
                    new_codebooks=[t for t in range(new_n_q) if not 0 <= t - shift < old_n_q],
                    dropped_codebooks=[s for s in range(old_n_q) if s not in kept],
                    changed_settings=_changed_settings(source.config, codec.config))


def _changed_settings(old: ModelConfig, new: ModelConfig) -> list[str]:
    """Settings that differ (all of them fit, or :func:`transfer` would have refused)."""
    return [f"{f.name}: {getattr(old, f.name)!r} -> {getattr(new, f.name)!r}"
            for f in dataclasses.fields(ModelConfig)
            if getattr(old, f.name) != getattr(new, f.name)]


# ---------------------------------------------------------------------------
# Frozen parts


def check_freeze(parts: Sequence[str]) -> None:
    """ConfigError for a ``train.freeze`` with unknown names, or one that freezes all."""
    unknown = sorted(set(parts) - set(FREEZABLE))
    if unknown:
        raise ConfigError(f"train.freeze: unknown part(s) {unknown}; choices: {list(FREEZABLE)}")
    if set(parts) == set(FREEZABLE):
        raise ConfigError(f"train.freeze names every part ({list(FREEZABLE)}): nothing would "
                          f"train")


def freeze(codec: Codec, parts: Sequence[str]) -> list[nn.Parameter]:
    """Freeze ``parts`` of ``codec`` and return the parameters left to train."""
    check_freeze(parts)
    for part in parts:
        getattr(codec, part).requires_grad_(False)
    if "quantizer" in parts:
        for layer in codec.quantizer.layers:
            layer.frozen = True
    return [p for p in codec.parameters() if p.requires_grad]


def check_frozen_codebooks(codec: Codec) -> None:
    """CodecError if a frozen quantizer has codebooks never trained (they would stay
    random): a run from scratch, or more codebooks than the model it starts from."""
    untrained = [i for i, layer in enumerate(codec.quantizer.layers)
                 if layer.frozen and not bool(layer.initialized)]
    if untrained:
        raise CodecError(f"train.freeze has quantizer, but codebooks {untrained} were never "
                         f"trained and would stay random; start from a model that has them "
                         f"(train.init_from) or leave the quantizer unfrozen")
