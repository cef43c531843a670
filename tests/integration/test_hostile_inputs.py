"""What a user or a provider hands push and the report: bad CSV rows, dates on machines around the world,
job answers in any order, a provider failing half-way, formulas in exported text, names that cannot work.
Each bad piece is refused on its own, with where and why; nothing else is lost; nothing is sent twice."""

from __future__ import annotations

import csv
import subprocess
import sys
from datetime import date
from decimal import Decimal

import dlt
import duckdb
import pytest

from pipelines.cli import main
from pipelines.load import run_load
from pipelines.report import spreadsheet_safe, write_report
from pipelines.settings import ConfigurationError
from sandbox.http import Fault
from tests.support import (
    DATASET,
    M,
    Warehouse,
    cli_env,
    created_in_api,
    ledger,
    open_invoices,
    posts,
    push,
    push_rootfi,
)

HEADER = "external_id,connection,invoice_id,currency,total_amount,transaction_date,overpayment_intended\n"


@pytest.fixture
def loaded(both: Warehouse, loaded_warehouses) -> Warehouse:
    """Both providers' seeded data loaded, with the models (a copy of the session's one load)."""
    return loaded_warehouses.copy_into(both, "both")


def test_each_bad_csv_row_is_rejected_by_row_and_column_and_the_rest_are_queued(loaded, sandbox, tmp_path):
    ((conn, inv, cur, _),) = open_invoices(loaded, 1)
    good = f"{conn},{inv},{cur}"
    lines = [
        f"good-1,{good},100,2026-11-20,false",  # row 2
        f"fraction,{good},12.5,2026-11-20,",  # row 3: never rounded to 13
        f"words,{good},ten,2026-11-20,",
        f"bad-date,{good},100,20/11/2026,",
        f"bad-flag,{good},100,2026-11-20,maybe",
        f",{good},100,2026-11-20,",  # row 7: no external id
        f"good-1,{good},100,2026-11-20,",  # row 8: the same external id again
        f"too-many,{good},100,2026-11-20,false,surplus",
        f"good-2,{good},100,,true",  # row 10
    ]
    path = tmp_path / "payments.csv"
    path.write_text("\ufeff" + HEADER + "\n".join(lines) + "\n", encoding="utf-8")  # Excel's "CSV UTF-8"

    summary = push(loaded, from_csv=path)

    rejects = {(r.row, r.column): r.reason for r in summary.import_rejects}
    assert set(rejects) == {
        (3, "total_amount"),
        (4, "total_amount"),
        (5, "transaction_date"),
        (6, "overpayment_intended"),
        (7, "external_id"),
        (8, "external_id"),
        (9, "(row)"),
    }
    assert "never rounded" in rejects[(3, "total_amount")] and "repeats row 2" in rejects[(8, "external_id")]
    queued = loaded.query(f"SELECT external_id, total_amount FROM {DATASET}.outbound_payments ORDER BY 1")
    assert queued == [("good-1", 100), ("good-2", 100)]
    assert summary.outcomes == {"created": 2} and not summary.ok
    assert created_in_api(sandbox, "good-1") == 1 and created_in_api(sandbox, "good-2") == 1
    assert "payments.csv row 3, column total_amount" in summary.render()
    kept = loaded.query(f"SELECT external_id, reason FROM {DATASET}.push_plan WHERE action = 'not queued'")
    assert (
        len(kept) == 7
        and ("fraction", "payments.csv row 3, column total_amount: " + rejects[(3, "total_amount")]) in kept
    )
    assert "good-1" not in {
        e for (e,) in loaded.query(f"SELECT external_id FROM {DATASET}.push_log WHERE status <> 'created'")
    }


def test_push_from_the_command_line_says_what_is_wrong_without_a_traceback(loaded, sandbox, tmp_path, capsys):
    env = cli_env(sandbox, loaded.path, tmp_path)
    env.pop("DLT_DATA_DIR")
    bad_rows = tmp_path / "rows.csv"
    bad_rows.write_text(HEADER + "x-1,acme-eu,inv,EUR,1.5,2026-11-20,\n", encoding="utf-8")
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes((HEADER + "x-2,acme-eu,inv,EUR,100,2026-11-20,\n").replace("x-2", "caf\xe9").encode("latin-1"))
    no_header = tmp_path / "empty.csv"
    no_header.write_text("", encoding="utf-8")

    def run(*args: str) -> tuple[int, str]:
        result = subprocess.run([sys.executable, "-m", "pipelines", "push", *args], env=env, capture_output=True,
                                text=True, timeout=120)  # fmt: skip
        return result.returncode, result.stdout + result.stderr

    code, output = run("--from-csv", str(bad_rows), "--database", str(loaded.path))
    assert code == 1 and "rows.csv row 2, column total_amount" in output and "Traceback" not in output
    code, output = run("--from-csv", str(latin1), "--database", str(loaded.path))
    assert code == 2 and "not UTF-8" in output and "Traceback" not in output
    code, output = run("--from-csv", str(no_header), "--database", str(loaded.path))
    assert code == 2 and "needs the columns" in output and "Traceback" not in output


