"""glibc's mmap threshold is fixed for a load (`pipelines/malloc_tuning.py`), unless the user set it."""

from __future__ import annotations

import ctypes.util
import platform

import pytest

from pipelines.malloc_tuning import fix_mmap_threshold


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc" or not ctypes.util.find_library("c"),
    reason="glibc only",
)
def test_the_threshold_is_fixed_on_glibc(monkeypatch):
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    assert fix_mmap_threshold() is True


def test_a_threshold_the_user_set_is_left_alone(monkeypatch):
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    assert fix_mmap_threshold() is False
