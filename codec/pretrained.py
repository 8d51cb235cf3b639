"""A trained model ready to code audio, and ``load`` for every place one is kept.

:func:`load` reads any of the three kinds of model on disk:

- a run directory (``RUN/best``, else its newest readable checkpoint);
- a checkpoint directory, or the ``model.safetensors`` inside one (verified against
  the sizes and hashes in its ``meta.json``);
- a file written by ``codec export`` (weight norm folded, no training state).

and returns a :class:`PretrainedModel`: the network in eval mode, its id, the loudness
its training data was normalised to, the entropy tables saved for it (if any) and where
it came from. Everything that codes audio takes this object; the network itself stays a
plain :class:`codec.network.model.Codec`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

import torch
from safetensors import SafetensorError, safe_open

from codec import checkpoint as ckpt
from codec import export
from codec.coding.entropy import TABLES_FILE, EntropyTables, find_tables, tables_dir
from codec.coding.settings import check_coding
from codec.config import (
    DEFAULT_TARGET_LUFS,
    CodingConfig,
    ModelConfig,
    from_dict,
    split_saved_model,
)
from codec.errors import CodecError
from codec.network.model import Codec, check_model_size, compute_model_id
from codec.network.nn import fold_weight_norm

SOURCE_KINDS = ("run", "checkpoint", "export", "memory")


@dataclass(frozen=True)
class ModelSource:
    """Where a model came from: ``kind`` (one of ``SOURCE_KINDS``), the path it was
    loaded from as given, and the model file read (None for a model built in memory)."""
    kind: str
    path: Optional[Path] = None
    model_file: Optional[Path] = None


@dataclass(frozen=True)
class PretrainedModel:
    """A trained model ready to code audio.

    network: the :class:`Codec`, in eval mode.
    model_id: :func:`codec.network.model.compute_model_id` of the network (files name it).
    target_lufs: the loudness its training data was normalised to, which encoding
        brings input to; None when it was trained on audio at its recorded level.
    entropy_tables: the code frequency tables measured for it (``codec entropy-tables``),
        or None.
    source: where it came from.
    coding: what coding reads besides the network (band levels, post-filter); a
        different choice is a new value (:meth:`with_postfilter`, :meth:`with_band_levels`).
    """
    network: Codec
    model_id: str
    target_lufs: Optional[float] = DEFAULT_TARGET_LUFS
    entropy_tables: Optional[EntropyTables] = None
    source: ModelSource = ModelSource("memory")
    coding: CodingConfig = field(default_factory=CodingConfig)

    @classmethod
    def from_network(cls, network: Codec, *,
                     target_lufs: Optional[float] = DEFAULT_TARGET_LUFS,
                     entropy_tables: Optional[EntropyTables] = None,
                     coding: CodingConfig | None = None) -> PretrainedModel:
        """A model built or trained in memory (put in eval mode; its id computed here),
        coding with ``coding`` (default: no band levels, no post-filter); ConfigError for
        coding settings the network cannot take."""
        coding = CodingConfig() if coding is None else coding
        check_coding(coding, network.config.causal)
        return cls(network.eval(), compute_model_id(network), target_lufs, entropy_tables,
                   coding=coding)

    @property
    def config(self) -> ModelConfig:
        return self.network.config

    @property
    def sample_rate(self) -> int:
        return self.network.sample_rate

    def with_postfilter(self, exponent: float) -> PretrainedModel:
        """This model decoding through the post-filter with ``exponent`` (1: off) in
        place of its own ``coding.postfilter``; CodecError for one it cannot take."""
        return self._with_coding(postfilter=float(exponent))

    def with_band_levels(self, bands: int) -> PretrainedModel:
        """This model encoding with the input's levels in ``bands`` bands beside the codes
        (0: none) at every bitrate, in place of its own ``coding.band_levels`` (and
        ``coding.band_levels_low_rate``); CodecError for a count it cannot take."""
        return self._with_coding(band_levels=int(bands), band_levels_low_rate=0)

    def _with_coding(self, **changes) -> PretrainedModel:
        coding = replace(self.coding, **changes)
        check_coding(coding, self.config.causal)  # a ConfigError is a CodecError
        return replace(self, coding=coding)

    def require_entropy_tables(self) -> EntropyTables:
        """The entropy tables, or CodecError saying how to make them."""
        if self.entropy_tables is not None:
            return self.entropy_tables
        path = self.source.path
        if path is None:
            raise CodecError("this model has no entropy tables")
        where = tables_dir(path) / TABLES_FILE
        problem = "were measured for another model" if where.is_file() else "do not exist"
        raise CodecError(f"--entropy: the entropy tables {where} {problem}; make them with "
                         f"codec entropy-tables --model {path} --data TRAIN.jsonl")


def load(path: str | Path, device: str | torch.device = "cpu") -> PretrainedModel:
    """The model at ``path``: a run directory, a checkpoint directory, its
    model.safetensors, or a file from ``codec export``. CodecError for anything else."""
    path = Path(path)
    model_file, kind = resolve_model_path(path)
    metadata = _model_metadata(model_file)
    meta = None
    if metadata.get("format") == export.FORMAT:
        network, coding, model_id = _exported_network(model_file, metadata)
        kind = "export"
    else:
        meta = _verified_meta(model_file)
        network, coding, model_id = _checkpoint_network(model_file, metadata)
    return PretrainedModel(
        network=network.to(device).eval(), model_id=model_id,
        target_lufs=_training_loudness(model_file, metadata, meta),
        entropy_tables=find_tables(path, model_id),
        source=ModelSource(kind, path, model_file), coding=coding)


def resolve_model_path(path: Path) -> tuple[Path, str]:
    """The model file ``path`` names and its kind: a run directory (its ``best``, else
    its newest readable checkpoint), a checkpoint directory, or the file itself."""
    if path.is_file():
        return path, "checkpoint"
    if not path.is_dir():
        raise ckpt.CheckpointError(f"{path}: no such file or directory")
    if (path / ckpt.MODEL_FILE).is_file():
        return path / ckpt.MODEL_FILE, "checkpoint"
    best = ckpt.best_dir(path)  # also when a crash came in the middle of replacing it
    if best is not None:
        return best / ckpt.MODEL_FILE, "run"
    latest = ckpt.latest_checkpoint(path, train_state=False)
    if latest is not None:
        return latest.path / ckpt.MODEL_FILE, "run"
    raise ckpt.CheckpointError(f"{path}: not a model (expected a run directory with best/ "
                               f"or checkpoints/, a checkpoint directory, or a "
                               f"{ckpt.MODEL_FILE})")


def read_metadata(path: str | Path) -> dict[str, str]:
    """The safetensors header metadata of ``path`` ({} when it has none)."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            return handle.metadata() or {}
    except (SafetensorError, OSError) as error:
        raise ckpt.CheckpointError(f"{path}: cannot be read ({error})") from None


