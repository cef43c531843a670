"""Client-side pacing from the server's `X-RateLimit-Limit/-Remaining/-Reset` headers.

Written by hand because no HTTP library paces from these headers: transports and retry libraries only
react to a 429 after the fact. The pacer lets requests go at full speed while the window has budget,
spreads the last `reserve` share of the budget evenly over what is left of the window, and holds every
caller when the budget is gone or a 429 said to wait. It is shared by all threads using one client.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping


class WaitTooLong(Exception):
    """The wait a server's rate-limit answer asks for is longer than the caller accepts."""

    def __init__(self, seconds: float, limit: float) -> None:
        self.seconds = seconds
        self.limit = limit
        super().__init__(f"the server's rate limit asks to wait {seconds:.0f}s, longer than the {limit:.0f}s allowed")


def _header_number(headers: Mapping[str, str], name: str) -> float | None:
    """A header's number; None when absent, not a number, not finite or negative (a broken header is
    ignored rather than trusted)."""
    value = headers.get(name)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


class RateLimitPacer:
    """Decides how long a request must wait so that a long scan never meets the limit.

    The budget is what the server last said remained in its window, less the requests this client has in
    flight (given a slot, not yet answered). While the budget is above the reserve, requests go at once;
    within the reserve, the remaining slots are spread evenly up to the window's reset; with no budget left,
    everyone waits for the reset. Every `acquire` must be matched by one `release` (with the answer's
    headers when there was an answer).

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
        self._remaining: float | None = None  # as the server last said, in the window ending at _reset_at
        self._reset_at: float | None = None
        self._in_flight = 0
        self._blocked_until = 0.0
        self._last_slot = 0.0

    def acquire(self, max_wait: float = math.inf) -> float:
        """Wait for this request's turn; returns the seconds waited. Raises `WaitTooLong` instead of waiting
        longer than `max_wait` seconds (a server announcing a reset years away must not hold a run)."""
        with self._lock:
            now = self.clock()
            start = max(now, self._blocked_until)
            if self._reset_at is not None and start >= self._reset_at:
                self._remaining = self._reset_at = None  # the window we knew about is over
            if self._remaining is not None and self._reset_at is not None:
                budget = self._remaining - self._in_flight
                if budget <= 0:
                    start = max(start, self._reset_at + self.margin)
                    self._blocked_until = start
                    self._remaining = self._reset_at = None  # a fresh window, until the server says more
                elif budget <= max(1.0, (self._limit or 0) * self.reserve):
                    # spread what is left evenly between the last slot given out and the reset
                    anchor = max(start, self._last_slot)
                    start = max(start, anchor + (self._reset_at - anchor) / (budget + 1))
            if start - now > max_wait:
                raise WaitTooLong(start - now, max_wait)
            self._in_flight += 1
            self._last_slot = start
        wait = start - now
        if wait > 0:
            self.sleep(wait)
        return max(0.0, wait)

    def release(self, headers: Mapping[str, str] | None = None) -> None:
        """A request given a slot is over; take in the budget its answer announced, if any."""
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)
            if headers is None:
                return
            remaining = _header_number(headers, "x-ratelimit-remaining")
            reset = _header_number(headers, "x-ratelimit-reset")
            if remaining is None or reset is None:
                return
            limit = _header_number(headers, "x-ratelimit-limit")
            if limit is not None:
                self._limit = limit
            now = self.clock()
            reset_at = now + reset
            if (
                self._remaining is None
                or self._reset_at is None
                or now >= self._reset_at
                or reset_at > self._reset_at + 1.5
            ):
                self._remaining, self._reset_at = remaining, reset_at  # a new window
            else:
                # answers to concurrent requests arrive out of order: the smallest budget is the true one
                self._remaining = min(self._remaining, remaining)

    def throttled(self, retry_after: float) -> None:
        """A 429 came back: nobody sends before `retry_after` seconds have passed."""
        with self._lock:
            until = self.clock() + retry_after + self.margin
            self._blocked_until = max(self._blocked_until, until)
            self._remaining = self._reset_at = None
