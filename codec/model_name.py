"""How a compressed file names the model that wrote it, and how decoding finds it again.

A ``.qca`` header records the model's *name*: the run folder or model file name,
never the folders above it, so a file shared with others does not carry a path of
the machine it was made on. Names that mean nothing alone keep the run folder in
front: ``exp/x`` is ``x``, ``exp/x/best`` is ``x/best``, ``/models/m.safetensors``
is ``m.safetensors``.

``codec decode`` without ``--model`` looks for the name near the compressed file and in
the current folder (see :func:`search_folders`); a model found there that is not
the one (its id differs from the file's) is refused when decoding. Files written by
earlier versions recorded an absolute path, which is still used when it exists.

A packet stream (``.qcs``) comes from a pipe, often from another machine: ``codec
stream-decode`` looks its name up in the current folder (and ``exp/``, and
``$CODEC_MODEL_PATH``) only, and follows no path a stream gives (:func:`find_stream_model`).
"""
from __future__ import annotations

import os
import re
from pathlib import Path, PureWindowsPath

# Path components that only mean something inside a run folder.
_INSIDE_A_RUN = re.compile(r"^(best|checkpoints|step-\d+|model\.safetensors)$")
# Folders (os.pathsep-separated) searched for a model after the usual places.
SEARCH_PATH_VARIABLE = "CODEC_MODEL_PATH"
# Where runs live by default (``run_dir: exp/run``).
RUNS_FOLDER = "exp"


def is_machine_path(name: str) -> bool:
    """True for an absolute path (POSIX or Windows), which a header must not carry."""
    return PureWindowsPath(name).is_absolute() or name.startswith(("/", "\\"))


def model_name(path: str | Path) -> str:
    """The name a compressed file records for the model at ``path``: its last
    component, with the run folder in front when that component alone is generic."""
    parts = Path(path).resolve().parts[1:]  # without the root
    start = len(parts) - 1
    while start > 0 and _INSIDE_A_RUN.match(parts[start]):
        start -= 1
    return "/".join(parts[max(start, 0):]) or "model"


def search_folders(compressed_file: str | Path) -> list[Path]:
    """Where a named model is looked for, in order: the compressed file's folder and
    each folder above it, then the current folder, each of them also with ``exp/``
    (where runs go by default), then the folders in ``$CODEC_MODEL_PATH``."""
    near = Path(compressed_file).absolute().parent
    places = [near, *near.parents, Path.cwd()]
    extra = [Path(p) for p in os.environ.get(SEARCH_PATH_VARIABLE, "").split(os.pathsep) if p]
    return [f for place in places for f in (place, place / RUNS_FOLDER)] + extra


def find_model(name: str | None, compressed_file: str | Path) -> Path | None:
    """The model a compressed file names, if it can be found; None otherwise. A name
    that climbs out of its folder (``..``) is never followed."""
    if not name:
        return None
    recorded = Path(name)
    if recorded.is_absolute():  # written by an older version: a path
        if recorded.exists():
            return recorded
        recorded = Path(model_name(recorded))
    if ".." in recorded.parts:
        return None
    for folder in search_folders(compressed_file):
        if (folder / recorded).exists():
            return folder / recorded
    return None


def find_stream_model(name: str | None) -> Path | None:
    """The model a packet stream names, found in the current folder (or its ``exp/``, or
    ``$CODEC_MODEL_PATH``); None for no name, a path (absolute, or climbing out with
    ``..``) or a name not found: a stream must not choose which file the decoder opens."""
    if not name or is_machine_path(name) or ".." in Path(name).parts:
        return None
    cwd = Path.cwd()
    extra = [Path(p) for p in os.environ.get(SEARCH_PATH_VARIABLE, "").split(os.pathsep) if p]
    for folder in (cwd, cwd / RUNS_FOLDER, *extra):
        if (folder / name).exists():
            return folder / name
    return None
