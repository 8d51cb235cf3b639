"""``python -m codec.train CONFIG.yaml [key=value ...]``: train or resume a run, as
``codec train`` does (and ``torchrun ... -m codec.train`` on several processes)."""
from __future__ import annotations

import sys

from codec.config import config_from_arguments
from codec.errors import CodecError
from codec.train import fit


def main(argv: list[str] | None = None) -> int:
    """Train the run the arguments describe; a CodecError is one line and status 2."""
    try:
        fit(config_from_arguments(sys.argv[1:] if argv is None else argv))
    except CodecError as error:
        print(f"codec train: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("codec train: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
