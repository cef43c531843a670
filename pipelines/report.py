"""`accounting-etl report`: a self-contained HTML reconciliation report, plus a CSV of each exception list.

Everything is read from the reconciliation models (`transforms/`); the page has no script and no external
resource (inline CSS, inline SVG charts), so it opens from a file, a mail attachment or a shared drive.
Every figure carries a `data-figure` attribute naming where it comes from, which the tests use to check
the rendered page against the models.
"""

from __future__ import annotations

import contextlib
import csv
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from pipelines import settings
from pipelines.settings import check_identifier
from pipelines.warehouse.access import read_warehouse

TOP_DEBTORS = 10  # customers shown per connection and currency
STATUSES = ("settled", "partially_paid", "overpaid", "unpaid", "awaiting_sync", "balance_mismatch")
BUCKETS = ("current", "1-30", "31-60", "61-90", "90+")


@dataclass(frozen=True)
class ExceptionList:
    name: str  # of the CSV file; the model is `accounting__<name>`
    title: str
    explanation: str
    columns: str  # the model's columns the CSV holds (ids included)
    order_by: str
    page_columns: tuple[str, ...]  # what the page shows: names and numbers a person reads, the identifying first

    def sql(self, schema: str) -> str:
        return f"SELECT {self.columns} FROM {schema}.accounting__{self.name} ORDER BY {self.order_by}"


# Each list is a model of the dbt project (transforms/models/marts/); here only which columns show, and in
# which order.
EXCEPTIONS = (
    ExceptionList(
        "balance_mismatches",
        "Balance mismatches",
        "The balance the accounting system reports differs from invoiced minus applied payments.",
        "*",
        "connection, currency, abs(expected_balance - coalesce(reported_balance, 0)) DESC, invoice_id",
        ("number", "customer_name", "connection", "currency", "total_amount", "applied_amount", "expected_balance",
         "reported_balance", "absent_amount_decides", "due_date"),
    ),
    ExceptionList(
        "awaiting_sync",
        "Awaiting the provider's sync",
        "Not errors: these balances differ only by payments this tool pushed, which the provider has not yet "
        "reflected (its next sync does). What each waits for is named.",
        "*",
        "connection, currency, invoice_id",
        ("number", "customer_name", "connection", "currency", "total_amount", "applied_amount", "expected_balance",
         "reported_balance", "awaiting", "due_date"),
    ),
    ExceptionList(
        "overpaid_invoices",
        "Overpaid invoices",
        "Payments applied exceed the invoice total: a refund, a credit or a misapplied payment.",
        "*",
        "connection, currency, overpaid_by DESC, invoice_id",
        ("number", "customer_name", "connection", "currency", "total_amount", "applied_amount", "overpaid_by",
         "last_payment_date"),
    ),
    ExceptionList(
        "unapplied_payments",
        "Unapplied payments",
        "Payments that name no invoice, or only invoices that are not in the warehouse; where an open invoice of "
        "the same customer and currency is owed exactly the payment's amount, it is named.",
        "connection, payment_id, remote_id, customer_name, currency, total_amount, transaction_date, reason, "
        "missing_invoice_ids, candidate_invoices",
        "connection, currency, total_amount DESC, payment_id",
        ("customer_name", "connection", "currency", "total_amount", "transaction_date", "reason",
         "candidate_invoices", "missing_invoice_ids"),
    ),
    ExceptionList(
        "duplicate_payments",
        "Likely duplicate payments",
        "Two or more payments on the same invoice, for the same amount, on the same day.",
        "duplicate_group, connection, invoice_number, customer_name, invoice_id, payment_id, currency, "
        "applied_amount, transaction_date",
        "duplicate_group, payment_id",
        ("duplicate_group", "invoice_number", "customer_name", "connection", "currency", "applied_amount",
         "transaction_date"),
    ),
    ExceptionList(
        "currency_mismatches",
        "Payments in another currency than their invoice",
        "Not counted towards the invoice: convert and re-apply, or correct the payment's currency.",
        "connection, payment_id, invoice_number, customer_name, invoice_id, payment_currency, invoice_currency, "
        "applied_amount_in_payment_currency, transaction_date",
        "connection, transaction_date, payment_id, invoice_id",
        ("invoice_number", "customer_name", "connection", "payment_currency", "invoice_currency",
         "applied_amount_in_payment_currency", "transaction_date"),
    ),
    ExceptionList(
        "absent_amounts",
        "Statuses that rest on an absent amount",
        "Panora leaves zero amounts out; these statuses depend on reading an absent balance or total as 0, "
        "or could not compare an absent balance. Check them in the accounting system.",
        "*",
        "connection, number, invoice_id",
        ("number", "customer_name", "connection", "currency", "source_status", "status", "total_amount",
         "applied_amount", "absent_amount_decides", "balance_not_compared"),
    ),
    ExceptionList(
        "changed_after_close",
        "Changed after the close",
        "Invoices and payments dated in the closed period that a load after the close saw changed: an amount, a "
        "date or a currency, a record added or deleted, a status no later payment explains. Empty when the "
        "warehouse holds no load from before the close.",
        "connection, record_type, record_id, number, customer_name, booked_on, change, before_value, after_value, "
        "seen_at, load_id, closed_through, closed_at",
        "connection, seen_at, record_type, number, record_id, change",
        ("number", "customer_name", "connection", "record_type", "change", "before_value", "after_value",
         "booked_on", "seen_at", "closed_through"),
    ),
)  # fmt: skip

