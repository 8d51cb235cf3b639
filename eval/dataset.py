"""The files an evaluation runs on: a JSONL manifest or every audio file under a folder.

Each file is speech or not. PESQ and STOI are only meaningful for speech, so they
are computed only there. A manifest line's ``group`` (or its path) decides: a group
or a folder called ``speech`` (``speech``, ``speech_en``, ``clean-speech`` ...) means
speech. ``kind="speech"`` or ``"music"`` forces one answer for every file.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from codec.audio import AUDIO_SUFFIXES
from codec.errors import CodecError
from codec.train.data import read_manifest

KINDS = ("auto", "speech", "music")
_SPEECH_WORD = re.compile(r"(^|[^a-z])speech([^a-z]|$)")


@dataclass(frozen=True)
class EvalItem:
    """One file to evaluate; ``name`` is unique within the set (used in tables)."""
    path: Path
    name: str
    speech: bool
    group: str = ""


def is_speech_label(text: str) -> bool:
    """True when ``text`` (a group or a path component) names speech as a word."""
    return bool(_SPEECH_WORD.search(text.lower()))


def list_items(data: str | Path, kind: str = "auto",
               max_files: int | None = None) -> list[EvalItem]:
    """The evaluation set in a stable order (manifest order, or sorted paths).

    ``data``: a ``.jsonl`` manifest (lines with at least ``path``; relative paths are
    taken from the manifest's folder), a folder (every audio file under it), or one
    audio file. ``max_files`` keeps the first N.
    """
    if kind not in KINDS:
        raise CodecError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    data = Path(data)
    if data.is_dir():
        items = _folder_items(data)
    elif data.is_file() and data.suffix == ".jsonl":
        items = _manifest_items(data)
    elif data.is_file() and data.suffix.lower() in AUDIO_SUFFIXES:
        items = [EvalItem(data, data.stem, is_speech_label(str(data)))]
    elif data.exists():
        raise CodecError(f"{data}: expected a .jsonl manifest, a folder or an audio file")
    else:
        raise CodecError(f"{data}: no such file or folder")
    if not items:
        raise CodecError(f"{data}: no audio files found")
    if max_files is not None:
        if max_files < 1:
            raise CodecError(f"--max-files must be at least 1, got {max_files}")
        items = items[:max_files]
    if kind != "auto":
        items = [EvalItem(i.path, i.name, kind == "speech", i.group) for i in items]
    return items


def _folder_items(root: Path) -> list[EvalItem]:
    paths = sorted(p for p in root.rglob("*")
                   if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    items = []
    for path in paths:
        relative = path.relative_to(root)
        group = relative.parts[0] if len(relative.parts) > 1 else ""
        speech = any(is_speech_label(part) for part in relative.parts[:-1])
        items.append(EvalItem(path, str(relative.with_suffix("")), speech, group))
    return items


def _manifest_items(manifest: Path) -> list[EvalItem]:
    items = []
    names: set[str] = set()
    for entry in read_manifest(manifest, fields=("path",)):
        path = Path(entry["path"])
        if not path.is_file():
            raise CodecError(f"{manifest}: file {path} not found")
        group = str(entry.get("group") or "")
        speech = is_speech_label(group) if group else _in_speech_folder(path, manifest)
        name = _unique(path.stem if not group else f"{group}/{path.stem}", names)
        items.append(EvalItem(path, name, speech, group))
    return items


def _in_speech_folder(path: Path, manifest: Path) -> bool:
    """Whether a folder of ``path`` names speech; below the manifest's own folder, only
    the folders under it count."""
    base = manifest.resolve().parent
    folders = (path.relative_to(base) if path.is_relative_to(base) else path).parts[:-1]
    return any(is_speech_label(part) for part in folders)


def _unique(name: str, seen: set[str]) -> str:
    candidate, number = name, 2
    while candidate in seen:
        candidate, number = f"{name}~{number}", number + 1
    seen.add(candidate)
    return candidate
