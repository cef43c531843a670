"""Reconciliation models on small hand-made data, every expected figure computed by hand (in the comments)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pipelines.models.build import DuckDBDatabase, TransformResult, build_models, inputs_fingerprint
from pipelines.models.dbt_runner import DbtTarget
from pipelines.settings import ConfigurationError
from pipelines.transform import transform_database, write_docs
from tests.support import ROOT

AS_OF = date(2026, 11, 21)
SETTLEMENT = "accounting_raw_reconciliation.accounting__invoice_settlement"
MODEL_RUN = "accounting_raw_reconciliation.accounting__model_run"

RAW_DDL = """
CREATE SCHEMA raw;
CREATE TABLE raw.invoices (id VARCHAR, connection VARCHAR, provider VARCHAR, number VARCHAR, status VARCHAR,
  type VARCHAR, issue_date TIMESTAMPTZ, due_date TIMESTAMPTZ, currency VARCHAR, total_amount BIGINT,
  sub_total BIGINT, total_tax_amount BIGINT, balance BIGINT, exchange_rate DECIMAL(38,12), contact_id VARCHAR,
  created_at TIMESTAMPTZ, modified_at TIMESTAMPTZ, deleted_at TIMESTAMPTZ);
CREATE TABLE raw.payments (id VARCHAR, connection VARCHAR, provider VARCHAR, invoice_id VARCHAR,
  transaction_date TIMESTAMPTZ, currency VARCHAR, total_amount BIGINT, exchange_rate DECIMAL(38,12), type VARCHAR,
  contact_id VARCHAR, account_id VARCHAR, remote_id VARCHAR, created_at TIMESTAMPTZ, deleted_at TIMESTAMPTZ);
CREATE TABLE raw.payments__line_items (payment_id VARCHAR, line_index INTEGER, related_object_type VARCHAR,
  related_object_id VARCHAR, applied_amount BIGINT);
CREATE TABLE raw.invoices__line_items (invoice_id VARCHAR, line_index INTEGER, connection VARCHAR,
  description VARCHAR, quantity BIGINT, unit_price BIGINT, total_amount BIGINT, item_id VARCHAR);
CREATE TABLE raw.invoices__line_items__tracking_categories (invoice_id VARCHAR, line_index INTEGER,
  position INTEGER, tracking_category_id VARCHAR);
