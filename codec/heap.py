"""A C heap that does not grow with the length of what is coded.

glibc serves a large allocation by mmap, and returns it to the system when it is freed;
but each such free raises the size it uses mmap for (up to 32 MiB), so that from then on
the coder's working tensors (a few MiB each, every chunk) come from the heap. The few
small tensors that outlive a chunk (its codes, the levels measured so far) land between
them, and the heap can only grow: encoding two hours of 16 kHz audio peaked at 3.2 GB
against 0.96 GB for a minute. A fixed threshold keeps the working tensors out of the
heap, so the peak stays what one chunk needs.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_MMAP_THRESHOLD = -3  # mallopt's parameter number in glibc's malloc.h
MMAP_THRESHOLD_BYTES = 128 << 10  # glibc's own starting value


def fix_mmap_threshold() -> bool:
    """Hold glibc's mmap threshold at its starting value for this process; False where
    the C library is not glibc (nothing is changed there)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
