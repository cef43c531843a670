"""The C allocator's threshold for giving memory back, fixed for a process that runs loads.

glibc serves a large allocation (numpy's arrays of digests, hashes and positions) with `mmap` and hands it
back to the system when it is freed; but each time such a block is freed it raises that threshold, up to
32 MB, so that later blocks of that size come from the heap instead, where freed space stays part of the
process. A scan that merges growing digest arrays then keeps every size it ever freed, and its peak grows
with the account; with the threshold fixed it stays flat (`bench/bench_scale.py`'s peak ratios). Setting
`MALLOC_MMAP_THRESHOLD_` in the environment does the same, and is then left as it is.

The setting is process-wide and cannot be undone, so it is the program's decision: the command line applies
it before a load (`pipelines/cli.py`); `run_load` called from a notebook or a Dagster worker does not touch
the caller's allocator. A worker that does nothing but loads may call `fix_mmap_threshold()` at its start.

DuckDB and pyarrow have allocators of their own; this touches what goes through `malloc`. Written by hand
because Python offers no binding for `mallopt`: ctypes calls it where the C library is glibc, and elsewhere
(macOS, musl) nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger("accounting_etl.memory")

M_MMAP_THRESHOLD = -3  # glibc's <malloc.h>
# 4 MB: a page's arrays and its response body (about 1.5 MB for 1,000 payments) stay on the heap, where
# they are reused page after page; the arrays that grow with the data (digests of a whole scan) are mapped
MMAP_THRESHOLD_BYTES = 4 << 20
_ENV = "MALLOC_MMAP_THRESHOLD_"  # glibc's own setting: where a user set it, it is left as it is


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Fix glibc's mmap threshold (this also stops it from moving); True when it was set."""
    if _ENV in os.environ:
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(M_MMAP_THRESHOLD, threshold))
    log.debug("malloc's mmap threshold fixed at %d bytes: %s", threshold, done)
    return done