CREATE TABLE raw.tracking_categories (id VARCHAR, name VARCHAR);
CREATE TABLE raw.invoices__tracking_categories (invoice_id VARCHAR, position INTEGER, tracking_category_id VARCHAR);
CREATE TABLE raw.payments__tracking_categories (payment_id VARCHAR, position INTEGER, tracking_category_id VARCHAR);
"""

# id, status, currency, total, balance (None = absent in the API), due date, deleted
INVOICES = [
    ("I1", "PAID", "EUR", 10000, None, "2026-10-01", False),  # paid by P1 in full: settled
    ("I2", "PARTIALLY_PAID", "EUR", 10000, 4000, "2026-11-10", False),  # 6000 via P2's line item: partially
    ("I3", "PAID", "JPY", 5000, None, "2026-10-01", False),  # P3: 6000 via invoice_id AND line item, once: overpaid
    ("I4", "OPEN", "KWD", 12345, 12345, "2026-10-01", False),  # only a deleted payment: unpaid, 12.345 KWD
    ("I5", "PARTIALLY_PAID", "EUR", 20000, 5000, "2026-07-01", False),  # applied 10000 -> 10000 != 5000: mismatch
    ("I6", "VOID", "EUR", 7000, 7000, "2026-10-01", False),  # void: out of receivables
    ("I7", "PAID", "EUR", 3000, None, "2026-09-15", False),  # PAID, no payment, absent balance read as 0: mismatch
    ("I8", "OPEN", "EUR", 9000, None, "2026-12-01", False),  # OPEN, absent balance: not compared; unpaid, not due
    ("I9", "OPEN", "EUR", 5555, 5555, "2026-10-01", True),  # deleted upstream: not in the models
    ("I10", "PAID", "EUR", 3000, None, "2026-10-01", False),  # P9 + P10 (duplicates) settle it
    ("I11", "OPEN", "EUR", 100, 100, "2026-10-22", False),  # 30 days past due: 1-30
    ("I12", "OPEN", "EUR", 200, 200, "2026-10-21", False),  # 31 days past due: 31-60
    ("I13", "OPEN", "EUR", 300, 300, "2026-11-21", False),  # due today: current
]
# id, currency, total, invoice_id, transaction date, deleted
PAYMENTS = [
    ("P1", "EUR", 10000, "I1", "2026-10-05", False),
    ("P2", "EUR", 6000, None, "2026-10-06", False),
    ("P3", "JPY", 6000, "I3", "2026-10-07", False),
    ("P5", "EUR", 10000, "I5", "2026-10-08", False),
    ("P6", "EUR", 2500, None, "2026-10-09", False),  # no invoice: unapplied
    ("P7", "EUR", 1000, "I-missing", "2026-10-10", False),  # invoice not in the warehouse: unapplied
    ("P8", "GBP", 4000, "I2", "2026-10-11", False),  # GBP payment on a EUR invoice: currency mismatch
    ("P9", "EUR", 1500, "I10", "2026-10-12", False),  # P9 and P10: same invoice, amount, date
    ("P10", "EUR", 1500, "I10", "2026-10-12", False),
    ("P11", "KWD", 12345, "I4", "2026-10-13", True),  # deleted: applies to nothing
]
PAYMENT_LINES = [("P2", 0, "INVOICE", "I2", 6000), ("P3", 0, "INVOICE", "I3", 6000)]


def fill_raw(con) -> None:
    con.execute(RAW_DDL)
    for inv_id, status, currency, total, balance, due, deleted in INVOICES:
        con.execute(
            "INSERT INTO raw.invoices (id, connection, provider, number, status, currency, total_amount, balance, "
            "due_date, issue_date, deleted_at) VALUES (?, 'c1', 'panora', ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                inv_id,
                f"N-{inv_id}",
                status,
                currency,
                total,
                balance,
                due,
                "2026-09-01",
                "2026-11-01" if deleted else None,
            ],
        )
    for pay_id, currency, total, invoice_id, when, deleted in PAYMENTS:
        con.execute(
            "INSERT INTO raw.payments (id, connection, provider, currency, total_amount, invoice_id, "
            "transaction_date, deleted_at) VALUES (?, 'c1', 'panora', ?, ?, ?, ?, ?)",
            [pay_id, currency, total, invoice_id, when, "2026-11-01" if deleted else None],
        )
    con.executemany("INSERT INTO raw.payments__line_items VALUES (?, ?, ?, ?, ?)", PAYMENT_LINES)
    con.execute("INSERT INTO raw.invoices__line_items VALUES ('I2', 0, 'c1', 'Consulting', 2, 5000, 10000, 'item-1')")
    con.execute("INSERT INTO raw.tracking_categories VALUES ('tc1', 'Sales'), ('tc2', 'EMEA')")
    con.execute(
        "INSERT INTO raw.invoices__line_items__tracking_categories VALUES ('I2', 0, 0, 'tc1'), ('I2', 0, 1, 'tc2')"
    )
    con.execute("INSERT INTO raw.invoices__tracking_categories VALUES ('I1', 0, 'tc2')")
    con.execute("INSERT INTO raw.payments__tracking_categories VALUES ('P1', 0, 'tc1'), ('P1', 1, 'tc2')")


def build(path: Path, as_of: date = AS_OF, **options) -> TransformResult:
    """`dbt build` of the project on the DuckDB file `path`, whose raw tables are in schema `raw`."""

    @contextmanager
    def open_database() -> Iterator[DuckDBDatabase]:
        with duckdb.connect(str(path)) as con:
            yield DuckDBDatabase(con)

    return build_models(open_database, DbtTarget.duckdb(str(path), "raw"), path.parent / "dbt", as_of=as_of, **options)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, TransformResult]:
    """The hand-made data, built once for the module (a dbt build takes seconds)."""
    path = tmp_path_factory.mktemp("hand") / "hand.duckdb"
    with duckdb.connect(str(path)) as con:
        fill_raw(con)
    result = build(path)
    assert result.skipped is None and result.error is None, result.error
    return path, result


@pytest.fixture
def models(built):
    """A connection on the built models (schema `raw_reconciliation` first on the search path)."""
    with duckdb.connect(str(built[0]), read_only=True) as con:
        con.execute("SET search_path = 'raw_reconciliation'")
        yield con


def rows(con, sql):
    return con.execute(sql).fetchall()


def test_every_status(models):
    statuses = dict(rows(models, "SELECT invoice_id, status FROM accounting__invoice_settlement"))
    assert statuses == {
        "I1": "settled",
        "I2": "partially_paid",
        "I3": "overpaid",
        "I4": "unpaid",
        "I5": "balance_mismatch",
        "I6": "void",
        "I7": "balance_mismatch",
        "I8": "unpaid",
        "I10": "settled",
        "I11": "unpaid",
        "I12": "unpaid",
        "I13": "unpaid",
    }


def test_applications_are_counted_once_and_in_the_invoice_currency(models):
    applied = dict(rows(models, "SELECT invoice_id, applied_minor FROM accounting__invoice_settlement"))
    assert applied["I3"] == 6000  # line item and invoice_id name the same application: not 12000
    assert applied["I2"] == 6000  # P8 is GBP: not summed into a EUR invoice
    assert applied["I10"] == 3000 and applied["I4"] == 0  # P11 is deleted
    i3 = rows(
        models,
        "SELECT expected_balance_minor, open_minor, open_amount FROM accounting__invoice_settlement "
        "WHERE invoice_id = 'I3'",
    )
    assert i3 == [(-1000, 0, Decimal("0"))]


def test_absent_amounts_are_flagged_where_they_decide(models):
    flags = {
        r[0]: r[1:]
        for r in rows(
            models, "SELECT invoice_id, absent_amount_decides, balance_not_compared FROM accounting__invoice_settlement"
        )
    }
    assert flags["I7"] == (True, False)  # PAID with no payment: only the read-as-0 balance makes it a mismatch
    assert flags["I8"] == (False, True)  # OPEN with no balance: could not be compared
    assert flags["I1"] == (False, False)  # PAID, read as 0, and 0 is expected anyway: decides nothing


def test_amounts_use_the_currencys_own_exponent(models):
    amounts = dict(rows(models, "SELECT invoice_id, total_amount FROM accounting__invoice_settlement"))
    assert amounts["I1"] == Decimal("100.00")  # EUR: 2 decimals
    assert amounts["I3"] == Decimal("5000")  # JPY: 0 decimals, not 50.00
    assert amounts["I4"] == Decimal("12.345")  # KWD: 3 decimals, not 123.45


def test_exception_lists(models):
    assert rows(
        models, "SELECT payment_id, reason, missing_invoice_ids FROM accounting__unapplied_payments ORDER BY 1"
    ) == [("P6", "no_invoice", None), ("P7", "invoice_not_in_warehouse", "I-missing")]
    assert rows(
        models, "SELECT payment_id, invoice_id, payment_currency, invoice_currency FROM accounting__currency_mismatches"
    ) == [("P8", "I2", "GBP", "EUR")]
    assert rows(
        models,
        "SELECT payment_id, invoice_id, group_size, duplicate_group FROM accounting__duplicate_payments ORDER BY 1",
    ) == [("P10", "I10", 2, 1), ("P9", "I10", 2, 1)]
    assert "I9" not in {r[0] for r in rows(models, "SELECT invoice_id FROM accounting__invoice_settlement")}


def test_aging_buckets_hold_open_amounts_with_inclusive_bounds(models):
    aging = rows(
        models,
        "SELECT currency, bucket, invoices, open_amount FROM accounting__receivables_aging "
        "ORDER BY currency, bucket_order",
    )
    assert aging == [
        ("EUR", "current", 2, Decimal("93.00")),  # I8 90.00 + I13 3.00 (due today)
        ("EUR", "1-30", 2, Decimal("41.00")),  # I2 40.00 open (not its 100.00 total) + I11 1.00 (30 days)
        ("EUR", "31-60", 1, Decimal("2.00")),  # I12, 31 days
        ("EUR", "61-90", 1, Decimal("30.00")),  # I7
        ("EUR", "90+", 1, Decimal("100.00")),  # I5: 200.00 - 100.00 applied
        ("KWD", "31-60", 1, Decimal("12.345")),  # I4, 51 days
    ]


def test_summary_per_connection_and_currency(models):
    summary = {
        r[0]: r[1:]
        for r in rows(
            models,
            "SELECT currency, invoices, settled, partially_paid, overpaid, unpaid, balance_mismatch, void_or_draft, "
            "invoiced_amount, applied_amount, open_amount, unapplied_payments, unapplied_amount, currency_mismatches, "
            "duplicate_payments FROM accounting__reconciliation_summary WHERE connection = 'c1'",
        )
    }
    assert summary["EUR"] == (
        10, 2, 1, 0, 4, 2, 1,
        Decimal("556.00"),  # I1 100 + I2 100 + I5 200 + I7 30 + I8 90 + I10 30 + I11 1 + I12 2 + I13 3
        Decimal("290.00"),  # I1 100 + I2 60 + I5 100 + I10 30
        Decimal("266.00"),  # I2 40 + I5 100 + I7 30 + I8 90 + I11 1 + I12 2 + I13 3
        2, Decimal("35.00"), 1, 2,
    )  # fmt: skip
    assert summary["JPY"][:5] == (1, 0, 0, 1, 0)
    assert summary["KWD"][9] == Decimal("12.345")


def test_tracking_category_names_are_joined_in_order(models):
    assert rows(models, "SELECT tracking_categories FROM stg_accounting__invoice_line_items") == [("Sales, EMEA",)]
    assert rows(models, "SELECT tracking_categories FROM stg_accounting__invoices WHERE invoice_id = 'I1'") == [
        ("EMEA",)
    ]
    assert rows(models, "SELECT tracking_categories FROM stg_accounting__payments WHERE payment_id = 'P1'") == [
        ("Sales, EMEA",)
    ]


def test_dbt_ran_every_test_of_the_project_and_they_passed(built):
    _, result = built
    # grains (unique, not_null, unique_key), accepted values, relationships, and the integrity checks
    assert result.tests_passed >= 40 and not result.failures
    assert {"accounting__invoice_settlement", "accounting__balance_mismatches", "accounting__currencies"} <= set(
        result.rows
    )


def test_the_exception_lists_of_the_report_are_models(models):
    assert rows(models, "SELECT invoice_id FROM accounting__balance_mismatches ORDER BY invoice_id") == [
        ("I5",),
        ("I7",),
    ]
    assert rows(models, "SELECT invoice_id, overpaid_by FROM accounting__overpaid_invoices") == [
        ("I3", Decimal("1000"))
    ]
    assert rows(models, "SELECT invoice_id FROM accounting__absent_amounts ORDER BY invoice_id") == [("I7",), ("I8",)]


def test_a_build_in_another_file_of_the_same_name_builds_that_files_data(built, tmp_path):
    """One process reuses dbt's parse for files named alike (the relations are named by the file's stem): each
    build still reads and writes its own file."""
    path = tmp_path / "hand.duckdb"
    shutil.copy(built[0], path)
    with duckdb.connect(str(path)) as con:
        con.execute("DELETE FROM raw.invoices WHERE id IN ('I1', 'I2')")
    assert build(path).error is None
    with duckdb.connect(str(path), read_only=True) as copy, duckdb.connect(str(built[0]), read_only=True) as first:
        sql = "SELECT count(*) FROM raw_reconciliation.accounting__invoice_settlement"
        assert copy.execute(sql).fetchone()[0] == first.execute(sql).fetchone()[0] - 2


@pytest.fixture(scope="module")
def docs_site(built, tmp_path_factory) -> Path:
    """dbt's docs site of the hand-made data, written once for the module: its index.html."""
    return write_docs(tmp_path_factory.mktemp("docs") / "docs", str(built[0]), "raw")


