"""glibc's mmap threshold is left alone where the user set it (its effect where it is fixed is shown in a
fresh interpreter: tests/integration/test_malloc_tuning.py)."""

from __future__ import annotations

from pipelines.malloc_tuning import fix_mmap_threshold


def test_a_threshold_the_user_set_is_left_alone(monkeypatch):
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    assert fix_mmap_threshold() is False
