"""Fetch ahead: the next page while the current one is being normalized, and the next connections' pages while
one connection is being read.

A cursor-paginated scan is a chain: page n+1 can only be asked for after page n arrived. What can overlap is
the server preparing page n+1 (and the bytes travelling) with this process turning page n into arrow tables,
and the scans of other connections, which are chains of their own: a rate budget per route lets them go side
by side while the one being read waits its turn. Written by hand because neither httpx nor dlt offers
read-ahead for an iterator; dlt's `parallelized` resources (which the sources use, for the routes) run whole
resources side by side, which does not help within one resource's connections, whose scans are read one
after the other (each with its own positions and rejects).
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K")
T = TypeVar("T")

_DONE = object()
# Connections whose scans are fetched while one is read: enough to keep a per-route budget busy when each
# request takes a few hundred milliseconds, few enough that their buffered pages stay small.
DEFAULT_LOOKAHEAD = 4
# Pages buffered ahead: by a scan fetched ahead, and by the scan being read. A scan is a chain (page n+1 is
# asked for once page n is read), so any pause of its fetching thread adds to the scan's time; a deeper
# buffer keeps the chain going while the reader is slow for a moment (it shares one interpreter lock with
# the fetching threads). Three was the fastest depth tried (DECISIONLOG.md, "Three pages fetched ahead"). A
# decoded page holds megabytes, so only the scan being read gets the deeper buffer.
AHEAD_WHILE_WAITING = 1
AHEAD_WHILE_READ = 3


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class Prefetched(Generic[T]):
    """What `items` yields, produced up to `depth` items ahead in a background thread that starts at once. An
    exception in the producer is raised in the consumer at the same point; `close()` stops the producer;
    `deepen(depth)` lets it run further ahead from then on."""

    def __init__(self, items: Iterator[T], depth: int = 1) -> None:
        self._buffer: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._slots = threading.Semaphore(depth)  # one per item the producer may put before it is taken
        self._depth = depth
        self._stop = threading.Event()
        self._items = items
        self._worker = threading.Thread(target=self._produce, name="page-prefetch", daemon=True)
        self._worker.start()
        self._ended = False

    def _produce(self) -> None:
        try:
            for item in self._items:
                while not self._stop.is_set():
                    if self._slots.acquire(timeout=0.1):
                        self._buffer.put(item)
                        break
                if self._stop.is_set():
                    return
            self._buffer.put(_DONE)
        except BaseException as exc:  # handed over to the consumer, which re-raises it
            self._buffer.put(_Failure(exc))

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self._ended:
            raise StopIteration
        item = self._buffer.get()
        if item is _DONE:
            self._ended = True
            raise StopIteration
        if isinstance(item, _Failure):
            self._ended = True
            raise item.error
        self._slots.release()
        return item  # type: ignore[return-value]

    def deepen(self, depth: int) -> None:
        """Let the producer run up to `depth` items ahead (never fewer than before)."""
        if depth > self._depth:
            self._slots.release(depth - self._depth)
            self._depth = depth

    def close(self) -> None:
        self._stop.set()
        self._worker.join(timeout=5)


def prefetch(items: Iterator[T], depth: int = 1) -> Prefetched[T]:
    return Prefetched(items, depth)


def fetch_ahead(
    scans: Iterable[tuple[K, Callable[[], Iterator[T]]]], lookahead: int
) -> Iterator[tuple[K, Prefetched[T]]]:
    """(key, pages) in the order given, where the pages of up to `lookahead` scans after the one being read are
    already being fetched (`AHEAD_WHILE_WAITING` pages each; the one being read `AHEAD_WHILE_READ`). The
    consumer closes each it is handed; the ones not handed out are closed here."""
    pending: deque[tuple[K, Prefetched[T]]] = deque()

    def handed_out() -> tuple[K, Prefetched[T]]:
        key, pages = pending.popleft()
        pages.deepen(AHEAD_WHILE_READ)
        return key, pages

    try:
        for key, start in scans:
            pending.append((key, prefetch(start(), AHEAD_WHILE_WAITING)))
            while len(pending) > lookahead:
                yield handed_out()
        while pending:
            yield handed_out()
    finally:
        for _, pages in pending:
            pages.close()