def test_the_docs_site_documents_every_model_and_its_lineage(docs_site):
    page = docs_site
    assert page.name == "index.html" and page.stat().st_size > 100_000  # dbt's static site, one file
    manifest = json.loads((page.parent / "manifest.json").read_text())
    settlement = manifest["nodes"]["model.accounting.accounting__invoice_settlement"]
    assert "model.accounting.int_accounting__payment_applications" in settlement["depends_on"]["nodes"]
    assert settlement["description"]
    staging = manifest["nodes"]["model.accounting.stg_accounting__payments"]
    assert "source.accounting.accounting.payments" in staging["depends_on"]["nodes"]  # lineage from the loads
    catalog = json.loads((page.parent / "catalog.json").read_text())
    assert "model.accounting.accounting__reconciliation_summary" in catalog["nodes"]


def test_every_column_of_every_model_is_described_in_the_order_of_its_table(docs_site):
    """The yml files of the models describe each built table's columns, in its order, in words (the report
    and the notebooks read these tables; an analyst reads the descriptions in the docs site)."""
    manifest = json.loads((docs_site.parent / "manifest.json").read_text())
    catalog = json.loads((docs_site.parent / "catalog.json").read_text())
    models = {k: v for k, v in manifest["nodes"].items() if v["resource_type"] == "model"}
    assert len(models) >= 16
    for key, node in models.items():
        built_columns = sorted(catalog["nodes"][key]["columns"].values(), key=lambda c: c["index"])
        assert list(node["columns"]) == [c["name"] for c in built_columns], node["name"]
        undescribed = [n for n, c in node["columns"].items() if not c["description"] or "{{" in c["description"]]
        assert not undescribed, (node["name"], undescribed)