# What the page calls the models' columns and values: words a controller reads (the CSVs keep the models' names,
# which scripts and spreadsheets refer to). A column not listed is shown with its name in plain case.
HEADERS = {
    "connection": "Connection", "provider": "Provider", "currency": "Currency", "invoices": "Invoices",
    "settled": "Paid in full", "partially_paid": "Partly paid", "overpaid": "Overpaid", "unpaid": "Unpaid",
    "awaiting_sync": "Awaiting sync", "balance_mismatch": "Balance differs", "void_or_draft": "Void or draft",
    "invoiced_amount": "Invoiced", "applied_amount": "Paid", "open_amount": "Open",
    "unapplied_payments": "Unapplied payments", "unapplied_amount": "Unapplied amount",
    "currency_mismatches": "Paid in another currency", "duplicate_payments": "Likely duplicates",
    "number": "Invoice", "invoice_number": "Invoice", "customer_name": "Customer", "total_amount": "Amount",
    "expected_balance": "Balance (invoiced less paid)", "reported_balance": "Balance in the system",
    "absent_amount_decides": "Rests on an absent amount", "balance_not_compared": "Balance not compared",
    "due_date": "Due", "awaiting": "Waiting for", "overpaid_by": "Overpaid by", "last_payment_date": "Last payment",
    "transaction_date": "Paid on", "reason": "Why unapplied", "candidate_invoices": "Open invoices of that amount",
    "missing_invoice_ids": "Invoices it names, not loaded", "duplicate_group": "Group",
    "payment_currency": "Payment currency", "invoice_currency": "Invoice currency",
    "applied_amount_in_payment_currency": "Amount (payment currency)", "source_status": "Status in the system",
    "status": "Status here", "debtor_rank": "Rank", "overdue_amount": "Overdue", "oldest_due_date": "Oldest due",
    "bucket": "Days past due", "unconverted_invoices": "Invoices without a rate",
    "unconverted_currencies": "Currencies without a rate",
    "record_type": "Record", "change": "What changed", "before_value": "Before", "after_value": "After",
    "booked_on": "Dated", "seen_at": "Seen by a load at", "closed_through": "Period closed through",
}  # fmt: skip
VALUES = {
    "settled": "paid in full", "partially_paid": "partly paid", "overpaid": "overpaid", "unpaid": "unpaid",
    "awaiting_sync": "awaiting sync", "balance_mismatch": "balance differs", "no_invoice": "names no invoice",
    "invoice_not_in_warehouse": "its invoice is not loaded", "current": "not yet due",
}  # fmt: skip
WORDED_COLUMNS = ("status", "reason", "bucket")  # columns whose values are the models' codes


def header(column: str) -> str:
    return HEADERS.get(column) or column.replace("_", " ").capitalize()


@dataclass
class Report:
    path: Path
    csv_files: list[Path]
    headline: dict[str, Any]


NO_CURRENCY = "no currency"  # how rows without a currency are shown and keyed (sorted after the ISO codes)


