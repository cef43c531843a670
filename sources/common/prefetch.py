"""Fetch the next page while the current one is being normalized.

A cursor-paginated scan is a chain: page n+1 can only be asked for after page n arrived. What can overlap
is the server preparing page n+1 (and the bytes travelling) with this process turning page n into arrow
tables. A one-page-ahead background thread does that. Written by hand because neither httpx nor dlt
offers read-ahead for an iterator; dlt's `parallelized` resources run whole resources side by side,
which does not help within one cursor chain.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetch(items: Iterator[T], depth: int = 1) -> Iterator[T]:
    """Yield what `items` yields, producing up to `depth` items ahead in a background thread. An exception
    in the producer is raised in the consumer at the same point; closing the consumer stops the producer."""
    buffer: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        buffer.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put(_DONE)
        except BaseException as exc:  # handed over to the consumer, which re-raises it
            buffer.put(_Failure(exc))

    worker = threading.Thread(target=produce, name="page-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = buffer.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        worker.join(timeout=5)
