"""The `accounting-etl` command line as a user meets it, in processes of its own: `demo` loads every sandbox
into a DuckDB file, `sandbox` serves a provider's API (parsing, help and settings errors in-process:
`tests/unit/test_cli.py`)."""

from __future__ import annotations

import re
import subprocess
import sys

import duckdb
import pytest

from sandbox.merge import seed_accounts
from sandbox.rootfi import seed_companies
from tests.support import cli_env, run_cli

M = "accounting_raw_reconciliation"  # the models of the default dataset


def test_demo_loads_the_sandbox_into_a_duckdb_file(tmp_path):
    database = tmp_path / "accounting.duckdb"
    result = subprocess.run(
        [sys.executable, "-m", "pipelines", "demo", "--database", str(database)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    assert "load ok" in result.stdout and str(database.parent / "report" / "index.html") in result.stdout
    # a short summary a person can read: row counts per table, the report, what to try next; no frame dumps
    lines = result.stdout.splitlines()
    assert len(lines) < 45 and max(map(len, lines)) <= 140
    merge_payments = sum(len(a.payments) for a in seed_accounts())
    payments_loaded = 200 + sum(len(c.invoice_payments) for c in seed_companies()) + merge_payments
    assert any(line.split() == ["payments", f"{payments_loaded:,}"] for line in lines)
    assert "Try next:" in result.stdout and "accounting-etl status --database accounting.duckdb" in result.stdout
    # the reconciliation sentence accounts for every invoice: its statuses add up to the count it starts with
    sentence = result.stdout[result.stdout.index("Reconciliation: ") :].split("unapplied payments")[0]
    counts = [int(n.replace(",", "")) for n in re.findall(r"(\d[\d,]*) [a-z]", sentence)]
    assert len(counts) == 8 and counts[0] == sum(counts[1:]), sentence
    with duckdb.connect(str(database), read_only=True) as con:
        payments = dict(con.execute("SELECT provider, count(*) FROM accounting_raw.payments GROUP BY 1").fetchall())
        runs = con.execute("SELECT provider, status FROM accounting_raw.load_runs ORDER BY 1").fetchall()
        models = dict(con.execute(f"SELECT provider, count(*) FROM {M}.stg_accounting__invoices GROUP BY 1").fetchall())
    rootfi_payments = sum(len(c.invoice_payments) for c in seed_companies())
    assert payments == {"panora": 200, "rootfi": rootfi_payments, "merge": merge_payments}
    assert runs == [("merge", "ok"), ("panora", "ok"), ("rootfi", "ok")]
    assert set(models) == {"panora", "rootfi", "merge"}


def test_load_writes_the_duckdb_file_database_names(tmp_path, sandbox):
    """`load --database`, as the other commands take it: that file, whatever the setting names."""
    configured = tmp_path / "configured.duckdb"
    env = cli_env(sandbox, configured, tmp_path)
    named = tmp_path / "named.duckdb"
    result = run_cli(env, tmp_path / "pipelines", "--no-transform", "--database", str(named))
    assert result.returncode == 0, result.stderr
    assert not configured.exists()
    with duckdb.connect(str(named), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM accounting_raw.payments").fetchone()[0] > 0
    other = run_cli(env, tmp_path / "pipelines", "--database", str(named), "--destination", "postgres")
    assert other.returncode == 2 and "--database names a DuckDB file" in other.stderr


PANORA_SANDBOX = {
    "args": ["--rate-limit", "0"],
    "key": "SOURCES__PANORA__API_KEY",
    "accounts": "SOURCES__PANORA__CONNECTIONS",
    "request": lambda port, key, accounts: (
        f"http://127.0.0.1:{port}/accounting/payments",
        {"x-api-key": key, "x-connection-token": accounts["acme-us"]},
        {"limit": 5},
    ),
    "rate_limit_header": None,  # --rate-limit 0 turns it off
}


ROOTFI_SANDBOX = {
    "args": ["--provider", "rootfi"],
    "key": "SOURCES__ROOTFI__API_KEY",
    "accounts": "SOURCES__ROOTFI__COMPANIES",
    "request": lambda port, key, accounts: (
        f"http://127.0.0.1:{port}/accounting/invoice_payments",
        {"api_key": key},
        {"limit": 5, "rootfi_company_id[eq]": accounts["initech-us"]},
    ),
    "rate_limit_header": "100",
}


@pytest.mark.parametrize("case", [PANORA_SANDBOX, ROOTFI_SANDBOX], ids=["panora", "rootfi"])
def test_sandbox_command_serves_and_prints_the_settings_to_use(case):
    import json
    import re
    import socket
    import time

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "pipelines", "sandbox", "--port", str(port), *case["args"]],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        lines = []
        deadline = time.monotonic() + 60
        while not any(case["accounts"] in line for line in lines):
            assert time.monotonic() < deadline and process.poll() is None
            lines.append(process.stdout.readline())
        text = "".join(lines)
        key = re.search(case["key"] + r"=(\S+)", text).group(1)
        accounts = json.loads(re.search(case["accounts"] + r"='(.+)'", text).group(1))
        url, headers, params = case["request"](port, key, accounts)
        answer = httpx.get(url, headers=headers, params=params)
        assert answer.status_code == 200 and len(answer.json()["data"]) == 5
        assert answer.headers.get("X-RateLimit-Limit") == case["rate_limit_header"]
    finally:
        process.terminate()
        _exit_code_after_terminate(process)


def test_the_sandbox_stops_on_sigterm_even_when_its_parent_ignored_it():
    """An ignored SIGTERM is inherited through exec (a parent that ran Dagster in-process can leave SIGTERM
    ignored): the sandbox still stops on it, as on Ctrl-C, and says nothing went wrong."""
    import signal
    import time

    process = subprocess.Popen(
        [sys.executable, "-m", "pipelines", "sandbox", "--port", "0"],
        stdout=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_IGN),  # the ignore survives exec, as inherited
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while "Ctrl-C stops it" not in process.stdout.readline():
            assert time.monotonic() < deadline and process.poll() is None
        process.terminate()
        assert _exit_code_after_terminate(process) == 0
    finally:
        process.kill()
        process.wait()


def _exit_code_after_terminate(process: subprocess.Popen) -> int:
    """The exit code of a process sent SIGTERM; fails, saying its state and signals, if it outlives it."""
    try:
        return process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with open(f"/proc/{process.pid}/status") as status:
            signals = [line.strip() for line in status if line.startswith(("State", "Sig"))]
        process.kill()
        raise AssertionError(f"the sandbox outlived SIGTERM by 10 s: {signals}") from None