def test_the_columns_the_report_names_are_described(docs_site):
    from pipelines.report import EXCEPTIONS

    manifest = json.loads((docs_site.parent / "manifest.json").read_text())
    for exception in EXCEPTIONS:
        described = manifest["nodes"][f"model.accounting.accounting__{exception.name}"]["columns"]
        named = [c.strip() for c in exception.columns.split(",") if c.strip() != "*"]
        assert set(named) <= set(described), exception.name


def test_a_dataset_whose_models_schema_cannot_be_named_loads_and_says_why(warehouse):
    long = "d" * 60  # a valid dataset, but `<dataset>_reconciliation` is past the 63 characters a schema may have
    summary = warehouse.load(dataset_name=long, resources=["tracking_categories"], transform=True)
    assert summary.status == "ok" and warehouse.scalar(f"SELECT count(*) FROM {long}.tracking_categories") > 0
    assert "models schema" in summary.models_error and not summary.models
    with pytest.raises(ConfigurationError, match="models schema"):
        transform_database(str(warehouse.path), long)


def test_transforms_wait_for_the_raw_tables(tmp_path):
    path = tmp_path / "early.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA raw; CREATE TABLE raw.payments (id VARCHAR)")
    result = build(path)
    assert result.skipped and "invoices" in result.skipped
    assert not (tmp_path / "dbt").exists()  # dbt did not run


