"""glibc's mmap threshold is fixed for a load (`pipelines/malloc_tuning.py`), unless the user set it."""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

import pytest

from pipelines.malloc_tuning import MMAP_THRESHOLD_BYTES, fix_mmap_threshold

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc" and bool(ctypes.util.find_library("c"))


class _MallInfo2(ctypes.Structure):
    """glibc's `struct mallinfo2` (<malloc.h>): `hblks` counts the blocks served by mmap."""

    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]  # fmt: skip


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    if not hasattr(libc, "mallinfo2"):
        pytest.skip("glibc before 2.33 has no mallinfo2")
    libc.mallinfo2.restype = _MallInfo2
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.restype, libc.free.argtypes = None, [ctypes.c_void_p]
    return libc


def _mapped(libc: ctypes.CDLL, size: int) -> bool:
    """Whether malloc serves a block of `size` bytes by mmap (then frees it, which in glibc's default mode
    raises the threshold past that size)."""
    before = libc.mallinfo2().hblks
    block = libc.malloc(size)
    assert block, "malloc failed"
    try:
        return libc.mallinfo2().hblks == before + 1
    finally:
        libc.free(block)


@pytest.mark.skipif(not GLIBC, reason="glibc only")
def test_the_threshold_is_fixed_on_glibc(monkeypatch):
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    libc = _libc()
    assert fix_mmap_threshold() is True
    above, below = MMAP_THRESHOLD_BYTES + (1 << 20), MMAP_THRESHOLD_BYTES - (1 << 20)
    # a block above the threshold is mapped, and still is after one was freed (glibc's dynamic threshold
    # would have risen past it and served the second from the heap); one below comes from the heap
    assert [_mapped(libc, above) for _ in range(3)] == [True, True, True]
    assert _mapped(libc, below) is False


def test_a_threshold_the_user_set_is_left_alone(monkeypatch):
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    assert fix_mmap_threshold() is False