def is_exported(path: str | Path) -> bool:
    """True when ``path`` is a safetensors file written by ``codec export``."""
    try:
        return read_metadata(path).get("format") == export.FORMAT
    except CodecError:
        return False


def _model_metadata(path: Path) -> dict[str, str]:
    """The header of a model file; CheckpointError for a file that is not one."""
    try:
        metadata = read_metadata(path)
    except CodecError:
        if path.suffix == ".safetensors":
            raise
        metadata = {}
    if path.suffix != ".safetensors" and metadata.get("format") != export.FORMAT:
        raise ckpt.CheckpointError(f"{path}: not a model file (expected {ckpt.MODEL_FILE} "
                                   f"or a file from `codec export`)")
    return metadata


def _verified_meta(model_file: Path) -> dict | None:
    """The meta.json beside a checkpoint's model file (None without one), the model file
    checked against the size and hash it records."""
    if not (model_file.parent / ckpt.META_FILE).is_file():
        return None
    meta = ckpt.read_meta(model_file.parent)
    record = meta.get("files", {}).get(ckpt.MODEL_FILE)
    if record is not None:
        ckpt.verify_file(model_file.parent, ckpt.MODEL_FILE, record)
    return meta


def _checkpoint_network(path: Path,
                        metadata: dict[str, str]) -> tuple[Codec, CodingConfig, str]:
    """The Codec of a checkpoint's model.safetensors, whose header names its config, the
    coding config beside it, and its (checked) id."""
    if metadata.get("format") != ckpt.FORMAT or "model_config" not in metadata:
        raise ckpt.CheckpointError(f"{path}: a safetensors file without a codec model config")
    config, coding = _bounded_config(path, metadata)
    problem = _misfit(path, config, folded=False)
    if problem:
        raise ckpt.CheckpointError(f"{path}: weights do not fit its config ({problem})")
    network = Codec(config)
    try:
        network.load_state_dict(_finite(path, ckpt.load_tensors(path)))
    except RuntimeError as error:
        first_line = (str(error).strip().splitlines() or [""])[0]
        raise ckpt.CheckpointError(f"{path}: weights do not fit its config "
                                   f"({first_line})") from None
    model_id = compute_model_id(network)
    claimed = metadata.get("model_id")
    if claimed and claimed != model_id:
        raise ckpt.CheckpointError(f"{path}: its weights are model {model_id}, but its header "
                                   f"says {claimed}; damaged or altered file?")
    return network, coding, model_id


