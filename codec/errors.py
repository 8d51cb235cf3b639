"""The toolkit's own error: raised for bad input, caught by the CLI and shown as one line."""
from __future__ import annotations

import os
import stat
from pathlib import Path


class CodecError(Exception):
    """A problem with the user's input (file, option, config), not a bug."""


def require_regular_file(path: str | Path) -> None:
    """CodecError unless ``path`` is a regular file: reading a FIFO or a device named
    like audio would block or never end."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise CodecError(f"{path}: no such file or directory") from None
    except OSError as error:
        raise CodecError(f"{path}: cannot read ({error.strerror or error})") from None
    if not stat.S_ISREG(mode):
        raise CodecError(f"{path}: not a regular file (a folder, pipe or device)")