def test_failing_tests_and_models_are_reported_and_the_rest_is_built(built, tmp_path, monkeypatch):
    """A duplicate invoice breaks a grain test; an analyst's model with an error fails. Both are named, an
    analyst's good model is built by `transform`, what depends on the failure is not, and model_run keeps
    the last complete build (the next load builds again)."""
    path = tmp_path / "hand.duckdb"
    shutil.copy(built[0], path)
    with duckdb.connect(str(path)) as con:
        con.execute("INSERT INTO raw.invoices (id, connection, status, currency, total_amount) VALUES "
                    "('I1', 'c2', 'OPEN', 'EUR', 1)")  # fmt: skip
    analyst = tmp_path / "analyst"
    analyst.mkdir()
    (analyst / "payments_per_currency.sql").write_text(
        "SELECT currency, count(*) AS payments FROM {{ ref('stg_accounting__payments') }} GROUP BY currency"
    )
    (analyst / "broken.sql").write_text("SELECT no_such_column FROM {{ ref('stg_accounting__payments') }}")
    monkeypatch.setenv("ACCOUNTING_ETL__ANALYST_MODELS", str(analyst))

    result = transform_database(str(path), "raw", as_of=date(2027, 1, 1))

    assert result.error and len(result.failures) == 2, result.failures
    assert any("unique_stg_accounting__invoices_invoice_id" in f and "1 row(s)" in f for f in result.failures)
    assert any(f.startswith("model broken error") and "no_such_column" in f for f in result.failures)
    assert "accounting__invoice_settlement" in result.not_built
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT currency, payments FROM raw_reconciliation.payments_per_currency "
                           "ORDER BY currency").fetchall()[0] == ("EUR", 7)  # fmt: skip
        assert con.execute("SELECT as_of FROM raw_reconciliation.accounting__model_run").fetchone() == (AS_OF,)


