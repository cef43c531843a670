"""Readers never stop the load, and the load never stops a reader: a process holding a read-only connection for
the whole load, and one that opens, queries and closes in a loop, beside `accounting-etl load` (real
processes); a writer killed at each point of the write path, then a rerun, gives the tables of a clean run;
a read-back of stored records that fails fails its scan."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from pipelines.warehouse.duckdb_file import KILL_AT_ENV, DuckDBFile
from sources.common.errors import StoredRecordsUnreadable
from tests.support import DATA_TABLES, DATASET, Warehouse, cli_env

HOLDING_READER = """
import duckdb, json, os, sys, time
path, ready, stop = sys.argv[1:4]
count = "SELECT count(*) FROM accounting_raw.payments"
con = duckdb.connect(path, read_only=True)  # held for the whole load, as a notebook's kernel holds one
before = con.execute(count).fetchone()[0]
open(ready, "w").write("ready")
while not os.path.exists(stop):
    time.sleep(0.02)
held = con.execute(count).fetchone()[0]
con.close()
with duckdb.connect(path, read_only=True) as again:
    after = again.execute(count).fetchone()[0]
print(json.dumps({"before": before, "held": held, "after": after}))
"""

LOOPING_READER = """
import duckdb, json, os, sys, time
path, ready, stop = sys.argv[1:4]
queries, errors = 0, []
open(ready, "w").write("ready")
while not os.path.exists(stop):
    try:
        with duckdb.connect(path, read_only=True) as con:  # a dashboard: open, query, close
            con.execute("SELECT count(*) FROM accounting_raw.payments").fetchone()
        queries += 1
    except Exception as exc:
        errors.append(str(exc)[:200])
print(json.dumps({"queries": queries, "errors": errors[:3], "failed": len(errors)}))
"""


def _start_reader(script: str, path: Path, folder: Path, name: str) -> tuple[subprocess.Popen, Path]:
    ready, stop = folder / f"{name}.ready", folder / f"{name}.stop"
    process = subprocess.Popen([sys.executable, "-c", script, str(path), str(ready), str(stop)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, "the reader did not start"
        time.sleep(0.02)
    return process, stop


def _finish_reader(process: subprocess.Popen, stop: Path) -> dict:
    stop.touch()
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def load_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines", "load", *args], env=env, capture_output=True,
                          text=True, timeout=240)  # fmt: skip


def test_a_load_beside_a_reader_that_holds_the_file_and_one_that_polls_it(tmp_path, sandbox, loaded_warehouses):
    clean = loaded_warehouses.database("panora")  # a clean load of the same seeded data
    warehouse = Warehouse(tmp_path / "w", sandbox)
    warehouse.path.parent.mkdir()
    env = cli_env(sandbox, warehouse.path, tmp_path)
    first = load_cli(env, "--connections", "acme-eu", "--no-transform")  # something for the readers to read
    assert first.returncode == 0, first.stderr
    holding, stop_holding = _start_reader(HOLDING_READER, warehouse.path, tmp_path, "holding")
    polling, stop_polling = _start_reader(LOOPING_READER, warehouse.path, tmp_path, "polling")
    try:
        sandbox.settings.delay_seconds = 0.01  # the load takes long enough for the loop to query during it
        load = load_cli(env)  # every connection, then the models
    finally:
        held = _finish_reader(holding, stop_holding)
        polled = _finish_reader(polling, stop_polling)
    assert load.returncode == 0, load.stderr
    assert "Could not set lock" not in load.stderr
    # one load in one process: no line about waiting for itself; the summary names where the models are
    assert "wait" not in load.stderr.lower(), load.stderr
    assert "(schema accounting_raw_reconciliation)" in load.stdout
    assert (warehouse.path.parent / ".warehouse.duckdb.etl" / "writer.lock").exists()  # beside the file
    # the reader that held its connection kept the version it opened; reconnected, it sees the new rows
    assert held["held"] == held["before"] == sandbox.store.count("acme-eu", "payments")
    assert held["after"] == sum(sandbox.store.count(a, "payments") for a in sandbox.accounts())
    assert polled["failed"] == 0 and polled["queries"] > 0, polled
    # and the tables are those of a clean load
    got, want = warehouse.snapshot(DATA_TABLES), Warehouse(clean.parent, sandbox).snapshot(DATA_TABLES)
    assert got == want
    assert warehouse.scalar(f"SELECT count(*) FROM {DATASET}_reconciliation.accounting__invoice_settlement") > 0


def test_a_load_killed_at_each_point_of_its_write_path_then_rerun_equals_a_clean_run(
    tmp_path, sandbox, loaded_warehouses
):
    clean = Warehouse(loaded_warehouses.database("panora").parent, sandbox)
    warehouse = Warehouse(tmp_path / "w", sandbox)
    warehouse.path.parent.mkdir()
    env = cli_env(sandbox, warehouse.path, tmp_path)
    assert load_cli(env, "--connections", "acme-eu", "--no-transform").returncode == 0  # an earlier version
    whole = sum(sandbox.store.count(a, "payments") for a in sandbox.accounts())
    for point, payments in (("copied", None), ("before_rename", None), ("renamed", whole)):
        killed = load_cli({**env, KILL_AT_ENV: point}, "--no-transform")
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        with duckdb.connect(str(warehouse.path), read_only=True) as con:  # never a lost or half-written file
            stored = con.execute(f"SELECT count(*) FROM {DATASET}.payments").fetchone()[0]
        assert stored == (payments or sandbox.store.count("acme-eu", "payments")), point
    rerun = load_cli(env, "--no-transform")
    assert rerun.returncode == 0, rerun.stderr
    assert warehouse.snapshot(DATA_TABLES) == clean.snapshot(DATA_TABLES)
    assert not DuckDBFile(warehouse.path).work_dir.exists()  # the copy is gone once in place


def test_outside_writes_are_refused_while_a_writer_works_and_kept_otherwise(tmp_path):
    """An INSERT from a process outside the rule commits into the file when no writer works, is refused at once
    by DuckDB while one does (the writer holds the file read-only), and is never lost by the writer's rename."""
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE t (x INTEGER)")
    insert = "import duckdb, sys\nwith duckdb.connect(sys.argv[1]) as c: c.execute('INSERT INTO t VALUES (2)')"
    file = DuckDBFile(path)
    with file.writing("a test writer") as turn:
        outside = subprocess.run([sys.executable, "-c", insert, str(path)], capture_output=True, text=True)
        assert outside.returncode != 0 and "Could not set lock" in outside.stderr  # refused where it was tried
        with duckdb.connect(str(turn.path)) as con:
            con.execute("INSERT INTO t VALUES (1)")
    assert subprocess.run([sys.executable, "-c", insert, str(path)]).returncode == 0  # no writer: in the file
    with file.writing("another writer") as turn, duckdb.connect(str(turn.path)) as con:
        con.execute("INSERT INTO t VALUES (3)")
    with file.writing("a writer that changes its mind") as turn, duckdb.connect(str(turn.path)) as con:
        con.execute("INSERT INTO t VALUES (4)")
        turn.discard()
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT list(x ORDER BY x) FROM t").fetchone()[0] == [1, 2, 3]


