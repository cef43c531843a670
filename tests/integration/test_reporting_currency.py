"""One reporting currency: every connection and currency totalled in it at the rates the user keeps in
`<dataset>.fx_rates`, checked against figures computed here by hand from the invoices (converted one by one at
full precision, each total rounded once, half to even), with a currency left without a rate."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal

import duckdb
import pytest

from pipelines.models.build import DuckDBDatabase, inputs_fingerprint
from pipelines.transform import transform_database
from sources.common.errors import ConfigurationError
from tests.support import DATASET, Warehouse

AS_OF = date(2026, 11, 15)
MODELS = f"{DATASET}_reconciliation"
# one unit of the currency in EUR; what the model must use at AS_OF (the latest rate dated on or before it)
RATES_AT_AS_OF = {"USD": Decimal("0.862311"), "GBP": Decimal("1.1573")}
RATES = [  # (rate_date, currency, quote_currency, rate)
    ("2026-10-01", "USD", "EUR", "0.9"),  # older: replaced by the next one
    ("2026-11-14", "USD", "EUR", "0.862311"),
    ("2026-11-16", "USD", "EUR", "0.5"),  # after the as-of date: not used
    ("2026-11-01", "GBP", None, "1.1573"),  # no quote currency: the reporting currency
    ("2026-11-01", "JPY", "USD", "0.0066"),  # quotes another currency: of no use for EUR totals
]


def _rows(warehouse: Warehouse, sql: str) -> list[tuple]:
    return warehouse.query(sql)


def _round(value: Decimal, exponent: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-exponent), rounding=ROUND_HALF_EVEN)


@pytest.fixture
def loaded(warehouse: Warehouse) -> Warehouse:
    assert warehouse.load(transform=False).status == "ok"
    with duckdb.connect(str(warehouse.path)) as con:
        con.execute(
            f"CREATE TABLE {DATASET}.fx_rates "
            "(rate_date DATE, currency VARCHAR, quote_currency VARCHAR, rate DECIMAL(18, 6))"
        )
        con.executemany(f"INSERT INTO {DATASET}.fx_rates VALUES (?, ?, ?, ?)", RATES)
    return warehouse


def test_totals_in_the_reporting_currency_are_the_invoices_converted_one_by_one_and_rounded_once(loaded) -> None:
    result = transform_database(str(loaded.path), DATASET, as_of=AS_OF, reporting_currency="eur")
    assert result.error is None and result.reporting_currency == "EUR"
    invoices = _rows(loaded, f"""
        SELECT s.currency, s.total_amount, s.applied_amount, s.open_amount, o.bucket_order
        FROM {MODELS}.accounting__invoice_settlement s
        LEFT JOIN {MODELS}.int_accounting__open_receivables o USING (invoice_id)
        WHERE s.is_receivable AND NOT s.excluded_from_receivables""")  # fmt: skip
    currencies = {row[0] for row in invoices}
    assert {"EUR", "USD", "GBP"} <= currencies and currencies - {"EUR", "USD", "GBP"}, "the seed changed"
    rates = {"EUR": Decimal(1), **RATES_AT_AS_OF}
    sums: dict[str, Decimal] = defaultdict(Decimal)
    by_bucket: dict[int, Decimal] = defaultdict(Decimal)
    unconverted = [row for row in invoices if row[0] not in rates]
    for currency, total, applied, open_amount, bucket in invoices:
        if currency not in rates:
            continue
        rate = rates[currency]
        sums["invoiced"] += total * rate
        sums["applied"] += applied * rate
        sums["open"] += open_amount * rate
        if bucket is not None and bucket > 0:
            sums["overdue"] += open_amount * rate
        if bucket is not None:
            by_bucket[bucket] += open_amount * rate
    payments = _rows(loaded, f"SELECT currency, total_amount FROM {MODELS}.accounting__unapplied_payments")
    sums["unapplied"] = sum((a * rates[c] for c, a in payments if c in rates), Decimal(0))

    (totals,) = _rows(loaded, f"""
        SELECT reporting_currency, as_of, invoices, converted_invoices, invoiced_amount, applied_amount,
            open_amount, overdue_amount, unapplied_amount, unconverted_invoices, unconverted_payments,
            unconverted_currencies
        FROM {MODELS}.accounting__reporting_currency_totals""")  # fmt: skip
    assert totals[:4] == ("EUR", AS_OF, len(invoices), len(invoices) - len(unconverted))
    measures = ("invoiced", "applied", "open", "overdue", "unapplied")
    assert dict(zip(measures, totals[4:9], strict=True)) == {m: _round(sums[m], 2) for m in measures}
    assert totals[9] == len(unconverted) > 0
    assert totals[10] == sum(1 for c, _ in payments if c not in rates)
    missing = sorted({c for c, *_ in unconverted} | {c for c, _ in payments if c not in rates})
    assert totals[11] == ", ".join(missing)

    aging = _rows(loaded, f"SELECT bucket_order, open_amount, unconverted_invoices FROM "
                          f"{MODELS}.accounting__reporting_currency_aging ORDER BY bucket_order")  # fmt: skip
    assert [(b, a) for b, a, _ in aging] == [(b, _round(by_bucket[b], 2)) for b, _, _ in aging]
    assert sum(u for *_, u in aging) == sum(1 for row in unconverted if row[4] is not None)

    used = {c: (r, d, has) for c, r, d, has in _rows(
        loaded, f"SELECT currency, rate, rate_date, has_rate FROM {MODELS}.accounting__fx_rates_used")}  # fmt: skip
    assert used["EUR"] == (Decimal(1), None, True)
    assert used["USD"] == (RATES_AT_AS_OF["USD"], date(2026, 11, 14), True)
    assert used["GBP"] == (RATES_AT_AS_OF["GBP"], date(2026, 11, 1), True)
    assert all(not used[c][2] and used[c][0] is None for c in missing)


def test_without_a_reporting_currency_nothing_is_converted(loaded) -> None:
    result = transform_database(str(loaded.path), DATASET, as_of=AS_OF)
    assert result.error is None and result.reporting_currency is None
    for model in ("reporting_currency_totals", "reporting_currency_aging", "fx_rates_used"):
        assert loaded.scalar(f"SELECT count(*) FROM {MODELS}.accounting__{model}") == 0, model
    assert loaded.query(f"SELECT reporting_currency FROM {MODELS}.accounting__model_run") == [(None,)]


def test_a_new_rate_or_another_reporting_currency_changes_what_the_models_are_built_from(loaded) -> None:
    with duckdb.connect(str(loaded.path)) as con:
        db = DuckDBDatabase(con)
        before = inputs_fingerprint(db, DATASET, AS_OF, "EUR")
        assert inputs_fingerprint(db, DATASET, AS_OF, "USD") != before
        con.execute(f"UPDATE {DATASET}.fx_rates SET rate = 0.862312 WHERE rate = 0.862311")
        assert inputs_fingerprint(db, DATASET, AS_OF, "EUR") != before


def test_a_reporting_currency_that_is_no_iso_code_is_refused_before_anything_runs(loaded) -> None:
    with pytest.raises(ConfigurationError, match=r"ACCOUNTING_ETL__REPORTING_CURRENCY.*'EURO' is not an ISO 4217"):
        transform_database(str(loaded.path), DATASET, as_of=AS_OF, reporting_currency="EURO")
    with pytest.raises(ConfigurationError, match="XAU has no minor unit"):
        transform_database(str(loaded.path), DATASET, as_of=AS_OF, reporting_currency="XAU")


def test_a_missing_rates_table_is_created_empty(warehouse: Warehouse) -> None:
    assert warehouse.load(transform=False).status == "ok"
    result = transform_database(str(warehouse.path), DATASET, as_of=AS_OF, reporting_currency="EUR")
    assert result.error is None
    assert warehouse.count("fx_rates") == 0
    (row,) = warehouse.query(f"SELECT converted_invoices, unconverted_currencies FROM "
                             f"{MODELS}.accounting__reporting_currency_totals")  # fmt: skip
    eur = warehouse.scalar(f"SELECT count(*) FROM {MODELS}.accounting__invoice_settlement "
                           "WHERE is_receivable AND NOT excluded_from_receivables AND currency = 'EUR'")  # fmt: skip
    assert row[0] == eur and "EUR" not in row[1]
