"""Where a run or a model came from: the toolkit's source revision, the versions of the
packages that ran it and the command line. Checkpoints (``meta.json``) and exported
models record it, so that a number in a report can be traced to the code that made it.

Every part is best effort: outside a git checkout, or without ``git``, there is no
``git`` entry, and a package that is not installed is ``None``.
"""
from __future__ import annotations

import datetime
import platform
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

# The installed distributions whose versions decide what a run computes.
PACKAGES = ("torch", "torchaudio", "numpy")
SOURCE_ROOT = Path(__file__).resolve().parents[1]


def git_state(root: Path = SOURCE_ROOT) -> dict[str, Any] | None:
    """``{"commit": sha, "dirty": bool}`` of the git checkout at ``root`` (dirty: tracked
    files differ from the commit), or None when it is not one or git cannot run."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                                  text=True, timeout=20)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return None
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def package_versions() -> dict[str, str | None]:
    """Python, the toolkit and ``PACKAGES``, read without importing them."""
    from codec.version import __version__

    versions: dict[str, str | None] = {"python": platform.python_version(), "codec": __version__}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def command_line(argv: list[str] | None = None) -> str:
    """The command as typed, with the program's folders left out (``codec train ...``,
    ``python -m codec train ...``)."""
    argv = list(sys.argv if argv is None else argv)
    if argv:
        program = Path(argv[0])
        argv[0] = (f"python -m {program.parent.name}" if program.name == "__main__.py"
                   else program.name)
    return " ".join([argv[0], *map(shlex.quote, argv[1:])]) if argv else ""


def collect(argv: list[str] | None = None) -> dict[str, Any]:
    """What a run or an export records about itself (JSON-ready)."""
    facts: dict[str, Any] = {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command_line(argv),
        "versions": package_versions(),
    }
    git = git_state()
    if git is not None:
        facts["git"] = git
    return facts
