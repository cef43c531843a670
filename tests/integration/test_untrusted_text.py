"""Text from servers and warehouses treated as untrusted: terminal escape sequences in a server's error never
reach a terminal as they came; a table named with SQL in the models schema stays a name; and the smaller
things around them (`status` and the push ledger, report files). In-process: masking and `printable` in
`tests/unit/test_secrets.py`, CSV cells in `tests/unit/test_csv_import.py`."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import duckdb

from pipelines.push.ledger import ensure_tables
from sandbox.panora import Fault
from tests.support import DATASET, M, cli_env

HOSTILE = (
    "\x1b[2J\x1b[H\x1b[32mall connections loaded and fresh\x1b[0m \x1b[8mhidden\x1b[28m "
    "\x1b]8;;http://evil.example/\x07click\x1b]8;;\x07 \u202egnp.exe"
)


def test_a_servers_escape_sequences_reach_neither_the_log_nor_status(tmp_path, sandbox):
    sandbox.inject(Fault("body", status=400, method="GET", path="/accounting/payments", times=1000,
                         body=json.dumps({"statusCode": 400, "message": HOSTILE})))  # fmt: skip
    env = cli_env(sandbox, tmp_path / "w.duckdb", tmp_path)
    load = subprocess.run([sys.executable, "-m", "pipelines", "load", "--no-transform"], env=env,
                          capture_output=True, text=True, timeout=240)  # fmt: skip
    assert load.returncode == 1
    for output in (load.stdout, load.stderr):
        assert "\x1b" not in output and "\x07" not in output and "\u202e" not in output
    assert "\\x1b[32mall connections loaded and fresh" in load.stdout  # shown, escaped, for a person to read
    for args in (["status", "--database", str(tmp_path / "w.duckdb")], ["status", "--json", "--database",
                                                                       str(tmp_path / "w.duckdb")]):  # fmt: skip
        status = subprocess.run([sys.executable, "-m", "pipelines", *args], env=env, capture_output=True,
                                text=True, timeout=120)  # fmt: skip
        assert status.returncode == 1
        assert "\x1b" not in status.stdout and "\u202e" not in status.stdout


def test_a_table_named_with_sql_in_the_models_schema_runs_no_sql(tmp_path, loaded_warehouses):
    from pipelines.transform import transform_database

    path = tmp_path / "w.duckdb"
    path.write_bytes(loaded_warehouses.database("panora").read_bytes())
    hostile = f"x; CREATE TABLE {DATASET}.pwned (a INTEGER); --"
    with duckdb.connect(str(path)) as con:
        con.execute(f'CREATE TABLE {M}."{hostile}" (a INTEGER)')
    result = transform_database(str(path))
    assert result.rows[hostile] == 0 and not result.error
    with duckdb.connect(str(path), read_only=True) as con:
        found = con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [DATASET])
        tables = {r[0] for r in found.fetchall()}
    assert "pwned" not in tables


def test_status_exits_1_for_push_rows_that_need_a_person_and_says_so_in_json(tmp_path, loaded_warehouses):
    from pipelines.cli import main

    path = tmp_path / "w.duckdb"
    path.write_bytes(loaded_warehouses.database("panora").read_bytes())
    now = datetime.now(UTC)
    with duckdb.connect(str(path)) as con:
        ensure_tables(con, DATASET)
        for external_id, status, age in (("old-pending", "pending", timedelta(days=30)),
                                         ("fresh-pending", "pending", timedelta(seconds=5)),
                                         ("done", "confirmed", timedelta(days=3))):  # fmt: skip
            con.execute(
                f"INSERT INTO {DATASET}.push_log (external_id, kind, connection, status, attempts, updated_at) "
                "VALUES (?, 'payment', 'acme-eu', ?, 1, ?)",
                [external_id, status, now - age],
            )
    assert main(["status", "--json", "--database", str(path)]) == 1  # a pending push a month old
    assert main(["status", "--json", "--stuck-after", "60d", "--database", str(path)]) == 0
    with duckdb.connect(str(path)) as con:
        con.execute(f"DELETE FROM {DATASET}.push_log WHERE external_id = 'old-pending'")
        con.execute(
            f"INSERT INTO {DATASET}.push_log (external_id, kind, connection, status, attempts, updated_at, error) "
            "VALUES ('gone-wrong', 'payment', 'acme-eu', 'failed', 3, now(), 'not created after 3 sends')"
        )
    from pipelines.status import read_status

    report = read_status(str(path))
    assert not report.push_ok and [r["external_id"] for r in report.push_attention] == ["gone-wrong"]
    assert json.loads(report.as_json())["push"]["ok"] is False
    with duckdb.connect(str(path)) as con:
        con.execute(f"DELETE FROM {DATASET}.push_log WHERE external_id = 'gone-wrong'")
    report = read_status(str(path))
    assert report.push_ok and json.loads(report.as_json())["push"]["ok"] is True


def test_the_report_replaces_a_link_where_it_writes_never_writes_through_it(tmp_path, loaded_warehouses):
    from pipelines.report import write_report

    out = tmp_path / "report"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (out / "index.html").symlink_to(victim)
    (out / "balance_mismatches.csv").symlink_to(victim)
    write_report(loaded_warehouses.database("panora"), out)
    assert victim.read_text() == "keep me"
    assert not (out / "index.html").is_symlink() and "<html" in (out / "index.html").read_text()
