"""The same loads and models on a real PostgreSQL server as on DuckDB, chosen by dlt configuration only.

The server's address comes from `ACCOUNTING_TEST_POSTGRES` (a `postgresql://user:password@host:port/db`
URL; `.ci/run` starts Debian's PostgreSQL and sets it). Without it these tests skip and say so. Each test
loads into a dataset (schema) of its own and drops it afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import dlt
import duckdb
import pytest

from pipelines.load import run_load
from pipelines.models.build import FX_RATES_COLUMNS
from tests.support import DATA_TABLES, FAST_RETRIES, M, Warehouse

POSTGRES_URL = os.environ.get("ACCOUNTING_TEST_POSTGRES")
pytestmark = pytest.mark.skipif(
    not POSTGRES_URL,
    reason="no PostgreSQL server given: set ACCOUNTING_TEST_POSTGRES=postgresql://user:pass@host:port/db "
    "(.ci/run starts one) to run the PostgreSQL tests",
)


class Postgres:
    """One dataset on the test server, loaded the way `accounting-etl load` would with
    ACCOUNTING_ETL__DESTINATION=postgres and DESTINATION__POSTGRES__CREDENTIALS set."""

    def __init__(self, warehouse: Warehouse, dataset: str) -> None:
        self.warehouse = warehouse
        self.dataset = dataset
        self.pipelines_dir = warehouse.pipelines_dir.parent / "pg-pipelines"
        self.models = f"{dataset}_reconciliation"  # the dataset's own models schema

    def load(self, provider: str, **kwargs: Any):
        w = self.warehouse
        server = w.rootfi if provider == "rootfi" else w.sandbox
        accounts = server.store.company_ids() if provider == "rootfi" else server.store.tokens()
        options = {**FAST_RETRIES, "page_size": 15, **kwargs.pop("source_options", {})}
        return run_load(
            provider,
            api_key=server.api_key,
            connections=accounts,
            base_url=server.url,
            destination=dlt.destinations.postgres(credentials=POSTGRES_URL),
            dataset_name=self.dataset,
            pipeline_name=f"pg_{provider}",
            pipelines_dir=str(self.pipelines_dir),
            source_options=options,
            **kwargs,
        )

    def query(self, sql: str, *args: Any) -> list[tuple]:
        import psycopg2

        with psycopg2.connect(POSTGRES_URL) as con, con.cursor() as cursor:
            cursor.execute("SET TIME ZONE 'UTC'")
            cursor.execute(sql, args or None)
            return cursor.fetchall()

    def drop(self) -> None:
        import psycopg2

        with psycopg2.connect(POSTGRES_URL) as con, con.cursor() as cursor:
            for schema in (self.dataset, f"{self.dataset}_staging", f"{self.dataset}_reconciliation"):
                cursor.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
def postgres(both: Warehouse) -> Iterator[Postgres]:
    target = Postgres(both, f"acct_{uuid.uuid4().hex[:8]}")
    target.drop()
    try:
        yield target
    finally:
        target.drop()


def canonical(rows: list[tuple]) -> list[tuple]:
    """Rows comparable across the two databases: numbers as Decimal, everything else as text."""

    def value(v: Any) -> Any:
        if v is None or isinstance(v, bool):
            return v
        if isinstance(v, int | float | Decimal):
            return Decimal(str(v)).normalize()
        return str(v)

    return sorted((tuple(value(v) for v in row) for row in rows), key=repr)


MODEL_CHECKS = {
    "invoice_settlement": "SELECT invoice_id, connection, currency, status, total_minor, applied_minor, open_minor "
    "FROM {m}.accounting__invoice_settlement",
    "payment_applications": "SELECT payment_id, invoice_id, applied_minor, applied_via, invoice_in_warehouse "
    "FROM {m}.int_accounting__payment_applications",
    "unapplied_payments": "SELECT payment_id, connection FROM {m}.accounting__unapplied_payments",
    "currency_mismatches": "SELECT payment_id, invoice_id FROM {m}.accounting__currency_mismatches",
    "duplicate_payments": "SELECT payment_id, duplicate_group FROM {m}.accounting__duplicate_payments",
    "receivables_aging": "SELECT connection, currency, bucket, invoices, open_minor, open_amount "
    "FROM {m}.accounting__receivables_aging",
    "reconciliation_summary": "SELECT * FROM {m}.accounting__reconciliation_summary",
}


def test_both_providers_load_and_model_the_same_on_postgres_as_on_duckdb(both: Warehouse, postgres: Postgres):
    from datetime import date

    as_of = date(2026, 11, 21)
    assert both.load(transform=False).status == "ok"
    assert both.load_rootfi(as_of=as_of, transform=True).models
    assert postgres.load("panora", transform=False).status == "ok"
    summary = postgres.load("rootfi", as_of=as_of)
    assert summary.status == "ok" and summary.models and not summary.models_error, summary.models_error

    for table in DATA_TABLES:
        duck = both.scalar(f"SELECT count(*) FROM accounting_raw.{table}")
        pg = postgres.query(f"SELECT count(*) FROM {postgres.dataset}.{table}")[0][0]
        assert pg == duck, table
    for column_list in ("id, connection, provider, total_amount, balance, currency, number", "id, invoice_id"):
        table = "invoices" if "balance" in column_list else "payments"
        duck = both.query(f"SELECT {column_list} FROM accounting_raw.{table}")
        pg = postgres.query(f"SELECT {column_list} FROM {postgres.dataset}.{table}")
        assert canonical(pg) == canonical(duck), table
    for name, sql in MODEL_CHECKS.items():
        duck, pg = both.query(sql.format(m=M)), postgres.query(sql.format(m=postgres.models))
        assert duck, name
        assert canonical(pg) == canonical(duck), name
    runs = postgres.query(f"SELECT provider, status FROM {postgres.dataset}.load_runs ORDER BY 1")
    assert runs == [("panora", "ok"), ("rootfi", "ok")]  # the run summaries land there too


def test_incremental_rootfi_and_change_detection_on_postgres(both: Warehouse, postgres: Postgres):
    assert postgres.load("rootfi", source_options={"overlap_seconds": 0}).status == "ok"
    store = both.rootfi.store
    store.update("northwind-uk", "invoices", "INV-4101-0004", amount_due=10.5)
    store.delete("initech-us", "invoice_payments", "PMT-4102-0002")
    summary = postgres.load("rootfi", source_options={"overlap_seconds": 0})
    assert sum(s.written for s in summary.scans) == 2  # the stored hashes were read back from PostgreSQL
    rows = postgres.query(f"SELECT balance FROM {postgres.dataset}.invoices WHERE id = 'rootfi:4101:INV-4101-0004'")
    assert rows == [(1050,)]
    deleted = postgres.query(f"SELECT id FROM {postgres.dataset}.payments WHERE deleted_at IS NOT NULL")
    assert deleted == [("rootfi:4102:PMT-4102-0002",)]


def test_transform_and_report_work_on_postgres_as_on_duckdb(both: Warehouse, postgres: Postgres, monkeypatch, tmp_path):
    from datetime import date

    from pipelines.report import write_report
    from pipelines.transform import transform_database

    as_of = date(2026, 11, 21)
    both.load(transform=False)
    both.load_rootfi(transform=False)
    postgres.load("panora", transform=False)
    postgres.load("rootfi", transform=False)
    # totals in a reporting currency too (half-even rounding, rates, the lists of what has none) on both
    import psycopg2

    rates = "('2026-11-01', 'USD', 'EUR', 0.8623), ('2026-11-01', 'GBP', NULL, 1.1573)"
    with duckdb.connect(str(both.path)) as con:
        con.execute(f"CREATE TABLE accounting_raw.fx_rates ({FX_RATES_COLUMNS})")
        con.execute(f"INSERT INTO accounting_raw.fx_rates VALUES {rates}")
    with psycopg2.connect(POSTGRES_URL) as con, con.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {postgres.dataset}.fx_rates ({FX_RATES_COLUMNS})")
        cursor.execute(f"INSERT INTO {postgres.dataset}.fx_rates VALUES {rates}")
    duck_models = transform_database(str(both.path), as_of=as_of, reporting_currency="EUR")
    duck_report = write_report(both.path, tmp_path / "duckdb")
    # the commands' own configuration: nothing but dlt settings says PostgreSQL
    monkeypatch.setenv("ACCOUNTING_ETL__DESTINATION", "postgres")
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", POSTGRES_URL)
    monkeypatch.setenv("ACCOUNTING_ETL__DATASET_NAME", postgres.dataset)
    pg_models = transform_database(as_of=as_of, reporting_currency="EUR")
    pg_report = write_report(None, tmp_path / "postgres")
    assert pg_models.rows == duck_models.rows
    # empty here: nothing pushed, and no load before the default close (the month before the as-of date)
    empty_without_push = {
        "accounting__awaiting_sync",
        "int_accounting__pushed_payments",
        "accounting__changed_after_close",
    }
    assert all(rows for name, rows in pg_models.rows.items() if name not in empty_without_push)
    # dbt's tests (grains, accepted values, relationships, integrity) pass on both
    assert pg_models.tests_passed == duck_models.tests_passed >= 40
    assert not pg_models.failures and not duck_models.failures

    def normalized(value):
        if isinstance(value, dict):
            return {k: normalized(v) for k, v in value.items()}
        return value if isinstance(value, str) else Decimal(str(value)).normalize()

    assert normalized(pg_report.headline) == normalized(duck_report.headline)
    assert duck_report.headline["reporting"]["open"] > 0
    for duck_csv, pg_csv in zip(duck_report.csv_files, pg_report.csv_files, strict=True):
        duck_rows = duck_csv.read_text().splitlines()
        pg_rows = pg_csv.read_text().splitlines()
        assert duck_rows[0] == pg_rows[0] and len(duck_rows) == len(pg_rows), duck_csv.name


def test_push_with_its_ledger_on_postgres_creates_each_payment_once(both: Warehouse, postgres: Postgres, monkeypatch):
    from pipelines.warehouse.identity import PostgresConnection
    from sandbox.http import Fault
    from tests.support import push

    assert postgres.load("panora").status == "ok"
    assert postgres.load("rootfi").models
    monkeypatch.setenv("ACCOUNTING_ETL__DESTINATION", "postgres")
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", POSTGRES_URL)
    monkeypatch.setenv("ACCOUNTING_ETL__DATASET_NAME", postgres.dataset)
    open_invoices = postgres.query(
        "SELECT DISTINCT ON (provider) provider, connection, invoice_id, currency "
        f"FROM {postgres.models}.accounting__invoice_settlement "
        "WHERE status IN ('unpaid', 'partially_paid') AND open_minor >= 1000 ORDER BY provider, invoice_id"
    )
    assert [r[0] for r in open_invoices] == ["panora", "rootfi"]
    params = {"providers": ("panora", "rootfi"), "database": None}  # the configured PostgreSQL destination
    push(both, dry_run=True, **params)  # creates the queue and the ledger in the PostgreSQL dataset
    con = PostgresConnection.connect(POSTGRES_URL)
    try:
        for provider, connection, invoice_id, currency in open_invoices:
            con.execute(
                f"INSERT INTO {postgres.dataset}.outbound_payments (external_id, connection, invoice_id, currency, "
                "total_amount, transaction_date) VALUES (?, ?, ?, ?, ?, ?)",
                [f"pg-{provider}", connection, invoice_id, currency, 1000, "2026-11-20T00:00:00Z"],
            )
    finally:
        con.close()
    both.sandbox.inject(Fault("status", status=500, method="POST", path="/accounting/payments", after_write=True))
    assert push(both, **params).outcomes == {"created": 2}
    assert push(both, **params).outcomes == {}  # a rerun sends nothing
    panora_created = sum(
        1
        for alias in both.sandbox.store.tokens()
        for record in both.sandbox.store.all(alias, "payments")
        if (record.get("field_mappings") or {}).get("external_id") == "pg-panora"
    )
    assert panora_created == 1 and both.rootfi.store.created_by_document["pg-rootfi"] == 1
    ledger = postgres.query(f"SELECT external_id, status, record_id FROM {postgres.dataset}.push_log ORDER BY 1")
    assert [(e, s) for e, s, _ in ledger] == [("pg-panora", "created"), ("pg-rootfi", "created")]
    assert all(record_id for _, _, record_id in ledger)
