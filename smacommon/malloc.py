"""The C allocator of sma's long-lived processes, tuned for their large, short-lived buffers.

glibc's malloc serves a request of 128 KiB or more (a threshold it raises as such blocks are
freed, but only up to what it has seen) with a fresh mmap() and gives the pages back at
free(); every page of the next such buffer is then a page fault, zeroed by the kernel. A
page of 10,000 stream records is a few 1.4 MB buffers (the driver's input, orjson's output,
the body), and on this project's virtual machines their faults cost more than building
them: copying 1.4 MB three times took 3.8 ms, against 0.17 ms from memory already mapped.
keep_freed_memory() lets the heap serve blocks under MMAP_THRESHOLD and keep up to
TRIM_THRESHOLD of free memory at its top, so the next request's buffers reuse the last
one's pages. The process keeps at most that much more resident while idle.

The environment wins: a process started with either threshold set by the operator
(GLIBC_TUNABLES' glibc.malloc.mmap_threshold or trim_threshold, or the older
MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_) is left as they set it. Elsewhere than
glibc (musl) this does nothing.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Mapping

MMAP_THRESHOLD = 8 << 20
TRIM_THRESHOLD = 32 << 20
_M_TRIM_THRESHOLD = -1  # glibc's malloc.h
_M_MMAP_THRESHOLD = -3
_TUNABLES = ("glibc.malloc.mmap_threshold", "glibc.malloc.trim_threshold")
_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def operator_tuned(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment already sets glibc malloc's thresholds."""
    tunables = environ.get("GLIBC_TUNABLES", "")
    return any(name in tunables for name in _TUNABLES) or any(
        name in environ for name in _VARIABLES)


def keep_freed_memory() -> bool:
    """Tune this process's allocator (see the module's docstring); whether it was."""
    if operator_tuned():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
