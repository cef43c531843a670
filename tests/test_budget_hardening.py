"""The shared rate budget under hostile headers, clocks and hosts: limits a server states are clamped and kept
in constant space, bookkeeping never costs an answer, a clock stepped back never stalls the machine, the file
is private to its user and replaced when corrupt, PostgreSQL's log reconnects, and expired hits are pruned."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest

from sandbox.panora import Fault
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
from sources.common.http.client import budget as budget_module
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


@pytest.mark.skipif(os.getuid() != 0, reason="a second user's run needs root to switch users")
def test_two_users_on_one_host_keep_budgets_of_their_own():
    """root's budget folder exists; a run as `nobody` takes its own, and both work (before, the second user
    met 'attempt to write a readonly database' in root's file)."""
    shared_tmp = Path(tempfile.mkdtemp(prefix="accounting-budget-users-", dir="/tmp"))  # both users reach it
    os.chmod(shared_tmp, 0o1777)
    try:
        _two_users(shared_tmp)
    finally:
        shutil.rmtree(shared_tmp, ignore_errors=True)


def _two_users(shared_tmp: Path) -> None:
    script = (
        "import sys; sys.path[:0] = [sys.argv[1], *sys.argv[3:]]; import tempfile; tempfile.tempdir = sys.argv[2]\n"
        "from sources.common.http.budget import default_budget_file, shared_log\n"
        "log = shared_log(str(default_budget_file())); print(type(log).__name__, log.take('GET /x', 5, 60.0))\n"
    )
    root = Path(__file__).resolve().parents[1]
    env = {"PATH": os.environ["PATH"], "HOME": str(shared_tmp)}
    mine = subprocess.run([sys.executable, "-c", script, str(root), str(shared_tmp)], capture_output=True,
                          text=True, env=env)  # fmt: skip
    assert mine.returncode == 0 and mine.stdout.split() == ["ResilientLog", "0.0"], mine.stderr

    def as_nobody() -> None:
        os.setgid(65534)
        os.setuid(65534)

    # the other user runs this Python where it may, else the system's own of the same version with these packages
    site = [p for p in sys.path if p.endswith("site-packages")]
    system = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    theirs = None
    for interpreter, extra in ((sys.executable, []), (str(system), site)):
        try:
            theirs = subprocess.run([interpreter, "-c", script, str(root), str(shared_tmp), *extra],
                                    capture_output=True, text=True, env=env, preexec_fn=as_nobody)  # fmt: skip
        except (PermissionError, FileNotFoundError):
            continue
        if theirs.returncode == 0 or "Permission denied" not in theirs.stderr:
            break
    if theirs is None or (theirs.returncode != 0 and "Permission denied" in theirs.stderr):
        pytest.skip("another user cannot run this checkout's Python here")
    assert theirs.returncode == 0 and theirs.stdout.split() == ["ResilientLog", "0.0"], theirs.stderr
    assert {p.name for p in shared_tmp.iterdir()} == {f"accounting-etl-{os.getuid()}", "accounting-etl-65534"}


@pytest.mark.skipif(
    not os.environ.get("ACCOUNTING_TEST_POSTGRES"), reason="no PostgreSQL server given: set ACCOUNTING_TEST_POSTGRES"
)
def test_the_postgres_log_reconnects_after_its_connection_is_lost_and_takes_big_numbers():
    import psycopg2

    from sources.common.http.budget import PostgresHitLog

    url = os.environ["ACCOUNTING_TEST_POSTGRES"]
    log = PostgresHitLog(url)
    key = f"GET /reconnect-{os.getpid()}"
    assert log.take(key, 5, 60.0) == 0.0
    with psycopg2.connect(url) as admin, admin.cursor() as cursor:  # the server drops the log's session
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                       "AND query LIKE '%rate_budget%'")  # fmt: skip
    assert log.take(key, 5, 60.0) == 0.0  # connected again
    log.learn(key, 3_000_000_000, 3_000_000_000, 60.0)  # beyond INTEGER, and kept in one row
    assert 0 < log.take(key, 5, 60.0) <= 60.0


def test_a_load_under_hostile_rate_headers_completes_with_a_small_budget(warehouse, sandbox, tmp_path, monkeypatch):
    """Over HTTP: every answer says the limit is 10^12 and none remain (before: a MemoryError on every later
    request), then three million (before: three million rows)."""
    budget_file = tmp_path / "hostile-budget.sqlite"
    monkeypatch.setenv("SOURCES__RATE_BUDGET", str(budget_file))
    monkeypatch.setattr(budget_module, "_LOGS", {})
    headers = {"X-RateLimit-Limit": "1e12", "X-RateLimit-Remaining": "0"}
    sandbox.inject(Fault("headers", method="GET", path="/accounting/", times=3, headers=headers))
    sandbox.inject(Fault("headers", method="GET", path="/accounting/", times=3,
                         headers={"X-RateLimit-Limit": "3000000", "X-RateLimit-Remaining": "0"}))  # fmt: skip
    summary = warehouse.load(source_options={"max_wait_seconds": 300})
    assert summary.status == "ok"
    assert warehouse.count("payments") == sum(sandbox.store.count(a, "payments") for a in sandbox.accounts())
    assert _rows(budget_file) < 500


@pytest.mark.skipif(
    not os.environ.get("ACCOUNTING_TEST_POSTGRES"), reason="no PostgreSQL server given: set ACCOUNTING_TEST_POSTGRES"
)
def test_a_201_with_a_limit_beyond_integer_on_a_postgres_budget_is_still_created(
    warehouse, loaded_warehouses, sandbox, monkeypatch
):
    from tests.support import ledger, open_invoices, push, queue

    loaded = loaded_warehouses.copy_into(warehouse, "panora")
    monkeypatch.setenv("SOURCES__RATE_BUDGET", os.environ["ACCOUNTING_TEST_POSTGRES"])
    monkeypatch.setattr(budget_module, "_LOGS", {})
    (connection, invoice_id, currency, _), *_ = open_invoices(loaded, 1)
    queue(loaded, [{"external_id": "big-limit", "connection": connection, "invoice_id": invoice_id,
                    "currency": currency, "total_amount": 100, "transaction_date": "2026-11-20"}])  # fmt: skip
    sandbox.inject(Fault("headers", method="POST", path="/accounting/payments", times=1,
                         headers={"X-RateLimit-Limit": "3e9", "X-RateLimit-Remaining": "0"}))  # fmt: skip
    assert push(loaded).outcomes == {"created": 1}
    assert ledger(loaded)["big-limit"][0] == "created"
