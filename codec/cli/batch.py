"""Folder plans made safe: walking folders (an unreadable one is reported, not skipped
in silence), refusing a plan that would replace its own inputs, and one line for each
file that fails in a batch."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from codec.errors import CodecError


def files_under(folder: Path, suffixes: frozenset[str]) -> list[Path]:
    """Regular files under ``folder`` whose suffix is one of ``suffixes``, sorted. Each
    sub-folder that cannot be read gets one warning line on stderr."""
    def report(error: OSError) -> None:
        print(f"codec: warning: {error.filename}: cannot read folder "
              f"({error.strerror or error}); its files are skipped", file=sys.stderr)

    found = []
    for root, _, names in os.walk(folder, onerror=report):
        found += [Path(root) / name for name in names
                  if Path(name).suffix.lower() in suffixes and (Path(root) / name).is_file()]
    return sorted(found)


def check_plan(pairs: list[tuple[Path, Path]], inputs: list[Path],
               suffixes: frozenset[str]) -> None:
    """CodecError for a plan with nothing to do, or one whose output would replace one of
    its inputs: an input file itself, or any file already inside an input folder (a
    folder encoded into itself and decoded back would otherwise lose its originals)."""
    if not pairs:
        kinds = " or ".join(sorted(suffixes)) if len(suffixes) < 3 else "audio"
        raise CodecError(f"nothing to do: no {kinds} files in "
                         f"{', '.join(map(str, inputs))}")
    sources = {source.resolve() for source, _ in pairs}
    folders = [path.resolve() for path in inputs if path.is_dir()]
    for source, target in pairs:
        resolved = target.resolve()
        if resolved in sources:
            raise CodecError(f"{target} is an input as well as an output; refusing to "
                             f"overwrite it (choose another output)")
        inside = next((f for f in folders if resolved.is_relative_to(f)), None)
        if inside is not None and (resolved.exists() or resolved.is_symlink()):
            raise CodecError(f"{target} already exists in the input folder {inside}; "
                             f"writing {source} there would replace it (choose another "
                             f"output folder, or move the file away)")


def failure_line(source: Path, error: Exception) -> str:
    """One line for a file that failed: the error's message, naming the file once."""
    from codec.compress import named_error

    if isinstance(error, CodecError):
        return str(named_error(source, error))
    text = (str(error).strip().splitlines() or [""])[0]
    return f"{source}: {type(error).__name__}{': ' + text if text else ''}"