@pytest.mark.parametrize("zone", ["Asia/Tokyo", "America/Los_Angeles"])
def test_a_queued_date_is_the_same_calendar_day_on_every_machine(loaded, sandbox, rootfi, tmp_path, zone):
    """Queued by SQL in the machine's own zone (as an analyst does) and by CSV, pushed on that machine."""
    panora_invoice = open_invoices(loaded, 1)[0]
    rootfi_invoice = loaded.query(
        f"SELECT connection, invoice_id, currency, open_minor FROM {M}.accounting__invoice_settlement "
        "WHERE invoice_id LIKE 'rootfi:%' AND status IN ('unpaid', 'partially_paid') AND open_minor >= 100 LIMIT 1"
    )[0]
    env = {**cli_env(sandbox, loaded.path, tmp_path, rootfi), "TZ": zone}
    insert = (
        "import duckdb, sys; con = duckdb.connect(sys.argv[1]); "
        f'con.execute("INSERT INTO {DATASET}.outbound_payments (external_id, connection, invoice_id, currency, '
        "total_amount, transaction_date) VALUES ('sql-rootfi', ?, ?, ?, 100, '2026-11-20')\", sys.argv[2:5])"
    )
    subprocess.run([sys.executable, "-c", insert, str(loaded.path), *rootfi_invoice[:3]], env=env, check=True)
    path = tmp_path / "payments.csv"
    conn, inv, cur, _ = panora_invoice
    path.write_text(HEADER + f"csv-panora,{conn},{inv},{cur},100,2026-11-20,\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "pipelines", "push", "--from-csv", str(path), "--database", str(loaded.path),
         "--resend-unknown-after", "0"],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    created = [p for a in sandbox.store.tokens() for p in sandbox.store.all(a, "payments")]
    panora = next(p for p in created if (p.get("field_mappings") or {}).get("external_id") == "csv-panora")
    assert panora["transaction_date"].startswith("2026-11-20")
    rootfi_payment = next(
        p for a in rootfi.store.company_ids() for p in rootfi.store.all(a, "invoice_payments")
        if p["document_number"] == "sql-rootfi"
    )  # fmt: skip
    assert rootfi_payment["payment_date"] == "2026-11-20"
    queued = dict(loaded.query(f"SELECT external_id, transaction_date FROM {DATASET}.outbound_payments"))
    assert queued == {"sql-rootfi": date(2026, 11, 20), "csv-panora": date(2026, 11, 20)}


def test_an_older_queue_with_date_times_becomes_calendar_days(tmp_path):
    from pipelines.push.ledger import ensure_tables

    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA accounting_raw")
        con.execute(
            "CREATE TABLE accounting_raw.outbound_payments (external_id VARCHAR PRIMARY KEY, connection VARCHAR, "
            "transaction_date TIMESTAMP WITH TIME ZONE)"
        )
        con.execute("SET TimeZone = 'UTC'")
        con.execute("INSERT INTO accounting_raw.outbound_payments VALUES ('old', 'c', '2026-11-20 00:00:00+00')")
        ensure_tables(con, "accounting_raw")
        assert con.execute("SELECT transaction_date FROM accounting_raw.outbound_payments").fetchall() == [
            (date(2026, 11, 20),)
        ]


def test_rootfi_job_results_are_matched_by_document_number_and_amounts_go_out_exact(loaded, rootfi):
    """The job answers in the reverse order of the batch; one record fails in it; one amount has more
    digits than a float keeps (12,345,678,901,234,567.89 GBP)."""
    rootfi.settings.job_results_order = "reversed"
    invoices = loaded.query(
        f"SELECT connection, invoice_id, currency FROM {M}.accounting__invoice_settlement WHERE invoice_id LIKE "
        "'rootfi:4101:%' AND currency = 'GBP' AND status IN ('unpaid', 'partially_paid') ORDER BY invoice_id LIMIT 3"
    )
    amounts = [1234567890123456789, 2550, 1999]
    with duckdb.connect(str(loaded.path)) as con:
        for i, ((connection, invoice_id, currency), amount) in enumerate(zip(invoices, amounts, strict=True)):
            con.execute(
                f"INSERT INTO {DATASET}.outbound_payments (external_id, connection, invoice_id, currency, "
                "total_amount, transaction_date, overpayment_intended) VALUES (?, ?, ?, ?, ?, '2026-11-20', TRUE)",
                [f"rf-order-{i}", connection, invoice_id, currency, amount],
            )
    doomed = invoices[1][1].split(":")[2]
    rootfi.store.delete("northwind-uk", "invoices", doomed)

    summary = push_rootfi(loaded)

    assert summary.outcomes == {"created": 2, "rejected": 1}
    entries = ledger(loaded)
    assert entries["rf-order-1"][0] == "rejected" and doomed in entries["rf-order-1"][2]
    for external_id, amount in (("rf-order-0", amounts[0]), ("rf-order-2", amounts[2])):
        record = next(r for r in rootfi.store.records["invoice_payments"] if r["document_number"] == external_id)
        assert entries[external_id][1] == f"rootfi:4101:{record['platform_id']}"
        assert rootfi.store.received[external_id]["amount"] == Decimal(amount).scaleb(-2)
    assert posts(loaded) == 1


