"""The command-line job as a cron would run it leaks no credential: no API key or connection token ends up in
its output, tables, dlt state or dbt's files, also when a server echoes the credentials back (masking itself,
in-process: `tests/unit/test_secrets.py`)."""

from __future__ import annotations

import json
import subprocess
import sys

from sandbox.http import Fault
from tests.support import Warehouse, cli_env, run_cli


def test_no_secret_in_output_tables_or_dlt_state(tmp_path, sandbox, rootfi):
    warehouse = Warehouse(tmp_path, sandbox)
    env = cli_env(sandbox, warehouse.path, tmp_path, rootfi)  # both providers
    # one connection's token is unknown to the server: its error path must not leak it either
    connections = {**sandbox.store.tokens(), "revoked": "5ec12e7-revoked-token-0000000000aa"}
    env["SOURCES__PANORA__CONNECTIONS"] = json.dumps(connections)
    result = run_cli(env, warehouse.pipelines_dir)
    assert result.returncode == 1  # partial: the revoked connection failed, the rest loaded
    assert "revoked" in result.stdout and "FAILED" in result.stdout
    secrets = [sandbox.api_key, rootfi.api_key, *connections.values()]
    assert "load ok" in result.stdout  # Rootfi's load, next to Panora's partial one

    output = result.stdout + result.stderr
    assert [s for s in secrets if s in output] == []

    for table in warehouse.tables():
        rows = warehouse.query(f"SELECT * FROM accounting_raw.{table}")
        text = repr(rows)
        assert [s for s in secrets if s in text] == [], table
    raw_database = warehouse.path.read_bytes()
    assert [s for s in secrets if s.encode() in raw_database] == []

    state_files = [p for p in (warehouse.pipelines_dir).rglob("*") if p.is_file()]
    assert state_files, "expected dlt state and trace files"
    dbt_files = [p for p in (tmp_path / "dlt-data" / "accounting_dbt").rglob("*") if p.is_file()]
    assert any(p.name == "dbt.log" for p in dbt_files), "expected dbt's log and artifacts"
    for path in state_files + dbt_files:
        content = path.read_bytes()
        leaked = [s for s in secrets if s.encode() in content]
        assert leaked == [], f"secret found in {path}"


def test_a_server_echoing_the_credentials_leaks_them_nowhere(tmp_path, sandbox, rootfi):
    """Some gateways repeat a request's headers in their error answers: the load's and the push's errors,
    logs, tables, state and packages must still never hold an API key or a connection token."""
    warehouse = Warehouse(tmp_path, sandbox)
    env = cli_env(sandbox, warehouse.path, tmp_path, rootfi)
    secrets = [sandbox.api_key, rootfi.api_key, *sandbox.store.tokens().values()]
    sandbox.inject(Fault("echo", status=400, path="/accounting/payments", connection="acme-us", times=100))
    rootfi.inject(Fault("echo", status=400, path="/accounting/invoices", connection="initech-us", times=100))

    load = run_cli(env, warehouse.pipelines_dir, "--no-transform")  # the models hold no secret: not built here

    assert load.returncode == 1 and load.stdout.count("FAILED") == 2
    assert "Request headers were" in load.stdout and "***" in load.stdout  # the echo arrived, masked

    # without the models, push weighs a payment against the invoice's loaded balance
    open_invoice = (
        "SELECT connection, id, currency FROM accounting_raw.invoices WHERE connection = ? AND balance >= 100 "
        "AND upper(status) NOT IN ('VOID', 'DRAFT', 'PAID') AND deleted_at IS NULL ORDER BY id LIMIT 1"
    )
    ((conn, invoice, currency),) = warehouse.query(open_invoice, "acme-eu")
    ((rf_conn, rf_invoice, rf_currency),) = warehouse.query(open_invoice, "northwind-uk")
    path = tmp_path / "payments.csv"
    path.write_text(
        "external_id,connection,invoice_id,currency,total_amount,transaction_date\n"
        f"echo-1,{conn},{invoice},{currency},100,2026-11-20\n"
        f"echo-2,{rf_conn},{rf_invoice},{rf_currency},100,2026-11-20\n",
        encoding="utf-8",
    )
    sandbox.inject(Fault("echo", status=400, method="POST", path="/accounting/payments", times=100))
    rootfi.inject(Fault("echo", status=400, method="POST", path="/accounting/invoice_payments", times=100))
    push = subprocess.run(
        [sys.executable, "-m", "pipelines", "push", "--from-csv", str(path), "--database", str(warehouse.path)],
        env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert push.returncode == 1, push.stdout + push.stderr
    errors = dict(warehouse.query("SELECT external_id, error FROM accounting_raw.push_log"))
    assert set(errors) == {"echo-1", "echo-2"} and all("Request headers were" in e for e in errors.values())
    assert sandbox.stats.faults_fired >= 2 and rootfi.stats.faults_fired >= 2

    output = load.stdout + load.stderr + push.stdout + push.stderr
    assert [s for s in secrets if s in output] == []
    for table in warehouse.tables():
        text = repr(warehouse.query(f"SELECT * FROM accounting_raw.{table}"))
        assert [s for s in secrets if s in text] == [], table
    assert [s for s in secrets if s.encode() in warehouse.path.read_bytes()] == []
    for state_file in (p for p in warehouse.pipelines_dir.rglob("*") if p.is_file()):
        leaked = [s for s in secrets if s.encode() in state_file.read_bytes()]
        assert leaked == [], f"secret found in {state_file.relative_to(warehouse.pipelines_dir)}"