def applied_amounts_from_the_api(sandbox) -> dict[str, int]:
    """Integrity check in the manner of the accounting dbt packages: each invoice's applied amount rebuilt
    straight from the API's records, in Python."""
    expected: dict[str, int] = {}
    for alias in ("acme-eu", "acme-us", "globex-jp"):
        invoices = {i["id"]: i for i in sandbox.store.all(alias, "invoices")}
        for payment in sandbox.store.all(alias, "payments"):
            lines = [li for li in payment["line_items"] if li.get("related_object_type") == "INVOICE"]
            applications = [(li["related_object_id"], li.get("applied_amount", 0)) for li in lines]
            if not applications and payment.get("invoice_id"):
                applications = [(payment["invoice_id"], payment.get("total_amount", 0))]
            for invoice_id, amount in applications:
                invoice = invoices.get(invoice_id)
                if invoice is not None and invoice["currency"] == payment["currency"]:
                    expected[invoice_id] = expected.get(invoice_id, 0) + amount
    return expected


def test_a_load_that_changed_nothing_leaves_the_models_as_they_were(warehouse, sandbox):
    first = warehouse.load(transform=True)
    assert first.models and not first.models_up_to_date and not first.models_error
    with duckdb.connect(str(warehouse.path), read_only=True) as con:
        model = dict(con.execute(f"SELECT invoice_id, applied_minor FROM {SETTLEMENT}").fetchall())
    assert len(model) == 150
    assert {k: v for k, v in model.items() if v} == applied_amounts_from_the_api(sandbox)
    built_at = warehouse.scalar(f"SELECT built_at FROM {MODEL_RUN}")

    again = warehouse.load(transform=True)  # the same records: nothing written, the models read what they read before
    assert sum(again.rows_per_table.values()) == 0
    assert again.models_up_to_date and again.models == first.models
    assert "up to date" in again.render()
    assert warehouse.scalar(f"SELECT built_at FROM {MODEL_RUN}") == built_at

    # a changed record: what the models are built from is no longer what they were built from (the build
    # that follows is the deletion's, below)
    built_from, as_of = warehouse.query(f"SELECT inputs_fingerprint, as_of FROM {MODEL_RUN}")[0]

    def fingerprint() -> str | None:
        with duckdb.connect(str(warehouse.path), read_only=True) as con:
            return inputs_fingerprint(DuckDBDatabase(con), "accounting_raw", as_of)

    assert fingerprint() == built_from
    payment = sandbox.store.all("acme-eu", "payments")[0]
    sandbox.store.update("acme-eu", "payments", payment["id"], total_amount=payment["total_amount"] + 1)
    assert sum(warehouse.load().rows_per_table.values()) > 0
    changed = fingerprint()
    assert changed is not None and changed != built_from

    # a load whose only change is a deletion marks it with an update after its load step: the models see it
    # (the deletion alone changes what they are built from, read at the same as-of date)
    rebuilt_at = built_at
    gone = sandbox.store.all("acme-eu", "payments")[1]
    sandbox.store.delete("acme-eu", "payments", gone["id"])
    deleted = warehouse.load(transform=True)
    assert warehouse.count("payments", "deleted_at IS NOT NULL") == 1
    assert fingerprint() not in (None, changed)
    assert not deleted.models_up_to_date
    assert warehouse.scalar(f"SELECT built_at FROM {MODEL_RUN}") > rebuilt_at

    # another as-of date gives other ages: what the models are built from differs, so the next load builds them
    with duckdb.connect(str(warehouse.path), read_only=True) as con:
        today, later = (
            inputs_fingerprint(DuckDBDatabase(con), "accounting_raw", day) for day in (AS_OF, date(2031, 1, 1))
        )
    assert today and later and today != later


