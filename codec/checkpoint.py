"""Training checkpoints: atomic, pickle-free, resumable (``codec.pretrained`` loads a
trained model from one for coding).

Layout of a run directory::

    RUN/config.yaml                     the resolved config the run was started with
    RUN/checkpoints/step-000500/        one checkpoint (the last ``keep_last`` are kept)
        model.safetensors               model weights (their average under
                                        train.weight_ema) and quantiser buffers; the header
                                        metadata holds the ModelConfig, so the file alone
                                        is enough to rebuild the model
        train_state.safetensors         tensors of optimisers, discriminator, RNG states
                                        (and the trained weights under train.weight_ema)
        meta.json                       resolved Config, step, model_id, metrics, the
                                        model the run started from (init_from), the
                                        non-tensor parts of the training state, and the
                                        size and SHA-256 of each file above
    RUN/best/                           the same files for the best validation score

A checkpoint is written into a hidden temporary directory, every file is
fsync'ed, and only then renamed into place, so a crash mid-write never leaves a
broken checkpoint under a real name. Replacing ``best/`` takes two renames (the old
one aside, the new one in); a crash between them leaves both complete under hidden
names, and :func:`best_dir` finds the newer (:func:`recover_best` renames it back).
A checkpoint whose meta.json is malformed, or whose files do not match the sizes and
hashes in it (a truncated copy, a full disk), is refused; resuming then falls back
to the previous one with a warning.

Nothing here uses pickle: tensors go to safetensors and everything else to JSON.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from codec.config import CodingConfig, ModelConfig, from_dict, split_saved_model, to_dict
from codec.errors import CodecError

FORMAT = "codec-checkpoint"
FORMAT_VERSION = 1
MODEL_FILE = "model.safetensors"
STATE_FILE = "train_state.safetensors"
META_FILE = "meta.json"
CHECKPOINTS_DIR = "checkpoints"
BEST_DIR = "best"
_STEP_DIR = re.compile(r"^step-(\d+)$")


class CheckpointError(CodecError):
    """A checkpoint that is missing, damaged or does not fit the model."""


class ConfigMismatchError(CheckpointError):
    """A readable checkpoint of another model configuration than the run's."""


@dataclass
class Checkpoint:
    """A checkpoint read back from disk.

    meta: the parsed meta.json (``config``, ``step``, ``model_id``, ``metrics`` ...).
    model_state: the model's state dict.
    train_state: the nested training state (optimisers, schedulers, RNG ...) with its
    tensors put back, or None when it was not asked for or not saved.
    """
    path: Path
    meta: dict
    model_state: dict[str, torch.Tensor]
    train_state: dict | None = None

    @property
    def step(self) -> int:
        return int(self.meta["step"])


# ---------------------------------------------------------------------------
# Nested state <-> (JSON tree, flat tensors)


def pack_state(tree: Any, prefix: str = "") -> tuple[Any, dict[str, torch.Tensor]]:
    """Split a nested state (dicts, lists, tuples, tensors, JSON scalars) into a JSON tree
    and a flat ``{name: tensor}`` dict for safetensors. Tensors are replaced by
    ``{"__tensor__": name}``; tuples and dicts with non-string keys (optimiser state is
    keyed by int) are tagged so that ``unpack_state`` rebuilds them exactly."""
    tensors: dict[str, torch.Tensor] = {}

    def walk(node: Any, path: str) -> Any:
        if isinstance(node, torch.Tensor):
            # safetensors refuses views that share storage; a contiguous copy is cheap here.
            tensors[path] = node.detach().cpu().contiguous().clone()
            return {"__tensor__": path}
        if isinstance(node, dict):
            if all(isinstance(k, str) for k in node):
                return {k: walk(v, f"{path}/{k}") for k, v in node.items()}
            return {"__items__": [[k, walk(v, f"{path}/{k}")] for k, v in node.items()]}
        if isinstance(node, tuple):
            return {"__tuple__": [walk(v, f"{path}/{i}") for i, v in enumerate(node)]}
        if isinstance(node, list):
            return [walk(v, f"{path}/{i}") for i, v in enumerate(node)]
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        raise TypeError(f"cannot store {type(node).__name__} at {path or '/'} in a checkpoint")

    return walk(tree, prefix), tensors