def _bounded_config(path: Path, metadata: dict[str, str]) -> tuple[ModelConfig, CodingConfig]:
    """The model and coding configs in a file's header, checked to describe a model of
    sane size, and coding it can do, before anything is built from them (the file may
    come from anywhere). A file from before coding had a section of its own keeps the
    coding settings in its model config."""
    if "model_config" not in metadata:
        raise ckpt.CheckpointError(f"{path}: its header has no model_config: not a model file "
                                   f"this codec wrote, or a damaged one")
    try:
        network, coding = split_saved_model(json.loads(metadata["model_config"]))
        if "coding_config" in metadata:
            coding = json.loads(metadata["coding_config"])
        config = from_dict(ModelConfig, network)
        check_model_size(config)
        coding = from_dict(CodingConfig, coding)
        check_coding(coding, config.causal)
    except (ValueError, RecursionError, TypeError, AttributeError) as error:
        # ConfigError is a ValueError
        raise ckpt.CheckpointError(f"{path}: unusable model config ({error})") from None
    return config, coding


def _exported_network(path: Path,
                      metadata: dict[str, str]) -> tuple[Codec, CodingConfig, str]:
    """The Codec of an exported file, computing in float32, its coding config and its
    (checked) id.
    ExportError for a file newer than this toolkit, or whose weights or codebooks do
    not match its header."""
    text = metadata.get("format_version", "0")
    if not (text.isascii() and text.isdigit()):
        raise export.ExportError(f"{path}: damaged header (format_version {text!r:.40} is "
                                 f"not a whole number)")
    version = int(text[:12])
    if version > export.FORMAT_VERSION:
        raise export.ExportError(f"{path}: export format version {version} is newer than "
                                 f"this toolkit reads ({export.FORMAT_VERSION}); upgrade it")
    # Build the architecture, then fold its (random) weight norm so that the parameter
    # names match the folded file.
    config, coding = _bounded_config(path, metadata)
    problem = _misfit(path, config, folded=True)
    if problem:
        raise export.ExportError(f"{path}: weights do not fit its config ({problem})")
    network = fold_weight_norm(Codec(config))
    stored = _finite(path, ckpt.load_tensors(path))
    state = {name: tensor.float() if tensor.is_floating_point() else tensor
             for name, tensor in stored.items()}
    missing, unexpected = network.load_state_dict(state, strict=False)
    missing = [name for name in missing if not export.is_training_buffer(name)]
    if missing or unexpected:
        raise export.ExportError(f"{path}: weights do not fit its config (missing "
                                 f"{missing[:5]}, unexpected {unexpected[:5]})")
    model_id = compute_model_id(network)
    if metadata.get("model_id") and metadata["model_id"] != model_id:
        raise export.ExportError(f"{path}: codebooks do not match the model id in its header "
                                 f"({model_id} != {metadata['model_id']}); damaged file?")
    recorded = metadata.get("weights_sha256")  # the id covers the codebooks; this the rest
    if recorded is not None and recorded != export.weights_digest(stored):
        raise export.ExportError(f"{path}: its weights are not those it was exported with "
                                 f"(their SHA-256 differs from its header's); damaged or "
                                 f"altered file?")
    return network, coding, model_id