def _currency_label(code: Any) -> str:
    return NO_CURRENCY if code is None or str(code).strip() == "" else str(code)


def money(value: Any, exponent: int | None, grouped: bool = True) -> str:
    """An amount with its currency's decimals (EUR 2, JPY 0, KWD 3); without a known currency, as many as it
    needs. `grouped`: thousands separated, as on the page (a CSV writes plain digits)."""
    if value is None:
        return ""
    amount = Decimal(value)
    comma = "," if grouped else ""
    if exponent is None:
        plain = amount.normalize()
        places = max(0, -plain.as_tuple().exponent) if isinstance(plain.as_tuple().exponent, int) else 0
        return f"{amount:{comma}.{places}f}"
    return f"{amount:{comma}.{exponent}f}"


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, Decimal):
        return money(value, None)
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M}"
    return str(value)


CURRENCY_COLUMNS = ("currency", "payment_currency", "invoice_currency", "reporting_currency")


def _currency_at(columns: Sequence[str]) -> int | None:
    """Where a row's currency is: the first currency column (its amounts take that currency's decimals)."""
    return next((list(columns).index(c) for c in CURRENCY_COLUMNS if c in columns), None)


@dataclass(frozen=True)
class Cell:
    text: str
    numeric: bool = False
    figure: str | None = None


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Cell]]


def page_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    exponents: dict[str, int | None],
    figure: str | None = None,
    shown: Sequence[str] | None = None,
) -> Table:
    """A table for the page: `shown` of the `columns` (default all), plain headers and values, amounts with the
    decimals of the row's currency; `figure` names each cell `<figure>.<column>` for the tests."""
    shown = list(shown or columns)
    where = [list(columns).index(c) for c in shown]
    currency_at = _currency_at(columns)
    out = []
    for row in rows:
        exponent = exponents.get(row[currency_at]) if currency_at is not None else None
        cells = []
        for column, i in zip(shown, where, strict=True):
            value = row[i]
            numeric = isinstance(value, int | Decimal) and not isinstance(value, bool)
            if isinstance(value, Decimal) and currency_at is not None:
                text = money(value, exponent)
            elif column in WORDED_COLUMNS and isinstance(value, str):
                text = VALUES.get(value, value.replace("_", " "))
            elif column in CURRENCY_COLUMNS:
                text = _currency_label(value)
            else:
                text = _text(value)
            cells.append(Cell(text, numeric, f"{figure}.{column}" if figure else None))
        out.append(cells)
    return Table([header(c) for c in shown], out)


BAR_COLORS = {"current": "#4c956c", "1-30": "#f2c14e", "31-60": "#f78154", "61-90": "#d1495b", "90+": "#8d0801"}


def aging_chart(
    title: str, figure: str, exponent: int | None, amounts: dict[str, Decimal], label: str | None = None
) -> dict[str, Any]:
    """A horizontal bar per bucket, scaled to the largest, its amount beside it (the template draws it)."""
    width, bar_height, gap, label_width, value_width = 560, 22, 8, 90, 150
    largest = max([a for a in amounts.values() if a] or [Decimal(1)])
    bars = []
    for i, bucket in enumerate(BUCKETS):
        amount = amounts.get(bucket, Decimal(0))
        bars.append({
            "bucket": bucket, "label": VALUES.get(bucket, bucket), "y": gap + i * (bar_height + gap),
            "color": BAR_COLORS[bucket],
            "width": int((width - label_width - value_width) * float(amount / largest)) if amount else 0,
            "amount": money(amount, exponent), "figure": f"{figure}.{bucket}",
        })  # fmt: skip
    return {
        "title": title, "label": label or f"Receivables aging, {title}", "width": width, "bar_height": bar_height,
        "height": len(BUCKETS) * (bar_height + gap) + gap, "label_width": label_width, "bars": bars,
    }  # fmt: skip