def unpack_state(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`pack_state`."""
    if isinstance(tree, list):
        return [unpack_state(v, tensors) for v in tree]
    if isinstance(tree, dict):
        if set(tree) == {"__tensor__"}:
            return tensors[tree["__tensor__"]]
        if set(tree) == {"__tuple__"}:
            return tuple(unpack_state(v, tensors) for v in tree["__tuple__"])
        if set(tree) == {"__items__"}:
            return {k: unpack_state(v, tensors) for k, v in tree["__items__"]}
        return {k: unpack_state(v, tensors) for k, v in tree.items()}
    return tree


# ---------------------------------------------------------------------------
# Writing


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some platforms cannot open directories; rename is still atomic
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _file_record(path: Path) -> dict:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def model_metadata(model_config: ModelConfig, model_id: str | None,
                   target_lufs: float | None = None,
                   coding: CodingConfig | None = None) -> dict[str, str]:
    """The safetensors header metadata that makes model.safetensors self-describing:
    the model config, its id, the loudness its training data was normalised to (which
    ``codec encode`` normalises input to) and the coding config (band levels,
    post-filter)."""
    return {"format": FORMAT, "format_version": str(FORMAT_VERSION),
            "model_config": json.dumps(to_dict(model_config)), "model_id": model_id or "",
            "target_lufs": json.dumps(target_lufs),
            "coding_config": json.dumps(to_dict(coding or CodingConfig()))}


def save_checkpoint(directory: str | Path, *, model_state: dict[str, torch.Tensor],
                    config: Any, step: int, model_id: str | None = None,
                    metrics: dict[str, float] | None = None,
                    train_state: dict | None = None, origin: dict | None = None,
                    facts: dict | None = None) -> Path:
    """Write one checkpoint atomically to ``directory`` (replacing it if it exists).

    ``config`` is the resolved :class:`codec.config.Config`; ``train_state`` any nested
    state (see :func:`pack_state`), omitted for a weights-only checkpoint such as ``best``;
    ``origin`` the model the run started from (``train.init_from``: path and model id).
    ``facts`` more JSON entries for meta.json (the run's provenance and wall time),
    which never replace the ones above.
    """
    directory = Path(directory)
    tmp = directory.parent / f".tmp-{directory.name}-{os.getpid()}"
    try:
        _write_checkpoint(directory, tmp, model_state=model_state, config=config, step=step,
                          model_id=model_id, metrics=metrics, train_state=train_state,
                          origin=origin, facts=facts)
    except (OSError, SafetensorError) as error:  # a full disk, a read-only folder
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(f"{directory}: cannot write "
                              f"({getattr(error, 'strerror', None) or error})") from None
    return directory


def _write_checkpoint(directory: Path, tmp: Path, *, model_state: dict[str, torch.Tensor],
                      config: Any, step: int, model_id: str | None,
                      metrics: dict[str, float] | None, train_state: dict | None,
                      origin: dict | None, facts: dict | None) -> None:
    """:func:`save_checkpoint`'s work: everything written under ``tmp`` first, then
    moved into place."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()

    files = {}
    model_state = {k: v.detach().cpu().contiguous() for k, v in model_state.items()}
    save_file(model_state, tmp / MODEL_FILE,
              metadata=model_metadata(config.model, model_id, config.data.target_lufs,
                                      config.coding))
    files[MODEL_FILE] = tmp / MODEL_FILE
    state_json = None
    if train_state is not None:
        state_json, tensors = pack_state(train_state)
        save_file(tensors, tmp / STATE_FILE)
        files[STATE_FILE] = tmp / STATE_FILE
    for path in files.values():
        _fsync_file(path)

    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "step": int(step),
        "model_id": model_id,
        "metrics": {k: float(v) for k, v in (metrics or {}).items()},
        "config": to_dict(config),
        "init_from": origin,
        "train_state": state_json,
        "files": {name: _file_record(path) for name, path in files.items()},
    }
    meta = {**(facts or {}), **meta}
    (tmp / META_FILE).write_text(json.dumps(meta, indent=1, allow_nan=True))
    _fsync_file(tmp / META_FILE)
    _fsync_dir(tmp)

    # Directories cannot be renamed over non-empty ones: move the old one aside first.
    old = directory.parent / f".old-{directory.name}-{os.getpid()}"
    if directory.exists():
        os.replace(directory, old)
    os.replace(tmp, directory)
    _fsync_dir(directory.parent)
    if old.exists():
        shutil.rmtree(old)


# ---------------------------------------------------------------------------
# Reading


def read_meta(directory: Path) -> dict:
    meta_path = directory / META_FILE
    if not meta_path.is_file():
        raise CheckpointError(f"{directory}: not a checkpoint (no {META_FILE})")
    try:
        meta = json.loads(meta_path.read_text())
    except (ValueError, UnicodeDecodeError, RecursionError, OSError) as error:
        raise CheckpointError(f"{meta_path}: damaged ({error})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{meta_path}: not a {FORMAT} file")
    version = meta.get("format_version", 0)
    if not isinstance(version, int):
        raise CheckpointError(f"{meta_path}: damaged (format_version {version!r:.40})")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{meta_path}: format version {version} is newer "
                              f"than this toolkit reads ({FORMAT_VERSION}); upgrade it")
    problem = _meta_problem(meta)
    if problem:
        raise CheckpointError(f"{meta_path}: damaged ({problem})")
    return meta


