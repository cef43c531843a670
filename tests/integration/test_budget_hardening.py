"""The shared rate budget where a unit test cannot stand in, across processes, users and servers: a worker
killed inside the budget, two users on one host, PostgreSQL's log losing its connection, and a load and a
push under hostile rate headers over HTTP (the in-process part: `tests/unit/test_budget_hardening.py`)."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from sandbox.panora import Fault
from sources.common.http import budget as budget_module
from sources.common.http.budget import SqliteHitLog
from tests.support import ROOT


def _rows(path: Path) -> int:
    with sqlite3.connect(path) as con:
        return con.execute("SELECT count(*) FROM hits").fetchone()[0]


def test_a_worker_killed_inside_the_budget_leaves_no_lock_behind(tmp_path):
    path = tmp_path / "budget.sqlite"
    SqliteHitLog(path)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3, sys, time\n"
        f"con = sqlite3.connect({str(path)!r}, isolation_level=None)\n"
        "con.execute('BEGIN IMMEDIATE'); con.execute(\"INSERT INTO hits (key, at) VALUES ('GET /x', 1e12)\")\n"
        "print('holding', flush=True); time.sleep(600)\n"
    )], stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert holder.stdout.readline().strip() == "holding"
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    started = time.monotonic()
    assert SqliteHitLog(path).take("GET /x", 1, 60.0) == 0.0  # its half-done hit rolled back with it
    assert time.monotonic() - started < 5


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
    root = ROOT
    env = {"PATH": os.environ["PATH"], "HOME": str(shared_tmp)}
    mine = subprocess.run([sys.executable, "-c", script, str(root), str(shared_tmp)], capture_output=True,
                          text=True, env=env)  # fmt: skip
    assert mine.returncode == 0 and mine.stdout.split() == ["ResilientLog", "0.0"], mine.stderr

    # a checkout in a private folder (a `mktemp -d` clone is 0700) is out of another user's reach: nothing to test
    if not all(folder.stat().st_mode & 0o001 for folder in (root, *root.parents)) or not root.stat().st_mode & 0o004:
        pytest.skip(f"another user cannot read this checkout at {root}")

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
    # a 5 s window: the hits the headers claim expire in seconds, not the minute of Panora's own window
    summary = warehouse.load(source_options={"max_wait_seconds": 300, "rate_window_seconds": 5.0})
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