def test_a_load_parses_the_models_while_the_warehouse_loads(warehouse, monkeypatch):
    """dbt's import and parse run in a thread during the load step, so the build after it starts at once; a
    load that wrote nothing starts no parse (its models are up to date)."""
    from dbt.cli.main import dbtRunner

    from pipelines.models import dbt_runner

    monkeypatch.setattr(dbt_runner, "_MANIFESTS", {})  # nothing parsed yet in this process
    calls: list[tuple[str, str]] = []
    invoke = dbtRunner.invoke

    def recorded(self, args, **kwargs):
        calls.append((args[0], threading.current_thread().name))
        return invoke(self, args, **kwargs)

    monkeypatch.setattr(dbtRunner, "invoke", recorded)
    summary = warehouse.load(transform=True)
    assert summary.models and not summary.models_error
    assert [command for command, _ in calls] == ["parse", "build"]
    assert calls[0][1].startswith("dbt-parse") and calls[1][1] == threading.main_thread().name

    calls.clear()
    again = warehouse.load(transform=True)
    assert again.models_up_to_date and calls == []


def test_a_load_that_crosses_midnight_parses_and_builds_the_models_for_the_day_it_started(warehouse, monkeypatch):
    """The models parsed ahead and the models built age to one date: the day the load started (UTC), however
    late the build comes; or the date the load is given."""
    from dbt.cli.main import dbtRunner

    from pipelines.models import build as run
    from pipelines.models import dbt_runner

    class LateClock(datetime):
        """Every reading of the models' clock a day after the one before: midnight falls between any two."""

        readings = 0

        @classmethod
        def now(cls, tz: Any = None) -> datetime:
            cls.readings += 1
            return datetime(2031, 1, 1, 12, tzinfo=UTC) + timedelta(days=cls.readings)

    monkeypatch.setattr(run, "datetime", LateClock)
    monkeypatch.setattr(dbt_runner, "_MANIFESTS", {})  # nothing parsed yet in this process
    as_of_by_command: list[tuple[str, str]] = []
    invoke = dbtRunner.invoke

    def recorded(self, args, **kwargs):
        as_of_by_command.append((args[0], json.loads(args[args.index("--vars") + 1])["as_of"]))
        return invoke(self, args, **kwargs)

    monkeypatch.setattr(dbtRunner, "invoke", recorded)
    summary = warehouse.load(transform=True)
    assert summary.models and not summary.models_error
    started = summary.started_at.date().isoformat()
    assert as_of_by_command == [("parse", started), ("build", started)]
    assert warehouse.scalar(f"SELECT as_of FROM {MODEL_RUN}") == summary.started_at.date()

    as_of_by_command.clear()
    given = warehouse.load(transform=True, as_of=date(2030, 6, 30))  # a date given: the models rebuilt for it
    assert given.models and as_of_by_command[-1] == ("build", "2030-06-30")
    assert {as_of for _, as_of in as_of_by_command} == {"2030-06-30"}
    assert warehouse.scalar(f"SELECT as_of FROM {MODEL_RUN}") == date(2030, 6, 30)


PARSE_AND_READ_MANIFESTS = """
import sys
from pipelines.transform import project_manifest
for _ in range(int(sys.argv[1])):
    assert project_manifest()["nodes"]
"""


def test_processes_parsing_the_project_at_once_each_read_a_whole_manifest(tmp_path):
    """Dagster's code servers (and the test workers) each parse the project as they start, into one work
    folder: none may read the manifest while another process writes it."""
    env = {**os.environ, "DLT_DATA_DIR": str(tmp_path / "shared-dlt-data")}
    started = [
        subprocess.Popen(
            [sys.executable, "-c", PARSE_AND_READ_MANIFESTS, "3"],
            cwd=ROOT,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    errors = [process.communicate(timeout=240)[1] for process in started]
    failures = [err or "(no message)" for process, err in zip(started, errors, strict=True) if process.returncode]
    assert not failures, failures[0][-2000:]