def test_one_providers_api_failing_mid_push_stops_neither_the_other_nor_the_run(loaded, sandbox, rootfi):
    panora_rows = open_invoices(loaded, 2)
    rootfi_rows = loaded.query(
        f"SELECT connection, invoice_id, currency FROM {M}.accounting__invoice_settlement WHERE invoice_id LIKE "
        "'rootfi:%' AND status IN ('unpaid', 'partially_paid') AND open_minor >= 1000 ORDER BY 2 LIMIT 2"
    )
    with duckdb.connect(str(loaded.path)) as con:
        for i, (connection, invoice_id, currency, *_) in enumerate([*panora_rows, *rootfi_rows]):
            con.execute(
                f"INSERT INTO {DATASET}.outbound_payments (external_id, connection, invoice_id, currency, "
                "total_amount, transaction_date) VALUES (?, ?, ?, ?, 100, '2026-11-20')",
                [f"mix-{i}", connection, invoice_id, currency],
            )
    # Rootfi: every job-status request fails; Panora: one answer is an empty 201, one lookup fails
    rootfi.settings.sync_wait_seconds = 0.0  # the POST answers before the job ends: it must be followed
    rootfi.inject(Fault("status", status=503, path="/core/syncs/", times=100))
    sandbox.inject(
        Fault("body", status=201, body="", method="POST", path="/accounting/payments", after_write=True),
        Fault("status", status=503, path="/accounting/payments", connection=panora_rows[0][0], times=100, skip=0),
    )
    both_providers = {"providers": ("panora", "rootfi"), "settle_seconds": 0.2}
    first = push(loaded, **both_providers)

    statuses = {k: v[0] for k, v in ledger(loaded).items()}
    assert statuses["mix-2"] == statuses["mix-3"] == "submitted"  # their job is followed next time, never resent
    assert sorted([statuses["mix-0"], statuses["mix-1"]]) == ["created", "unknown"]  # the empty 201 is unknown
    assert len(first.errors) == 1 and "503" in first.errors[0] and not first.ok
    job_errors = loaded.query(f"SELECT error FROM {DATASET}.push_log WHERE external_id IN ('mix-2', 'mix-3')")
    assert all("could not be read" in e for (e,) in job_errors)

    rootfi.clear_faults()
    sandbox.clear_faults()
    second = push(loaded, **both_providers)

    assert second.ok and second.outcomes == {"created": 3}
    assert {k: v[0] for k, v in ledger(loaded).items()} == dict.fromkeys(
        ("mix-0", "mix-1", "mix-2", "mix-3"), "created"
    )
    assert created_in_api(sandbox, "mix-0") == created_in_api(sandbox, "mix-1") == 1
    assert {d: rootfi.store.created_by_document[d] for d in ("mix-2", "mix-3")} == {"mix-2": 1, "mix-3": 1}


def test_a_rootfi_answer_that_is_no_job_leaves_the_payments_unknown_then_found_not_resent(loaded, rootfi):
    ((connection, invoice_id, currency),) = loaded.query(
        f"SELECT connection, invoice_id, currency FROM {M}.accounting__invoice_settlement WHERE invoice_id LIKE "
        "'rootfi:%' AND status IN ('unpaid', 'partially_paid') AND open_minor >= 1000 LIMIT 1"
    )
    with duckdb.connect(str(loaded.path)) as con:
        con.execute(
            f"INSERT INTO {DATASET}.outbound_payments (external_id, connection, invoice_id, currency, total_amount, "
            "transaction_date) VALUES ('no-job', ?, ?, ?, 100, '2026-11-20')",
            [connection, invoice_id, currency],
        )
    fault = Fault("body", status=200, body="[]", method="POST", path="/accounting/invoice_payments", after_write=True)
    rootfi.inject(fault)

    summary = push_rootfi(loaded)

    assert fault.fired == 1 and summary.outcomes == {"created": 1}
    assert rootfi.store.created_by_document["no-job"] == 1 and posts(loaded) == 1
    kinds = [r[0] for r in loaded.query(
        f"SELECT status FROM {DATASET}.push_attempts WHERE external_id = 'no-job' ORDER BY happened_at")]  # fmt: skip
    assert kinds == ["pending", "unknown", "created"]


