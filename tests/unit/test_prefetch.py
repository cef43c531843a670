"""Fetching ahead: how far the producer runs ahead of the reader, and what reaches the reader."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from sources.common.http.prefetch import AHEAD_WHILE_READ, AHEAD_WHILE_WAITING, fetch_ahead, prefetch


class Counted:
    """An endless iterator that counts how many items were taken from it."""

    def __init__(self) -> None:
        self.taken = 0
        self._lock = threading.Lock()

    def __iter__(self) -> Iterator[int]:
        for number in itertools.count():
            with self._lock:
                self.taken += 1
            yield number


def settled(read: Callable[[], int], expected: int, seconds: float = 0.3) -> int:
    """What `read` says once it has reached `expected` (waiting at most 10 s) and `seconds` more have passed:
    `expected` when the producer stopped there, more when it went on, less when it never got there."""
    deadline = time.monotonic() + 10
    while read() < expected and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(seconds)
    return read()


def test_the_producer_stops_at_its_depth_and_deepens() -> None:
    items = Counted()
    pages = prefetch(iter(items), depth=1)
    try:
        assert settled(lambda: items.taken, 2) == 2  # one buffered, one in hand waiting for room
        assert next(pages) == 0
        assert settled(lambda: items.taken, 3) == 3
        pages.deepen(3)
        assert settled(lambda: items.taken, 5) == 5
        pages.deepen(2)  # never shallower
        assert [next(pages) for _ in range(4)] == [1, 2, 3, 4]
        assert settled(lambda: items.taken, 9) == 9
    finally:
        pages.close()


def test_a_scan_waiting_is_fetched_shallow_and_the_one_read_deep() -> None:
    first, second = Counted(), Counted()
    scans = fetch_ahead([("a", lambda: iter(first)), ("b", lambda: iter(second))], lookahead=1)
    key, pages = next(scans)
    try:
        assert key == "a"
        assert settled(lambda: second.taken, AHEAD_WHILE_WAITING + 1) == AHEAD_WHILE_WAITING + 1
        assert settled(lambda: first.taken, AHEAD_WHILE_READ + 1) == AHEAD_WHILE_READ + 1
        assert next(pages) == 0
    finally:
        pages.close()
        scans.close()  # closes the scan fetched ahead


def test_items_and_a_failure_arrive_in_order() -> None:
    def failing() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("page 3 broke")

    pages = prefetch(failing(), depth=3)
    assert next(pages) == 1
    assert next(pages) == 2
    with pytest.raises(ValueError, match="page 3 broke"):
        next(pages)
    assert list(pages) == []