def _meta_problem(meta: dict) -> str | None:
    """What is malformed in a meta.json, or None: each field the readers rely on is
    checked for its type, so that nothing later fails on it with a traceback."""
    step, files = meta.get("step"), meta.get("files")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        return f"step {step!r:.40} is not a whole number"
    if not isinstance(files, dict):
        return "no 'files' record of sizes and hashes"
    for name, record in files.items():
        if (not isinstance(record, dict) or not isinstance(record.get("bytes"), int)
                or not isinstance(record.get("sha256"), str)):
            return f"the record of {name!r:.80} is not {{bytes, sha256}}"
    if MODEL_FILE not in files:
        return f"'files' does not list {MODEL_FILE}"
    if not isinstance(meta.get("config"), dict):
        return "no 'config'"
    kinds = {"model_id": (str, type(None)), "metrics": (dict,),
             "train_state": (dict, list, type(None))}
    wrong = [key for key, types in kinds.items() if not isinstance(meta.get(key), types)]
    return f"field(s) {wrong} of the wrong type" if wrong else None


def verify_file(directory: Path, name: str, record: dict) -> None:
    path = directory / name
    if not path.is_file():
        raise CheckpointError(f"{path}: missing")
    if path.stat().st_size != record["bytes"]:
        raise CheckpointError(f"{path}: damaged ({path.stat().st_size} bytes, "
                              f"{record['bytes']} expected; truncated?)")
    if _file_record(path)["sha256"] != record["sha256"]:
        raise CheckpointError(f"{path}: damaged (content does not match its SHA-256)")


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path}: cannot be read ({error})") from None


def read_checkpoint(directory: str | Path, *, train_state: bool = True) -> Checkpoint:
    """Read and verify a checkpoint directory; CheckpointError if it is damaged."""
    directory = Path(directory)
    meta = read_meta(directory)
    named = _STEP_DIR.match(directory.name)
    if named and int(named.group(1)) != meta["step"]:
        raise CheckpointError(f"{directory}: damaged ({META_FILE} says step "
                              f"{meta['step']!r:.40}, the folder step {int(named.group(1))})")
    train_state = train_state and bool(meta["train_state"])
    if train_state and STATE_FILE not in meta["files"]:
        raise CheckpointError(f"{directory}: {META_FILE} does not list {STATE_FILE}")
    wanted = [MODEL_FILE] + ([STATE_FILE] if train_state else [])
    for name in wanted:
        verify_file(directory, name, meta["files"][name])
    model_state = load_tensors(directory / MODEL_FILE)
    state = None
    if train_state:
        try:
            state = unpack_state(meta["train_state"], load_tensors(directory / STATE_FILE))
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(f"{directory}: the training state does not match its "
                                  f"tensors ({type(error).__name__}: {error})") from None
    return Checkpoint(directory, meta, model_state, state)


