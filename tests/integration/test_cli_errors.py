"""Errors that say what to fix, as a cron or a person meets them at the command line: one line on stderr (the
detail under -v) and the documented exit status, with the other providers still loaded."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import duckdb

from tests.support import DATASET, cli_env


def load(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines", "load", "--no-transform", *args], env=env,
                          capture_output=True, text=True, timeout=240)  # fmt: skip


def said(result: subprocess.CompletedProcess) -> list[str]:
    """The lines on stderr that say something is wrong (not the progress log)."""
    return [line for line in result.stderr.splitlines() if line.startswith("accounting-etl") or "ERROR" in line]


def test_a_refused_api_key_is_a_settings_error_naming_the_setting_and_the_other_provider_loads(
    tmp_path, sandbox, rootfi
):
    env = cli_env(sandbox, tmp_path / "w.duckdb", tmp_path, rootfi)
    env["SOURCES__PANORA__API_KEY"] = "sk_test_not-a-key"  # Panora answers 500 "API Key not found"
    result = load(env)
    assert result.returncode == 2, result.stderr
    (line,) = said(result)
    assert "Panora refused the credentials of every connection" in line and "SOURCES__PANORA__API_KEY" in line
    assert "Traceback" not in result.stderr and "sk_test_not-a-key" not in result.stderr + result.stdout
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:  # Rootfi loaded all the same
        rows = con.execute(f"SELECT count(*) FROM {DATASET}.invoices WHERE provider = 'rootfi'").fetchone()[0]
    assert rows == sum(len(rootfi.store.all(a, "invoices", include_deleted=True)) for a in rootfi.store.company_ids())


def test_a_refused_rootfi_key_names_its_setting(tmp_path, sandbox, rootfi):
    env = cli_env(sandbox, tmp_path / "w.duckdb", tmp_path, rootfi)
    env["SOURCES__ROOTFI__API_KEY"] = "wrong"  # Rootfi answers 401
    result = load(env, "--provider", "rootfi")
    assert result.returncode == 2, result.stderr
    (line,) = said(result)
    assert "Rootfi refused" in line and "SOURCES__ROOTFI__API_KEY" in line


def test_one_refused_connection_among_healthy_ones_is_a_partial_load(tmp_path, sandbox):
    env = cli_env(sandbox, tmp_path / "w.duckdb", tmp_path)
    tokens = json.loads(env["SOURCES__PANORA__CONNECTIONS"])
    tokens["acme-us"] = "not-a-token"
    env["SOURCES__PANORA__CONNECTIONS"] = json.dumps(tokens)
    result = load(env)
    assert result.returncode == 1, result.stderr
    assert "SOURCES__PANORA__CONNECTIONS (acme-us)" in result.stdout
    assert "not-a-token" not in result.stdout + result.stderr


def test_nothing_listening_at_the_base_url_names_the_url(tmp_path, sandbox):
    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = cli_env(sandbox, tmp_path / "w.duckdb", tmp_path)
    env["SOURCES__PANORA__BASE_URL"] = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    result = load(env)
    assert result.returncode == 1, result.stderr
    (line,) = said(result)
    assert f"nothing answers at http://127.0.0.1:{port}" in line and "SOURCES__PANORA__BASE_URL" in line
    assert len(result.stderr.splitlines()) <= 12, result.stderr  # not a line per retry of every request
    assert time.monotonic() - started < 60


def test_a_malformed_json_setting_names_the_variable_and_what_is_wrong(tmp_path, sandbox):
    env = cli_env(sandbox, tmp_path / "w.duckdb", tmp_path)
    env["SOURCES__PANORA__CONNECTIONS"] = '{"acme-eu": "tok_secret_123",}'
    result = load(env)
    assert result.returncode == 2, result.stderr
    (line,) = said(result)
    assert "SOURCES__PANORA__CONNECTIONS" in line and "JSON object" in line
    assert "tok_secret_123" not in result.stderr
    env = cli_env(sandbox, tmp_path / "w.duckdb", tmp_path)
    env["SOURCES__PANORA__PAGE_SIZE"] = "a thousand"
    result = load(env)
    assert result.returncode == 2, result.stderr
    (line,) = said(result)
    assert "SOURCES__PANORA__PAGE_SIZE" in line and "whole number" in line


def test_a_warehouse_held_for_writing_by_another_process_exits_4_naming_it(tmp_path, sandbox):
    path = tmp_path / "w.duckdb"
    duckdb.connect(str(path)).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print(1, flush=True); "
         "time.sleep(60)", str(path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        holder.stdout.readline()
        env = {**cli_env(sandbox, path, tmp_path), "ACCOUNTING_ETL__WAREHOUSE_BUSY_SECONDS": "1"}
        result = load(env)
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 4, result.stderr
    (line,) = said(result)
    assert str(path) in line and f"PID {holder.pid}" in line