def trend_chart(currency: str, exponent: int | None, months: list[tuple[Any, Decimal]]) -> dict[str, Any]:
    """A column per month-end (oldest first), its height the open receivables then; the amounts are in the
    table beside it."""
    width, height, base, left = 560, 170, 140, 8
    step = (width - left) // max(len(months), 1)
    largest = max([a for _, a in months if a] or [Decimal(1)])
    columns = []
    for i, (month_end, amount) in enumerate(months):
        tall = int((base - 20) * float(amount / largest)) if amount else 0
        columns.append({
            "x": left + i * step, "y": base - tall, "width": step - 6, "height": tall, "label": f"{month_end:%b}",
            "title": f"{month_end:%Y-%m-%d}: {money(amount, exponent)}", "figure": f"trend.{currency}.{month_end}",
        })  # fmt: skip
    return {"label": f"Open receivables at each month-end, {currency}", "width": width, "height": height,
            "base": base, "columns": columns}  # fmt: skip


STYLE = """
body { font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 2rem; color: #222; }
h1 { margin-bottom: 0.2rem; } .muted { color: #666; }
table { border-collapse: separate; border-spacing: 0; margin: 0.5rem 0 1.5rem; font-size: 13px; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: left; background: #fff; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 1rem 0 2rem; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 10px 14px; min-width: 180px; }
.card .value { font-size: 22px; font-weight: 600; } .card .label { color: #666; font-size: 12px; }
.charts { display: flex; flex-wrap: wrap; gap: 24px; } section { margin-bottom: 2rem; }
.scroll { max-width: 100%; overflow-x: auto; } th { white-space: nowrap; }
/* the identifying column (invoice, customer, connection) stays in view while a wide table scrolls */
.scroll th:first-child, .scroll td:first-child { position: sticky; left: 0; z-index: 1;
  box-shadow: inset -1px 0 0 #ddd; }
.charts svg { max-width: 100%; height: auto; } p, h1, h2 { overflow-wrap: anywhere; }
@media print {
  body { margin: 0; } .scroll { overflow: visible; } table { font-size: 9pt; }
  th, td { padding: 2px 5px; } section, .card { break-inside: avoid; }
  .scroll th:first-child, .scroll td:first-child { position: static; }
}
"""


# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection): text from a provider
# (an invoice number, a memo) could otherwise run `=HYPERLINK(...)` on the analyst's machine.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """A CSV cell that a spreadsheet shows as written: NULL empty, booleans true/false, numbers as numbers,
    and text that would start a formula prefixed with an apostrophe (the convention spreadsheets share)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _replace(path: Path, write: Callable[[Any], None]) -> None:
    """Write `path` as a new file beside it, renamed over it: a link at `path` (planted, or left by an earlier
    run) is replaced, never followed to write somewhere else."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", newline="", encoding="utf-8") as out:
            write(out)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _write_csv(
    path: Path, columns: list[str], rows: list[tuple[Any, ...]], exponents: dict[str, int | None], as_of: Any
) -> None:
    """One list as CSV: a header row, then the rows, each cell `spreadsheet_safe`; an amount with the decimals
    of its row's currency (879.80 for EUR, as the page shows it), in plain digits. The first column is the
    books' date (`as_of`) where the list has none: a file sent on alone still says which day it shows."""
    if "as_of" not in columns:
        columns, rows = ["as_of", *columns], [(as_of, *row) for row in rows]
    currency_at = _currency_at(columns)

    def cell(value: Any, exponent: int | None) -> Any:
        if isinstance(value, Decimal):
            return money(value, exponent, grouped=False)  # a number: never behind an apostrophe
        return spreadsheet_safe(value)

    def write(handle: Any) -> None:
        writer = csv.writer(handle)
        writer.writerow([spreadsheet_safe(c) for c in columns])
        for row in rows:
            exponent = exponents.get(row[currency_at]) if currency_at is not None else None
            writer.writerow([cell(v, exponent) for v in row])

    _replace(path, write)


_TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,  # every value from the warehouse is text on the page, whatever it holds
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _freshness(database: str | Path | None) -> Table:
    """Per connection: its last load, and when its data was last loaded completely (`status`'s reading)."""
    from pipelines.status import read_status

    status = read_status(None if database is None else str(database))
    columns = ["provider", "connection", "last_load", "status", "data_as_of", "age"]
    rows = [
        (c.provider, c.connection, c.last_run_at, c.status, c.fresh_at,
         "" if c.age_seconds is None else _age(c.age_seconds))
        for c in status.connections
    ]  # fmt: skip
    table = page_table(columns, rows, {}, figure="freshness")
    table.headers = ["Provider", "Connection", "Last load (UTC)", "Last load's result", "Data as of (UTC)", "Age"]
    return table


