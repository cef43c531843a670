"""The shared rate budget (`sources/common/http/budget.py`) on a fake clock: it sends at once while its log
has room, then waits for the oldest hit; workers sharing a log share the budget and a 429; what the server
counts is taken; a wait beyond `max_wait_seconds` is refused. Under hostile headers, clocks and hosts:
`test_budget_hardening.py`."""

from __future__ import annotations

import pytest

from sources.common.http.budget import SqliteHitLog, WaitTooLong
from tests.support import FakeClock, fake_budget


def test_the_budget_sends_at_once_while_the_log_has_room_then_waits_for_the_oldest_hit():
    clock = FakeClock()
    budget = fake_budget(clock, limit=10, window=1.0)  # the log keeps hits 1.1 s (a margin past the server's)
    assert [budget.acquire(60, "GET /x") for _ in range(10)] == [0.0] * 10
    clock.now += 0.5
    assert budget.acquire(60, "GET /x") == pytest.approx(0.6)  # the oldest hit expires
    assert budget.acquire(60, "GET /y") == 0.0  # another route, another budget


def test_workers_sharing_a_log_share_the_budget_and_a_429_stops_them_all(tmp_path):
    clock = FakeClock()
    path = tmp_path / "budget.sqlite"  # two connections to one file, as two processes have
    first, second = (fake_budget(clock, limit=6, window=10.0, log=SqliteHitLog(path, clock=clock)) for _ in "ab")
    assert [first.acquire(60, "GET /x") for _ in range(3)] + [second.acquire(60, "GET /x") for _ in range(3)] == [
        0.0
    ] * 6
    assert second.acquire(60, "GET /x") == pytest.approx(10.55)  # the budget is gone for both
    first.throttled("GET /x", 30.0)  # a 429 one worker met
    assert second.acquire(60, "GET /x") == pytest.approx(30.0)  # teaches the other, which does not knock


def test_hits_the_server_counts_from_elsewhere_are_added_and_its_limit_taken():
    clock = FakeClock()
    budget = fake_budget(clock, limit=100, window=10.0)
    budget.acquire(60, "GET /x")
    budget.release("GET /x", {"x-ratelimit-limit": "10", "x-ratelimit-remaining": "7"})  # 3 hits: 2 not ours
    assert [budget.acquire(60, "GET /x") for _ in range(7)] == [0.0] * 7
    assert budget.acquire(60, "GET /x") > 10  # 10 in the window: wait for the oldest
    budget.release("GET /x", {"x-ratelimit-reset": "999999", "x-ratelimit-remaining": "nan"})  # never trusted


def test_a_wait_beyond_max_wait_is_refused_before_sleeping():
    clock = FakeClock()
    budget = fake_budget(clock, limit=1, window=100.0)
    budget.acquire(60, "GET /x")
    with pytest.raises(WaitTooLong):
        budget.acquire(60, "GET /x")
    assert clock.slept == []
