"""Trends: month-end open receivables, invoiced, collected and DSO for 12 months; each month-end's open amount
equals what `transform --as-of` that day reports (two month-ends checked, not twelve), and the month's
invoiced and collected amounts are rebuilt here from the loaded records."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal

from pipelines.transform import transform_database
from tests.support import DATASET, Warehouse

MODELS = f"{DATASET}_reconciliation"
AS_OF = date(2026, 11, 15)
MONTH_ENDS = (date(2026, 10, 31), date(2026, 8, 31))  # checked against a build as of each


def test_month_end_figures_are_those_month_ends_as_of_reports(warehouse: Warehouse) -> None:
    assert warehouse.load(transform=False).status == "ok"
    assert transform_database(str(warehouse.path), DATASET, as_of=AS_OF).error is None
    trend = warehouse.query(
        f"SELECT connection, currency, month_end, open_amount, invoiced_amount, collected_amount, dso_days, "
        f"invoices_issued FROM {MODELS}.accounting__receivables_trend"
    )
    ends = sorted({row[2] for row in trend})
    assert len(ends) == 12 and ends[-1] == date(2026, 10, 31) and ends[0] == date(2025, 11, 30)
    by_key = {(c, cur, end): rest for c, cur, end, *rest in trend}
    # invoiced per month, rebuilt from the staged invoices; DSO from the figures beside it
    invoiced: dict[tuple, Decimal] = defaultdict(Decimal)
    for connection, currency, booked, total in warehouse.query(
        f"SELECT connection, currency, booked_on, total_amount FROM {MODELS}.stg_accounting__invoices "
        "WHERE is_receivable AND NOT excluded_from_receivables"
    ):
        for end in ends:
            if booked is not None and booked.year == end.year and booked.month == end.month:
                invoiced[(connection, currency, end)] += total
    assert any(invoiced.values())
    for key, (open_amount, invoiced_amount, _, dso, _) in by_key.items():
        assert invoiced_amount == invoiced.get(key, 0), key
        if invoiced_amount:
            expected = (open_amount / invoiced_amount * key[2].day).quantize(Decimal("0.1"))
            assert abs(Decimal(dso) - expected) <= Decimal("0.1"), key
        else:
            assert dso is None
    for end in MONTH_ENDS:
        assert transform_database(str(warehouse.path), DATASET, as_of=end).error is None
        summary = warehouse.query(
            f"SELECT connection, currency, open_amount FROM {MODELS}.accounting__reconciliation_summary "
            "WHERE invoices > 0"
        )
        assert summary
        for connection, currency, open_amount in summary:
            assert by_key[(connection, currency, end)][0] == open_amount, (connection, currency, end)
    assert any(row[4] for row in trend), "nothing collected in a year: the seed changed"
