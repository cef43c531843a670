"""Queued rows from CSV files (`pipelines/push/csv_import.py`): amounts in major units read exactly by each
currency's exponent, a bad cell is that row's error, and many rows queue at once."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pytest

from pipelines.push.csv_import import read_csv
from pipelines.push.ledger import ensure_tables
from tests.support import DATASET


def test_major_units_are_read_exactly_by_each_currency_s_exponent():
    from pipelines.push.csv_import import CellError, major_units

    assert major_units("125.00", "EUR") == 12500
    assert major_units("125", "eur") == 12500
    assert major_units("1500", "JPY") == 1500
    assert major_units("1.234", "KWD") == 1234
    assert major_units("12345678901234567.89", "USD") == 1234567890123456789  # no float on the way
    for text, currency in (("1,234.50", "EUR"), ("1.5", "JPY"), ("1e3", "EUR"), ("12.3.4", "EUR"), ("1.00", "XAU")):
        with pytest.raises(CellError):
            major_units(text, currency)


def test_an_invoices_csv_may_give_the_amount_in_major_units(tmp_path):
    from pipelines.push.csv_import import read_csv

    path = tmp_path / "invoices.csv"
    path.write_text(
        "external_id,connection,number,currency,amount\ni-1,acme-eu,N-1,EUR,99.95\ni-2,acme-eu,N-2,EUR,9.999\n"
    )
    read = read_csv(path, table="outbound_invoices")
    assert [row["total_amount"] for row in read.rows] == [9995]
    assert [(r.external_id, r.column) for r in read.rejects] == [("i-2", "amount")]


def test_a_long_cell_or_a_nul_is_that_rows_error_and_15000_rows_queue_at_once(tmp_path):
    path = tmp_path / "bank.csv"
    path.write_text(
        "external_id,connection,currency,total_amount,type\n"
        f"long,acme-eu,EUR,100,{'x' * 200_000}\n"
        "nul,acme-eu,EUR,100,a\x00b\n"
        "fine,acme-eu,EUR,100,Bank transfer\n"
    )
    read = read_csv(path)
    assert [r["external_id"] for r in read.rows] == ["fine"]
    assert {(r.external_id, r.column) for r in read.rejects} == {("long", "type"), ("nul", "type")}
    many = tmp_path / "many.csv"
    many.write_text("external_id,connection,currency,total_amount,transaction_date\n" + "".join(
        f"bulk-{n},acme-eu,EUR,{n + 1},2026-11-20\n" for n in range(15_000)))  # fmt: skip
    from pipelines.push.csv_import import queue_rows

    with duckdb.connect(str(tmp_path / "q.duckdb")) as con:
        ensure_tables(con, DATASET)
        started = datetime.now(UTC)
        assert queue_rows(con, DATASET, "outbound_payments", read_csv(many).rows) == 15_000
        took = (datetime.now(UTC) - started).total_seconds()
        assert con.execute(f"SELECT count(*), sum(total_amount) FROM {DATASET}.outbound_payments").fetchone() == (
            15_000, 15_000 * 15_001 // 2)  # fmt: skip
    print(f"15,000 rows queued in {took:.2f}s")
