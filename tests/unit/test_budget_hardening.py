"""The shared rate budget under hostile headers, clocks and hosts, in-process: limits a server states are
clamped and kept in constant space, bookkeeping never costs an answer, a clock stepped back never stalls the
machine, the file is private to its user and replaced when corrupt, and expired hits are pruned. Across
processes, users, PostgreSQL and real loads: `tests/integration/test_budget_hardening.py`."""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

import httpx
import pytest

from sources.common.http import budget as budget_module
from sources.common.http.budget import (
    MAX_LIMIT_FACTOR,
    STALE_SECONDS,
    RateBudget,
    ResilientLog,
    SqliteHitLog,
    default_budget_file,
    shared_log,
)
from sources.common.http.client import ApiClient
from tests.support import FakeClock, fake_budget


def _rows(path: Path) -> int:
    with sqlite3.connect(path) as con:
        return con.execute("SELECT count(*) FROM hits").fetchone()[0]


@pytest.mark.parametrize("limit", ["1e12", "3000000", "3e9"])
def test_a_servers_huge_limit_is_clamped_and_kept_in_one_row(tmp_path, limit):
    clock = FakeClock()
    path = tmp_path / "budget.sqlite"
    budget = fake_budget(clock, limit=100, window=60.0, log=SqliteHitLog(path, clock=clock))
    budget.release("GET /x", httpx.Headers({"X-RateLimit-Limit": limit, "X-RateLimit-Remaining": "0"}))
    assert _rows(path) <= 1  # the hits the server reports, as one row with their count
    with sqlite3.connect(path) as con:
        assert con.execute("SELECT hits FROM limits").fetchone()[0] == 100 * MAX_LIMIT_FACTOR
    waited = budget.acquire(10_000, "GET /x")  # the server said none remain: wait for the window, no more
    assert 0 < waited <= budget.window + 0.001


def test_bookkeeping_that_fails_never_costs_the_answer(tmp_path):
    class Broken(SqliteHitLog):
        def learn(self, *args):
            raise sqlite3.OperationalError("disk I/O error")

    answer = httpx.Response(201, json={"id": "p-1"}, headers={"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "5"})
    client = ApiClient(
        "http://api.test",
        {},
        budget=RateBudget(Broken(":memory:"), lambda route: route, 100, 60.0),
        transport=httpx.MockTransport(lambda request: answer),
    )
    assert client.request_json("POST", "/accounting/payments", json_body={"x": 1}) == {"id": "p-1"}


def test_a_clock_stepped_back_never_blocks_longer_than_the_window_and_is_said(caplog):
    clock = FakeClock()
    log = SqliteHitLog(":memory:", clock=clock)
    budget = fake_budget(clock, limit=2, window=60.0, log=log)
    budget.acquire(0, "GET /x")
    budget.acquire(0, "GET /x")
    clock.now -= 3600  # the wall clock steps back an hour
    with caplog.at_level(logging.WARNING, "accounting_etl.budget"):
        waited = budget.acquire(10_000, "GET /x")
    assert waited <= budget.window + 0.001
    assert "clock went back" in caplog.text
    log.block("GET /y", 30.0)
    clock.now -= 3600
    assert log.take("GET /y", 2, 60.0) <= 30.0  # a block, never longer than its own length


def test_expired_hits_are_pruned_on_every_take_and_for_every_key_on_open(tmp_path):
    clock = FakeClock()
    path = tmp_path / "budget.sqlite"
    log = SqliteHitLog(path, clock=clock)
    for key in ("GET /rare", "GET /busy"):
        log.take(key, 100, 60.0)
    clock.now += 120
    log.take("GET /busy", 100, 60.0)  # its own expired hit goes
    assert _rows(path) == 2
    clock.now += STALE_SECONDS + 1
    SqliteHitLog(path, clock=clock)  # the next run's open: a key nobody uses any more is pruned too
    assert _rows(path) == 0


def test_the_default_budget_file_is_private_to_its_user(tmp_path, monkeypatch):
    monkeypatch.setattr(budget_module.tempfile, "gettempdir", lambda: str(tmp_path))
    monkeypatch.setattr(budget_module, "_LOGS", {})
    path = default_budget_file()
    assert str(os.getuid()) in path.parent.name
    log = shared_log(str(path))
    assert isinstance(log, ResilientLog)
    assert os.stat(path.parent).st_mode & 0o777 == 0o700
    assert os.stat(path).st_mode & 0o077 == 0


def test_a_budget_folder_others_may_write_or_a_corrupt_file_is_named_and_replaced(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(budget_module.tempfile, "gettempdir", lambda: str(tmp_path))
    monkeypatch.setattr(budget_module, "_LOGS", {})
    folder = default_budget_file().parent
    folder.mkdir(mode=0o777)
    os.chmod(folder, 0o777)  # pre-created by someone else's hand, open to all
    with caplog.at_level(logging.WARNING, "accounting_etl.budget"):
        log = shared_log(str(default_budget_file()))
    assert isinstance(log, SqliteHitLog) and log.path == ":memory:"  # this process alone, said
    assert str(folder) in caplog.text and "open to other users" in caplog.text
    corrupt = tmp_path / "mine" / "budget.sqlite"
    corrupt.parent.mkdir()
    corrupt.write_bytes(b"this is no database, or a half-written one" * 100)
    with caplog.at_level(logging.WARNING, "accounting_etl.budget"):
        assert SqliteHitLog(corrupt).take("GET /x", 1, 60.0) == 0.0
    assert "not a readable database" in caplog.text and list(corrupt.parent.glob("budget.sqlite.corrupt-*"))
