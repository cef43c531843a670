"""glibc's mmap threshold, fixed by `pipelines/malloc_tuning.py`, holds: shown in a fresh interpreter.

The setting is process-wide and cannot be undone, and whether malloc maps a block depends on what the heap
already holds (a free chunk large enough serves the block from the heap, threshold or not); so the effect is
measured in a child process that has done nothing else, and the test worker's allocator is left alone. The
same child without the fix shows glibc's dynamic threshold at work, so the assertion can fail."""

from __future__ import annotations

import ctypes.util
import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc" and bool(ctypes.util.find_library("c"))
ROOT = Path(__file__).resolve().parents[2]

# Whether malloc serves a block of a size by mmap, read from glibc's `mallinfo2().hblks` (the count of blocks
# served by mmap) around one malloc; the block is then freed, which in glibc's default mode raises the
# threshold past its size, so that the next one of that size comes from the heap.
CHILD = r"""
import ctypes, ctypes.util, json, sys
from pipelines.malloc_tuning import MMAP_THRESHOLD_BYTES, fix_mmap_threshold

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(ctypes.util.find_library("c"))
if not hasattr(libc, "mallinfo2"):
    print(json.dumps(None))
    sys.exit()
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.restype, libc.free.argtypes = None, [ctypes.c_void_p]

def mapped(size):
    before = libc.mallinfo2().hblks
    block = libc.malloc(size)
    assert block, "malloc failed"
    try:
        return libc.mallinfo2().hblks == before + 1
    finally:
        libc.free(block)

fixed = fix_mmap_threshold() if sys.argv[1] == "fix" else None
above, below = MMAP_THRESHOLD_BYTES + (1 << 20), MMAP_THRESHOLD_BYTES - (1 << 20)
print(json.dumps({"fixed": fixed, "above": [mapped(above) for _ in range(3)], "below": mapped(below)}))
"""


def _child(mode: str) -> dict:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}  # no MALLOC_* setting inherited
    done = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, env=env, check=True)
    answer = json.loads(done.stdout)
    if answer is None:
        pytest.skip("glibc before 2.33 has no mallinfo2")
    return answer


@pytest.mark.skipif(not GLIBC, reason="glibc only")
def test_with_the_threshold_fixed_every_block_above_it_is_mapped_and_given_back() -> None:
    # a block above the threshold is mapped, and still is after one was freed; one below comes from the heap
    assert _child("fix") == {"fixed": True, "above": [True, True, True], "below": False}


@pytest.mark.skipif(not GLIBC, reason="glibc only")
def test_without_it_glibc_serves_the_second_such_block_from_the_heap() -> None:
    # glibc's own behaviour, which the fix stops: after the first mapped block is freed, the threshold rises
    assert _child("leave")["above"] == [True, False, False]
