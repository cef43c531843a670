"""The C allocator's threshold for giving memory back, fixed for the length of a load.

glibc serves a large allocation (numpy's arrays of digests, hashes and positions) with `mmap` and hands it
back to the system when it is freed; but each time such a block is freed it raises that threshold, up to
32 MB, so that later blocks of that size come from the heap instead, where freed space stays part of the
process. A scan that merges growing digest arrays then keeps every size it ever freed: measured here, the
re-sync of a million payments rose from 315 MB to 440 MB during the scan this way, and stayed flat with the
threshold fixed (peaks of 405-451 MB in three runs before, 360-376 MB after; the same figure with
`MALLOC_MMAP_THRESHOLD_` in the environment).

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
