"""The command-line job as a cron would run it: killed at any point and rerun, it leaves the tables exactly
as a clean run; and no API key or connection token ends up in its output, tables or dlt state."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from sandbox.http import Fault
from tests.support import DATA_TABLES, M, Warehouse, cli_env, kill_when

PIPELINE = "accounting_panora"  # the CLI's default pipeline name


def run_cli(env: dict[str, str], pipelines_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipelines", "load", "--pipelines-dir", str(pipelines_dir), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def package_dirs(pipelines_dir: Path, stage: str, pipeline: str = PIPELINE) -> list[Path]:
    return list((pipelines_dir / pipeline).glob(f"{stage}/*"))


def completed_jobs(pipelines_dir: Path, pipeline: str = PIPELINE) -> list[Path]:
    return list((pipelines_dir / pipeline).glob("load/normalized/*/completed_jobs/*"))


KILL_POINTS: dict[str, Callable] = {
    # while pages are still being fetched
    "mid_scan": lambda server, pdir, pipeline: server.stats.snapshot()["total_requests"] >= 6,
    # extraction finished, package not yet normalized or loaded
    "after_extract": lambda server, pdir, pipeline: bool(package_dirs(pdir, "normalize/extracted", pipeline)),
    # some tables of the package loaded, others not
    "mid_load": lambda server, pdir, pipeline: bool(completed_jobs(pdir, pipeline)),
}


@pytest.mark.parametrize("provider", ["panora", "rootfi"])
@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_kill_at_any_point_then_rerun_equals_a_clean_run(tmp_path, sandbox, rootfi, point, provider, loaded_warehouses):
    server = rootfi if provider == "rootfi" else sandbox
    server.settings.delay_seconds = 0.02  # a scan of many pages takes long enough to be interrupted
    clean = Warehouse(tmp_path / "clean", sandbox)  # a clean run of the same seeded data, made once a session
    clean.path.parent.mkdir()
    loaded_warehouses.copy_into(clean, provider)
    only = ["--provider", provider, "--no-transform"]  # the data only: the models have a kill test of their own

    condition = KILL_POINTS[point]
    for attempt in range(3):  # a run can finish before the kill point on a fast machine: set up again
        killed = Warehouse(tmp_path / f"killed-{attempt}", sandbox)
        killed.path.parent.mkdir()
        env = cli_env(sandbox, killed.path, tmp_path, rootfi)
        server.reset_stats()
        reached = lambda folder=killed.pipelines_dir: condition(server, folder, f"accounting_{provider}")  # noqa: E731
        code = kill_when(["load", "--pipelines-dir", str(killed.pipelines_dir), *only], env, reached, timeout=120)
        if code == -signal.SIGKILL:
            break
    assert code == -signal.SIGKILL, f"three runs ended before the {point} kill point"

    rerun = run_cli(env, killed.pipelines_dir, *only)
    assert rerun.returncode == 0, rerun.stderr
    got, want = killed.snapshot(DATA_TABLES), clean.snapshot(DATA_TABLES)
    for table in DATA_TABLES:
        assert len(got[table]) == len(want[table]), (
            f"{table}: {len(got[table])} rows, a clean run has {len(want[table])}"
        )
        assert got[table] == want[table], table


def model_tables(warehouse: Warehouse) -> dict[str, list[tuple]]:
    """Every model's rows, but for model_run (when and by which invocation)."""
    with duckdb.connect(str(warehouse.path), read_only=True) as con:
        tables = "SELECT table_name FROM information_schema.tables WHERE table_schema = ? ORDER BY 1"
        names = [r[0] for r in con.execute(tables, [M]).fetchall()]
        return {n: con.execute(f"SELECT * FROM {M}.{n} ORDER BY ALL").fetchall() for n in names if "model_run" not in n}


def test_killed_while_the_models_build_a_rerun_builds_them_as_a_clean_run(tmp_path, sandbox, loaded_warehouses):
    clean = Warehouse(tmp_path / "clean", sandbox)  # a clean run of the same seeded data, made once a session
    clean.path.parent.mkdir()
    loaded_warehouses.copy_into(clean, "panora")

    killed = Warehouse(tmp_path / "killed", sandbox)
    killed.path.parent.mkdir()
    env = cli_env(sandbox, killed.path, killed.path.parent)
    logs = killed.path.parent / "dlt-data"

    def building() -> bool:  # some models are built, others not yet
        return any(log.read_text().count("OK created sql table model") >= 4 for log in logs.rglob("dbt.log"))

    code = kill_when(["load", "--pipelines-dir", str(killed.pipelines_dir)], env, building, timeout=120)
    assert code == -signal.SIGKILL, "the load ended before its models were half built"
    with duckdb.connect(str(killed.path), read_only=True) as con:
        assert con.execute(f"SELECT count(*) FROM information_schema.tables WHERE table_schema = '{M}' "
                           "AND table_name = 'accounting__model_run'").fetchone() == (0,)  # fmt: skip

    rerun = run_cli(env, killed.pipelines_dir)  # nothing new to load: the models are built all the same
    assert rerun.returncode == 0, rerun.stderr
    got, want = model_tables(killed), model_tables(clean)
    if killed.scalar(f"SELECT as_of FROM {M}.accounting__model_run") != clean.scalar(
        f"SELECT as_of FROM {M}.accounting__model_run"
    ):  # built on either side of midnight (UTC): the ages differ by a day, everything else may not
        del got["accounting__receivables_aging"], want["accounting__receivables_aging"]
    assert got == want


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