def _age(seconds: float) -> str:
    minutes = seconds / 60
    if minutes < 90:
        return f"{minutes:.0f} minutes"
    hours = minutes / 60
    return f"{hours:.0f} hours" if hours < 48 else f"{hours / 24:.0f} days"


def _rebuild_in(database: str | Path | None, models_schema: str, code: str) -> None:
    """Rebuild the models in reporting currency `code`, as of the date they were built for, when they were
    built in another (or none)."""
    from pipelines.transform import transform_database

    with read_warehouse(None if database is None else str(database)) as query:
        as_of, built_in = query(f"SELECT as_of, reporting_currency FROM {models_schema}.accounting__model_run")[1][0]
    if built_in == code:
        return
    result = transform_database(None if database is None else str(database), as_of=as_of, reporting_currency=code)
    if result.error or result.skipped:
        raise RuntimeError(f"the models could not be rebuilt in {code}: {result.error or result.skipped}")


def write_report(
    database: str | Path | None,
    out_dir: str | Path,
    models_schema: str | None = None,
    max_rows: int = 200,
    reporting_currency: str | None = None,
) -> Report:
    """Write `index.html` and one CSV per list into `out_dir`; returns where they are. Reads the DuckDB file
    `database`, or (None) the configured warehouse (`pipelines/warehouse/`). `reporting_currency` (else
    ACCOUNTING_ETL__REPORTING_CURRENCY): models built in another are first rebuilt in it, as of the same date;
    with neither, the report shows what the models were built with."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    m = check_identifier(models_schema, "models schema") if models_schema else settings.models_schema()
    code = settings.reporting_currency(reporting_currency)
    if code is not None:
        _rebuild_in(database, m, code)
    with read_warehouse(None if database is None else str(database)) as query:

        def rows_of(sql: str) -> list[tuple[Any, ...]]:
            return query(sql)[1]

        summary_table, aging_table = f"{m}.accounting__reconciliation_summary", f"{m}.accounting__receivables_aging"
        as_of, built_at, built_in = rows_of(
            f"SELECT as_of, built_at, reporting_currency FROM {m}.accounting__model_run"
        )[0]
        exponents = dict(rows_of(f"SELECT code, exponent FROM {m}.accounting__currencies"))
        summary_columns = [
            "connection", "currency", "invoices", *STATUSES, "void_or_draft", "invoiced_amount", "applied_amount",
            "open_amount", "unapplied_payments", "unapplied_amount", "currency_mismatches", "duplicate_payments",
        ]  # fmt: skip
        summary = rows_of(f"SELECT {', '.join(summary_columns)} FROM {summary_table} ORDER BY connection, currency")
        by_currency = rows_of(
            f"SELECT currency, sum(invoices), sum(open_amount) FROM {summary_table} GROUP BY currency ORDER BY currency"
        )
        overdue = dict(
            rows_of(f"SELECT currency, sum(open_amount) FROM {aging_table} WHERE bucket_order > 0 GROUP BY currency")
        )
        aging_rows = rows_of(f"SELECT currency, bucket, sum(open_amount) FROM {aging_table} GROUP BY currency, bucket")
        debtor_columns = [
            "connection", "currency", "debtor_rank", "customer_name", "invoices", "open_amount", "overdue_amount",
            "oldest_due_date",
        ]  # fmt: skip
        debtors = rows_of(
            f"SELECT {', '.join(debtor_columns)} FROM {m}.accounting__top_debtors WHERE debtor_rank <= {TOP_DEBTORS} "
            f"ORDER BY currency, connection, debtor_rank"
        )
        by_customer = query(
            f"SELECT * FROM {m}.accounting__receivables_aging_by_customer "
            f"ORDER BY connection, currency, customer_name, customer_id, bucket_order"
        )
        trend = rows_of(
            f"SELECT currency, month_end, sum(open_amount), sum(invoiced_amount), sum(collected_amount), "
            f"sum(open_minor), sum(invoices_issued) FROM {m}.accounting__receivables_trend "
            "GROUP BY currency, month_end ORDER BY currency, month_end"
        )
        reporting = None
        if built_in is not None:
            totals = query(f"SELECT * FROM {m}.accounting__reporting_currency_totals")
            rc_aging = query(f"SELECT * FROM {m}.accounting__reporting_currency_aging ORDER BY bucket_order")
            rates = rows_of(
                "SELECT currency, rate, rate_date, has_rate, invoices, unapplied_payments "
                f"FROM {m}.accounting__fx_rates_used ORDER BY currency IS NULL, currency"
            )
            reporting = (totals, rc_aging, rates)
        csv_files = [out / "receivables_aging_by_customer.csv"]
        _write_csv(csv_files[0], *by_customer, exponents, as_of)
        exceptions = []
        for exc in EXCEPTIONS:
            columns, rows = query(exc.sql(m))
            path = out / f"{exc.name}.csv"
            _write_csv(path, columns, rows, exponents, as_of)
            csv_files.append(path)
            exceptions.append((exc, columns, rows))
        totals_csv = out / "reporting_currency_totals.csv"
        if reporting is not None:
            _write_csv(totals_csv, *reporting[0], exponents, as_of)
            csv_files.append(totals_csv)
        else:  # an earlier report's, in another currency or date, must not sit beside this one's files
            totals_csv.unlink(missing_ok=True)
    freshness = _freshness(database)

    aging: dict[str, dict[str, Decimal]] = {}
    for currency, bucket, amount in aging_rows:
        aging.setdefault(_currency_label(currency), {})[bucket] = amount
    by_currency = [(_currency_label(r[0]), *r[1:]) for r in by_currency]
    overdue = {_currency_label(c): amount for c, amount in overdue.items()}
    headline: dict[str, Any] = {
        "invoices": sum(r[2] for r in summary),
        "exceptions": {exc.name: len(rows) for exc, _, rows in exceptions},
        "open_by_currency": {r[0]: r[2] for r in by_currency},
    }
    cards = [{"figure": "headline.invoices", "value": f"{headline['invoices']:,}",
              "label": "receivable invoices reconciled (bills left out)"}]  # fmt: skip
    context_reporting = None
    if reporting is not None:
        context_reporting, headline["reporting"] = _reporting_context(built_in, reporting, exponents, cards)
    for currency, _, open_amount in by_currency:
        exp = exponents.get(currency)
        cards.append({
            "figure": f"headline.open.{currency}", "value": money(open_amount, exp),
            "label": f"open receivables, {currency}", "detail_label": "overdue",
            "detail_figure": f"headline.overdue.{currency}", "detail": money(overdue.get(currency, Decimal(0)), exp),
        })  # fmt: skip
    for exc, _, rows in exceptions:
        cards.append({"figure": f"headline.exceptions.{exc.name}", "value": f"{len(rows):,}",
                      "label": exc.title.lower()})  # fmt: skip
    charts = [
        aging_chart(currency, f"aging.{currency}", exponents.get(currency), amounts)
        for currency, amounts in sorted(aging.items(), key=lambda item: (item[0] == NO_CURRENCY, item[0]))
    ]
    trends = _trends(trend, exponents)
    sections = []
    for exc, columns, rows in exceptions:
        sections.append({
            "name": exc.name, "title": exc.title, "explanation": exc.explanation, "count": f"{len(rows):,}",
            "table": page_table(columns, rows[:max_rows], exponents, f"list.{exc.name}", exc.page_columns),
            "more": f"{len(rows) - max_rows:,}" if len(rows) > max_rows else "",
        })  # fmt: skip
    page = _TEMPLATES.get_template("report.html.j2").render(
        as_of=as_of,
        built_at=f"{built_at:%Y-%m-%d %H:%M}",
        style=Markup(STYLE),  # the project's own text
        reporting=context_reporting,
        freshness=freshness,
        cards=[{"detail": "", "detail_label": "", "detail_figure": "", **card} for card in cards],
        summary=page_table(summary_columns, summary, exponents, figure="summary"),
        charts=charts,
        trends=trends,
        top_debtors=TOP_DEBTORS,
        debtors=page_table(debtor_columns, debtors, exponents, figure="debtors"),
        exceptions=sections,
    )
    index = out / "index.html"
    _replace(index, lambda handle: handle.write(page))
    return Report(index, csv_files, headline)


def _trends(rows: list[tuple[Any, ...]], exponents: dict[str, int | None]) -> list[dict[str, Any]]:
    """Per currency (its connections together): the month-end chart and a table of open, invoiced, collected
    and DSO (open at the month-end / invoiced in the month x the month's days, as the model counts it)."""
    by_currency: dict[str, list[tuple[Any, ...]]] = {}
    for currency, *rest in rows:
        by_currency.setdefault(_currency_label(currency), []).append(tuple(rest))
    out = []
    for currency, months in sorted(by_currency.items(), key=lambda item: (item[0] == NO_CURRENCY, item[0])):
        exponent = exponents.get(currency)
        table_rows = []
        for month_end, open_amount, invoiced, collected, _, _ in months:
            dso = (open_amount / invoiced * month_end.day).quantize(Decimal("0.1")) if invoiced else None
            table_rows.append((month_end, currency, open_amount, invoiced, collected, "" if dso is None else f"{dso}"))
        table = page_table(["month_end", "currency", "open_amount", "invoiced_amount", "collected_amount", "dso_days"],
                           table_rows, exponents, figure=f"trend_table.{currency}")  # fmt: skip
        table.headers = ["Month-end", "Currency", "Open at month-end", "Invoiced in month", "Collected in month",
                         "DSO (days)"]  # fmt: skip
        chart = trend_chart(currency, exponent, [(m[0], m[1]) for m in months])
        out.append({"currency": currency, "chart": chart, "table": table})
    return out


def _reporting_context(
    code: str, reporting: tuple[Any, Any, list[tuple[Any, ...]]], exponents: dict[str, int | None], cards: list
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The page's reporting-currency section and cards, and the headline's figures in it."""
    (total_columns, total_rows), (aging_columns, aging_rows), rates = reporting
    exponent = exponents.get(code)
    totals = dict(zip(total_columns, total_rows[0], strict=True)) if total_rows else {}
    figures = {m: totals.get(f"{m}_amount", Decimal(0)) for m in ("open", "overdue", "unapplied", "invoiced")}
    unconverted = totals.get("unconverted_currencies")
    # a total that leaves out the currencies without a rate says so on its card, not only in its section
    scope = f"in {code}, without {unconverted} (no rate)" if unconverted else f"all currencies in {code}"
    cards.append({
        "figure": "headline.reporting.open", "value": f"{code} {money(figures['open'], exponent)}",
        "label": f"open receivables, {scope}", "detail_label": "overdue",
        "detail_figure": "headline.reporting.overdue", "detail": money(figures["overdue"], exponent),
    })  # fmt: skip
    cards.append({"figure": "headline.reporting.unapplied", "value": f"{code} {money(figures['unapplied'], exponent)}",
                  "label": f"unapplied payments, {scope}"})  # fmt: skip
    if unconverted:
        unconverted = (f"{unconverted} ({totals.get('unconverted_invoices', 0):,} invoice(s), "
                       f"{totals.get('unconverted_payments', 0):,} unapplied payment(s))")  # fmt: skip
    amounts = {row[aging_columns.index("bucket")]: row[aging_columns.index("open_amount")] for row in aging_rows}
    rate_rows = [
        (_currency_label(currency), f"1 {_currency_label(currency)} = {money(rate, None)} {code}" if has else "no rate",
         rate_date, invoices, payments)
        for currency, rate, rate_date, has, invoices, payments in rates
    ]  # fmt: skip
    rate_table = page_table(["currency", "rate", "rate_date", "invoices", "unapplied_payments"], rate_rows, {},
                            figure="rates")  # fmt: skip
    rate_table.headers = ["Currency", "Rate", "Rate of", "Invoices", "Unapplied payments"]
    shown = ("bucket", "invoices", "open_amount", "unconverted_invoices", "unconverted_currencies")
    context = {
        "currency": code,
        "unconverted": unconverted or "",
        "chart": aging_chart(code, "reporting.aging", exponent, amounts, f"Receivables aging, {scope}"),
        "aging": page_table(aging_columns, aging_rows, exponents, "reporting.aging_table", shown),
        "rates": rate_table,
    }
    return context, {"currency": code, **figures}