def step_dir_name(step: int) -> str:
    return f"step-{step:06d}"


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Step checkpoint directories of a run, oldest first."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir()
             if p.is_dir() and (m := _STEP_DIR.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: str | Path, *, train_state: bool = True) -> Checkpoint | None:
    """The newest readable checkpoint of a run, or None if there is none.

    A damaged newer checkpoint is skipped with a warning naming it and the reason.
    """
    for directory in reversed(list_checkpoints(run_dir)):
        try:
            return read_checkpoint(directory, train_state=train_state)
        except CheckpointError as error:
            warnings.warn(f"skipping damaged checkpoint: {error}", stacklevel=2)
    return None


def prune_checkpoints(run_dir: str | Path, keep_last: int) -> None:
    """Delete all but the newest ``keep_last`` step checkpoints (and stale temporaries)."""
    recover_best(run_dir)
    directories = list_checkpoints(run_dir)
    for directory in directories[:max(len(directories) - max(keep_last, 1), 0)]:
        shutil.rmtree(directory, ignore_errors=True)
    # Leftovers of a crash mid-save. An old best/ moved aside is kept until a new
    # best/ exists: the crash may have come between the two renames.
    run_dir = Path(run_dir)
    root = run_dir / CHECKPOINTS_DIR
    stale = [*root.glob(".tmp-*"), *root.glob(".old-*"), *run_dir.glob(f".tmp-{BEST_DIR}-*")]
    if (run_dir / BEST_DIR).is_dir():
        stale += run_dir.glob(f".old-{BEST_DIR}-*")
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)


def _best_leftovers(run_dir: Path) -> list[Path]:
    """Complete copies of best/ left under hidden names by a crash mid-swap, the newest
    first (the new copy, ``.tmp-best-*``, before the old one on an equal step)."""
    found = []
    for rank, pattern in ((1, f".tmp-{BEST_DIR}-*"), (0, f".old-{BEST_DIR}-*")):
        for path in run_dir.glob(pattern):
            try:
                found.append((read_checkpoint(path, train_state=False).step, rank, path))
            except CheckpointError:
                continue  # an unfinished copy
    return [path for *_, path in sorted(found, reverse=True)]


def best_dir(run_dir: str | Path) -> Path | None:
    """The run's best checkpoint directory: ``best/``, or when a crash came between the
    two renames that replace it, the newest complete copy left beside it; None if the
    run has no best checkpoint."""
    run_dir = Path(run_dir)
    if (run_dir / BEST_DIR).is_dir():
        return run_dir / BEST_DIR
    leftovers = _best_leftovers(run_dir)
    return leftovers[0] if leftovers else None


def recover_best(run_dir: str | Path) -> None:
    """Put the newest complete copy of best/ back in place after a crash mid-swap."""
    run_dir = Path(run_dir)
    found = best_dir(run_dir)
    if found is not None and found != run_dir / BEST_DIR:
        warnings.warn(f"{run_dir}: best/ was being replaced when the run stopped; "
                      f"restored it from {found.name}", stacklevel=2)
        os.replace(found, run_dir / BEST_DIR)
        _fsync_dir(run_dir)


# ---------------------------------------------------------------------------
# Model configuration checks


def config_differences(expected: ModelConfig, found: ModelConfig) -> list[str]:
    """``'field: a != b'`` for each ModelConfig field that differs."""
    return [f"{f.name}: {getattr(found, f.name)!r} != {getattr(expected, f.name)!r}"
            for f in dataclasses.fields(ModelConfig)
            if getattr(found, f.name) != getattr(expected, f.name)]


def check_model_config(expected: ModelConfig, checkpoint: Checkpoint) -> None:
    """Raise ConfigMismatchError naming every field where the checkpoint's model differs
    (CheckpointError when its config cannot be read)."""
    try:
        # The coding settings may change between runs (and sat under model once).
        found = from_dict(ModelConfig, split_saved_model(checkpoint.meta["config"]["model"])[0])
    except (KeyError, TypeError, AttributeError, CodecError) as error:
        raise CheckpointError(f"{checkpoint.path}: damaged model config ({error})") from None
    differences = config_differences(expected, found)
    if differences:
        raise ConfigMismatchError(
            f"{checkpoint.path} holds a model with a different configuration "
            f"(checkpoint != config): {'; '.join(differences)}. Use another run_dir, "
            f"or set these model fields back.")
