"""glibc's allocator told to keep freed memory for reuse, in ocdec's own processes.

The peak search allocates and frees thousands of grids of 0.1-2 MB per region. With glibc's
defaults a freed block of that size is often handed back to the kernel (its dynamic mmap
threshold, and the heap trimmed above 128 KB of free memory at its top), so the next grid is
fresh pages that the kernel zeroes one fault at a time: about 4 million page faults and a third
of the search's time on a 41,000-star region (docs/performance.md, tenth session). Fixed
thresholds keep blocks below :data:`MMAP_THRESHOLD` in the heap and up to :data:`TRIM_THRESHOLD`
of free memory at its top, so the memory is reused; larger blocks (a star column of more than
4 M stars) still come from and go back to the kernel directly. Memory in use at the peak of a
catalogue run's 51 small regions rose by 4 % (786 -> 818 MB above the start).

It changes where memory comes from, never a result. The command line (:func:`ocdec.cli.main`),
every rule adapter and the benchmark's jobs call :func:`keep_freed_memory` first; a program that
only imports the library is left as it is. glibc's own ``MALLOC_MMAP_THRESHOLD_`` and
``MALLOC_TRIM_THRESHOLD_`` variables, or its malloc tunables in ``GLIBC_TUNABLES``, where set,
win.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

log = logging.getLogger(__name__)

MMAP_THRESHOLD = 32 * 1024 * 1024  # bytes: glibc's own ceiling for its dynamic threshold
TRIM_THRESHOLD = 64 * 1024 * 1024  # bytes of free memory the heap keeps at its top
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
USER_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds for this process (and the children it forks). True
    where set; False on another C library or platform, or where the user set either variable."""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if (not sys.platform.startswith("linux") or any(v in os.environ for v in USER_VARIABLES)
            or "mmap_threshold" in tunables or "trim_threshold" in tunables):
        return False
    try:
        # the C library this process already runs on (no ldconfig search in every job)
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # mallopt returns 1 on success; musl's is a stub that returns 0
    done = (mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
            and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1)
    if not done:
        log.debug("mallopt not available: the allocator keeps its defaults")
    return done


def release_freed_memory() -> None:
    """Hand the memory freed so far back to the kernel: pyarrow's pool (mimalloc or jemalloc,
    which keep what they free) and glibc's heap (blocks below :data:`MMAP_THRESHOLD`, kept there
    for reuse). Reading a star table frees the Arrow table and the file's decompressed pages
    (blocks of a few MB) once they are converted: kept, they stayed counted in the job's memory
    while the next copies were made, and a quality job on 18 M rows peaked at 10.6 GB for a 2 GB
    table (docs/performance.md, eleventh session). Calls to it change no result."""
    arrow = sys.modules.get("pyarrow")
    if arrow is not None:
        arrow.default_memory_pool().release_unused()
    if sys.platform.startswith("linux"):
        try:
            trim = ctypes.CDLL(None).malloc_trim
        except (OSError, AttributeError):  # not glibc
            return
        trim.argtypes, trim.restype = (ctypes.c_size_t,), ctypes.c_int
        trim(0)