def test_a_durable_writer_stopped_half_way_is_taken_over_or_carried_over_once(tmp_path):
    """Rows a durable writer committed survive its stop: taken over whole when the file did not change since;
    carried over into a fresh copy when it did (an outside write came between), by key or by whole rows, once,
    also when the writer that carries them is stopped in turn."""
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA s")
        con.execute("CREATE TABLE s.ledger (id VARCHAR PRIMARY KEY, status VARCHAR)")
        con.execute("CREATE TABLE s.attempts (id VARCHAR, n INTEGER)")  # no key: carried by whole rows
        con.execute("CREATE TABLE s.other (x INTEGER)")
    stop = """
import duckdb, os, signal, sys
from pipelines.warehouse.duckdb_file import DuckDBFile
with DuckDBFile(sys.argv[1]).writing("a stopped push", durable=True, keep=["s.ledger", "s.attempts"]) as turn:
    with duckdb.connect(str(turn.path)) as con:
        con.execute("INSERT INTO s.ledger VALUES ('{0}', 'pending')".format(sys.argv[2]))
        con.execute("INSERT INTO s.attempts VALUES ('{0}', 1)".format(sys.argv[2]))
    os.kill(os.getpid(), signal.SIGKILL)
"""
    next_writer = """
import sys
from pipelines.warehouse.duckdb_file import DuckDBFile
with DuckDBFile(sys.argv[1]).writing("the next writer"):
    pass
"""
    assert subprocess.run([sys.executable, "-c", stop, str(path), "a"]).returncode == -signal.SIGKILL
    file = DuckDBFile(path)
    with file.writing("the next writer") as turn, duckdb.connect(str(turn.path)) as con:
        assert con.execute("SELECT * FROM s.ledger").fetchall() == [("a", "pending")]  # taken over
    assert subprocess.run([sys.executable, "-c", stop, str(path), "b"]).returncode == -signal.SIGKILL
    with duckdb.connect(str(path)) as con:  # an outside write after the stop: the file changed
        con.execute("INSERT INTO s.other VALUES (7)")
    # the writer that carries them is stopped after carrying, before its copy is in place: done again, once
    carrying = subprocess.run(
        [sys.executable, "-c", next_writer, str(path)], env={**os.environ, KILL_AT_ENV: "carried"}
    )
    assert carrying.returncode == -signal.SIGKILL
    assert list(file.home.glob("stopped-*/copy"))  # what the stopped push wrote is kept aside meanwhile
    with file.writing("the next writer") as turn, duckdb.connect(str(turn.path)) as con:
        assert con.execute("SELECT * FROM s.ledger ORDER BY id").fetchall() == [("a", "pending"), ("b", "pending")]
        assert con.execute("SELECT * FROM s.attempts ORDER BY id").fetchall() == [("a", 1), ("b", 1)]
        assert con.execute("SELECT * FROM s.other").fetchall() == [(7,)]
    with file.writing("one more writer") as turn, duckdb.connect(str(turn.path)) as con:
        assert con.execute("SELECT count(*) FROM s.attempts").fetchone() == (2,)  # never carried twice
    assert not list(file.home.glob("stopped-*"))  # carried and in place: the stopped copy is gone


def test_a_read_back_that_fails_fails_its_scan_and_marks_nothing(warehouse, sandbox, monkeypatch):
    from pipelines.warehouse.stored import WarehouseRecords

    assert warehouse.load().status == "ok"
    sandbox.store.delete("acme-eu", "payments", sandbox.store.all("acme-eu", "payments")[0]["id"])

    def unreadable(*args, **kwargs):
        raise StoredRecordsUnreadable("payments", OSError("the disk said no"))

    monkeypatch.setattr(WarehouseRecords, "digests", unreadable)
    summary = warehouse.load()
    assert summary.status == "partial"
    failed = {(s.resource, s.connection) for s in summary.failed_scans}
    assert ("payments", "acme-eu") in failed
    assert all("cannot read back" in s.error for s in summary.failed_scans if s.resource == "payments")
    assert warehouse.count("payments", "deleted_at IS NOT NULL") == 0  # nothing marked deleted on a guess