def _misfit(path: Path, config: ModelConfig, *, folded: bool) -> str | None:
    """Why the tensors of the model file at ``path`` do not fit a model of ``config``
    (weight norm ``folded``, as an export has it), or None. Read from the file's header
    and a sketch of the model on the meta device: nothing of the size the config asks
    for is allocated before the file is known to hold that much."""
    with torch.device("meta"):
        sketch = Codec(config)
    if folded:
        sketch = fold_weight_norm(sketch)
    try:
        with safe_open(str(path), framework="pt") as handle:
            slices = {name: handle.get_slice(name) for name in handle.keys()}
            found = {name: tuple(part.get_shape()) for name, part in slices.items()}
            kinds = {name: _kind(part.get_dtype()) for name, part in slices.items()}
    except (SafetensorError, OSError) as error:
        return f"unreadable tensors: {error}"
    expected = {name: tuple(tensor.shape) for name, tensor in sketch.state_dict().items()
                if not (folded and export.is_training_buffer(name) and name not in found)}
    missing, unexpected = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    if missing or unexpected:
        return f"missing {missing[:3]}, unexpected {unexpected[:3]}"
    wrong = next((name for name in expected if expected[name] != found[name]), None)
    if wrong:
        return f"{wrong} is {list(found[wrong])} in the file, {list(expected[wrong])} by its config"
    wanted = {name: _kind(str(tensor.dtype)) for name, tensor in sketch.state_dict().items()}
    wrong = next((name for name in expected if wanted[name] != kinds[name]), None)
    if wrong:  # a cast would drop an imaginary part, or turn flags into weights
        return f"{wrong} holds {kinds[wrong]} values, where the model has {wanted[wrong]} ones"
    return None


def _kind(dtype: str) -> str:
    """``float``, ``complex``, ``bool`` or ``integer``, from a torch dtype's name or a
    safetensors one (``F16``, ``BF16``, ``C64``, ``BOOL``, ``I64`` ...)."""
    name = dtype.removeprefix("torch.").lower()
    if name.startswith(("f", "bf", "half", "double")):
        return "float"
    if name.startswith("c"):
        return "complex"
    return "bool" if name.startswith("bool") else "integer"


def _finite(path: Path, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``tensors``, or CheckpointError naming the first that holds NaN or infinite values
    (a model with them codes nothing but errors)."""
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ckpt.CheckpointError(f"{path}: damaged weights ({name} holds NaN or "
                                       f"infinite values)")
    return tensors


def _training_loudness(path: Path, metadata: dict[str, str],
                       meta: dict | None) -> Optional[float]:
    """The loudness the model's training data was normalised to: from the model file's
    header, else from the run config in the checkpoint's meta.json, else the default.
    CheckpointError for a value that is neither null nor a loudness (LUFS, -100 to 0)."""
    if "target_lufs" in metadata:
        try:
            value = json.loads(metadata["target_lufs"])
        except (ValueError, RecursionError):
            value = metadata["target_lufs"]
    else:
        try:
            value = meta["config"]["data"]["target_lufs"]
        except (KeyError, TypeError):
            return DEFAULT_TARGET_LUFS
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)
                         and -100 <= value <= 0):
        return value
    raise ckpt.CheckpointError(f"{path}: damaged header (target_lufs {value!r:.40} is not "
                               f"a loudness in LUFS, -100 to 0, or null)")