def test_exported_text_never_runs_as_a_formula_and_numbers_stay_numbers(loaded, tmp_path):
    assert [spreadsheet_safe(v) for v in ("=1+1", "+33", "-x", "@SUM(A1)", "\tx", "\rx", "INV-1")] == [
        "'=1+1", "'+33", "'-x", "'@SUM(A1)", "'\tx", "'\rx", "INV-1"
    ]  # fmt: skip
    assert [spreadsheet_safe(v) for v in (-5, Decimal("-1.5"), 0, None, True)] == [-5, Decimal("-1.5"), 0, "", "true"]
    mismatch = loaded.query(
        f"SELECT invoice_id FROM {M}.accounting__invoice_settlement WHERE status = 'balance_mismatch' LIMIT 1"
    )[0][0]
    with duckdb.connect(str(loaded.path)) as con:
        con.execute(f"UPDATE {DATASET}.invoices SET number = '=HYPERLINK(\"http://evil\")' WHERE id = ?", [mismatch])
    from pipelines.transform import transform_database

    transform_database(str(loaded.path))
    written = write_report(loaded.path, tmp_path / "report")
    with open(written.path.parent / "balance_mismatches.csv", newline="", encoding="utf-8") as handle:
        rows = {r["invoice_id"]: r for r in csv.DictReader(handle)}
    assert rows[mismatch]["number"] == '\'=HYPERLINK("http://evil")'
    # every amount is the model's, written as a number a spreadsheet reads as one (never behind an apostrophe)
    amounts = ("total_amount", "applied_amount", "expected_balance", "reported_balance")
    stored = {r[0]: r[1:] for r in loaded.query(
        f"SELECT invoice_id, {', '.join(amounts)} FROM {M}.accounting__balance_mismatches")}  # fmt: skip
    assert set(rows) == set(stored)
    for invoice_id, row in rows.items():
        for column, value in zip(amounts, stored[invoice_id], strict=True):
            cell, shown = row[column], "" if value is None else str(value)
            assert cell == shown or (not cell.startswith("'") and Decimal(cell) == value), (invoice_id, column, cell)


def test_the_report_survives_invoices_and_payments_without_a_currency(warehouse, sandbox, tmp_path):
    invoice = sandbox.store.all("acme-eu", "invoices")[0]
    sandbox.store.delete("acme-eu", "invoices", invoice["id"])
    sandbox.store.insert("acme-eu", "invoices", {k: v for k, v in invoice.items() if k != "currency"})
    payment = sandbox.store.all("acme-eu", "payments")[0]
    sandbox.store.update("acme-eu", "payments", payment["id"], currency=None, invoice_id=None)
    assert warehouse.load(transform=True).models

    written = write_report(warehouse.path, tmp_path / "report")

    page = written.path.read_text()
    assert "no currency" in page and ">None<" not in page


@pytest.mark.parametrize("name", ["my-data", "Accounting", "x; DROP TABLE y", "1st", "a" * 64])
def test_a_dataset_name_that_cannot_work_is_refused_before_anything_loads(warehouse, sandbox, name):
    with pytest.raises(ConfigurationError, match="lowercase letters"):
        run_load(
            "panora",
            api_key=sandbox.api_key,
            connections=sandbox.store.tokens(),
            base_url=sandbox.url,
            dataset_name=name,
            destination=dlt.destinations.duckdb(credentials=str(warehouse.path)),
            pipelines_dir=str(warehouse.pipelines_dir),
        )
    assert not warehouse.path.exists()
    assert sandbox.stats.snapshot()["total_requests"] == 0


def test_bad_names_exit_2_from_every_command(sandbox, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for key, value in cli_env(sandbox, tmp_path / "w.duckdb", tmp_path).items():
        if key.startswith(("SOURCES__", "DESTINATION__")):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("ACCOUNTING_ETL__DATASET_NAME", "raw; DROP SCHEMA main")
    for command in (["load"], ["push"], ["transform"]):
        assert main(command) == 2, command
        err = capsys.readouterr().err
        assert "lowercase letters" in err and "Traceback" not in err
    assert not (tmp_path / "w.duckdb").exists()
    assert sandbox.stats.snapshot()["total_requests"] == 0
