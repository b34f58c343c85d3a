"""Let glibc reuse freed blocks while a chunk task runs, in processes that told it not to.

``dask.distributed``'s nanny starts every worker with ``MALLOC_TRIM_THRESHOLD_``
set (65,536 by default), so that memory goes back to the system promptly.
Setting any glibc malloc threshold also fixes the mmap threshold at its
128 KiB default instead of letting it grow: every block of 128 KiB or more is
then a fresh mapping, and its pages fault in on first touch. A Lloyd step
allocates a score tile per row tile and a label array per chunk: on a
125,000-row chunk that is about 2,200 page faults, and the step takes 2.4
times the CPU time it takes in a process with glibc's default behaviour.

:func:`reusing_freed_memory` raises the two thresholds while a chunk task runs,
so freed tiles are reused, and puts back the values the environment asked for
when the last such task of the process ends: between tasks memory goes back
to the system as the environment intends. Nothing is done on other C
libraries, or when no threshold was set in the environment (glibc then adapts
its threshold by itself).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import platform
import threading
from typing import Iterator

#: ``mallopt`` parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3

#: glibc's defaults, and the largest mmap threshold it accepts on 64-bit systems.
_DEFAULT_MMAP_THRESHOLD = 128 * 1024
_DEFAULT_TRIM_THRESHOLD = 128 * 1024
_REUSE_MMAP_THRESHOLD = 32 * 2**20
_REUSE_TRIM_THRESHOLD = 64 * 2**20

_ENVIRONMENT = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")

_lock = threading.Lock()
_active = 0
_mallopt = None


def _libc_mallopt():
    """glibc's ``mallopt``, or None where thresholds were not fixed by the environment or it is not glibc."""
    global _mallopt
    if _mallopt is None:
        _mallopt = False
        if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc" and any(
            name in os.environ for name in _ENVIRONMENT
        ):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                function = libc.mallopt
                function.argtypes = [ctypes.c_int, ctypes.c_int]
                function.restype = ctypes.c_int
                _mallopt = function
            except (OSError, AttributeError):
                _mallopt = False
    return _mallopt or None


def _environment_threshold(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


@contextlib.contextmanager
def reusing_freed_memory() -> Iterator[None]:
    """Within the block, glibc reuses freed blocks of up to 32 MiB (see the module's docstring)."""
    global _active
    mallopt = _libc_mallopt()
    if mallopt is None:
        yield
        return
    with _lock:
        _active += 1
        if _active == 1:
            mallopt(_M_MMAP_THRESHOLD, _REUSE_MMAP_THRESHOLD)
            mallopt(_M_TRIM_THRESHOLD, _REUSE_TRIM_THRESHOLD)
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                mallopt(_M_MMAP_THRESHOLD, _environment_threshold("MALLOC_MMAP_THRESHOLD_", _DEFAULT_MMAP_THRESHOLD))
                mallopt(_M_TRIM_THRESHOLD, _environment_threshold("MALLOC_TRIM_THRESHOLD_", _DEFAULT_TRIM_THRESHOLD))
