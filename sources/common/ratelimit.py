"""Client-side pacing from the server's `X-RateLimit-Limit/-Remaining/-Reset` headers.

Written by hand because no HTTP library paces from these headers: transports and retry libraries only
react to a 429 after the fact. The pacer lets requests go at full speed while the window has budget,
spreads the last `reserve` share of the budget evenly over what is left of the window, and holds every
caller when the budget is gone or a 429 said to wait. It is shared by all threads using one client.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping


def _header_number(headers: Mapping[str, str], name: str) -> float | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


class RateLimitPacer:
    """Decides how long a request must wait so that a long scan never meets the limit.

    Args:
        reserve: share of the window's budget that is spread out instead of sent at once.
        margin: seconds added after a window's announced reset (the header is rounded to seconds).
    """

    def __init__(
        self,
        reserve: float = 0.1,
        margin: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.reserve = reserve
        self.margin = margin
        self.clock = clock
        self.sleep = sleep
        self._lock = threading.Lock()
        self._limit: float | None = None
        self._remaining: float | None = None
        self._reset_at: float | None = None
        self._blocked_until = 0.0
        self._last_slot = 0.0

    def acquire(self) -> float:
        """Wait for this request's turn; returns the seconds waited."""
        with self._lock:
            now = self.clock()
            start = max(now, self._blocked_until)
            if self._reset_at is not None and start >= self._reset_at:
                self._remaining = None  # the window we knew about is over
                self._reset_at = None
            if self._remaining is not None and self._reset_at is not None:
                if self._remaining <= 0:
                    start = max(start, self._reset_at + self.margin)
                    self._blocked_until = start
                    self._remaining = (self._limit or 1) - 1  # a fresh window, until the server says more
                    self._reset_at = None
                else:
                    reserve = max(1.0, (self._limit or 0) * self.reserve)
                    if self._remaining <= reserve:
                        interval = (self._reset_at - start) / self._remaining
                        start = max(start, self._last_slot + interval)
                    self._remaining -= 1
            self._last_slot = start
        wait = start - now
        if wait > 0:
            self.sleep(wait)
        return max(0.0, wait)

    def observe(self, headers: Mapping[str, str]) -> None:
        """Take in the budget the server announced with an answer."""
        remaining = _header_number(headers, "x-ratelimit-remaining")
        reset = _header_number(headers, "x-ratelimit-reset")
        if remaining is None or reset is None:
            return
        limit = _header_number(headers, "x-ratelimit-limit")
        with self._lock:
            now = self.clock()
            reset_at = now + reset
            new_window = self._reset_at is None or now >= self._reset_at or reset_at > self._reset_at + 1.5
            if limit is not None:
                self._limit = limit
            if new_window or self._remaining is None:
                self._remaining = remaining
                self._reset_at = reset_at
            else:
                # answers to concurrent requests arrive out of order: the smallest budget is the true one
                self._remaining = min(self._remaining, remaining)

    def throttled(self, retry_after: float) -> None:
        """A 429 came back: nobody sends before `retry_after` seconds have passed."""
        with self._lock:
            until = self.clock() + retry_after + self.margin
            self._blocked_until = max(self._blocked_until, until)
            self._remaining = None
            self._reset_at = None
