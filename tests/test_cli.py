"""The `accounting-etl` command line as a user meets it."""

from __future__ import annotations

import subprocess
import sys
from datetime import date

import duckdb
import pytest

from pipelines.cli import build_parser, main
from sandbox.rootfi import seed_companies

M = "accounting_raw_reconciliation"  # the models of the default dataset


@pytest.mark.parametrize("command", ["load", "sandbox", "demo"])
def test_every_subcommand_explains_itself(command, capsys):
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([command, "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert "usage: accounting-etl" in text
    if command == "load":
        for setting in ("SOURCES__PANORA__API_KEY", "SOURCES__PANORA__CONNECTIONS", "DESTINATION__DUCKDB__CREDENTIALS"):
            assert setting in text


def test_missing_settings_exit_2_with_what_to_set(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOURCES__PANORA__API_KEY", "sk_test_x")
    assert main(["load"]) == 2
    assert "SOURCES__PANORA__CONNECTIONS" in capsys.readouterr().err


def test_unknown_resource_is_refused(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOURCES__PANORA__API_KEY", "sk_test_x")
    monkeypatch.setenv("SOURCES__PANORA__CONNECTIONS", '{"a": "token-a"}')
    assert main(["load", "--resources", "payments,bills"]) == 2
    assert "bills" in capsys.readouterr().err


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
    payments_loaded = 200 + sum(len(c.invoice_payments) for c in seed_companies())
    assert any(line.split() == ["payments", f"{payments_loaded:,}"] for line in lines)
    assert "Try next:" in result.stdout and "accounting-etl status --database accounting.duckdb" in result.stdout
    with duckdb.connect(str(database), read_only=True) as con:
        payments = dict(con.execute("SELECT provider, count(*) FROM accounting_raw.payments GROUP BY 1").fetchall())
        runs = con.execute("SELECT provider, status FROM accounting_raw.load_runs ORDER BY 1").fetchall()
        models = dict(con.execute(f"SELECT provider, count(*) FROM {M}.stg_accounting__invoices GROUP BY 1").fetchall())
    rootfi_payments = sum(len(c.invoice_payments) for c in seed_companies())
    assert payments == {"panora": 200, "rootfi": rootfi_payments}
    assert runs == [("panora", "ok"), ("rootfi", "ok")]
    assert set(models) == {"panora", "rootfi"}


def test_a_duckdb_file_named_like_the_dataset_is_refused_before_loading(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOURCES__PANORA__API_KEY", "sk_test_x")
    monkeypatch.setenv("SOURCES__PANORA__CONNECTIONS", '{"a": "token-a"}')
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(tmp_path / "ledger.duckdb"))
    assert main(["load", "--dataset", "ledger"]) == 2
    assert "share a name" in capsys.readouterr().err
    assert not (tmp_path / "ledger.duckdb").exists()


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
        process.wait(timeout=10)


def test_load_hands_its_as_of_date_to_the_models(monkeypatch):
    """`load --as-of` reaches the load's models build (the load itself is `run_loads`, tested elsewhere)."""
    from pipelines import load

    given: dict = {}
    monkeypatch.setattr(load, "run_loads", lambda *args, **kwargs: given.update(kwargs) or [])
    assert main(["load", "--as-of", "2030-06-30", "--no-transform"]) == 0
    assert given["as_of"] == date(2030, 6, 30) and given["transform"] is False
    assert main(["load"]) == 0 and given["as_of"] is None  # the day the load starts, decided by the load
