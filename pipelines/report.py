"""`accounting-etl report`: a self-contained HTML reconciliation report, plus a CSV of each exception list.

Everything is read from the reconciliation models (`transforms/`); the page has no script and no external
resource (inline CSS, inline SVG charts), so it opens from a file, a mail attachment or a shared drive.
Every figure carries a `data-figure` attribute naming where it comes from, which the tests use to check
the rendered page against the models.
"""

from __future__ import annotations

import contextlib
import csv
import html
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

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
    columns: str  # the model's columns the list shows
    order_by: str

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
    ),
    ExceptionList(
        "awaiting_sync",
        "Awaiting the provider's sync",
        "Not errors: these balances differ only by payments this tool pushed, which the provider has not yet "
        "reflected (its next sync does). What each waits for is named.",
        "*",
        "connection, currency, invoice_id",
    ),
    ExceptionList(
        "overpaid_invoices",
        "Overpaid invoices",
        "Payments applied exceed the invoice total: a refund, a credit or a misapplied payment.",
        "*",
        "connection, currency, overpaid_by DESC, invoice_id",
    ),
    ExceptionList(
        "unapplied_payments",
        "Unapplied payments",
        "Payments that name no invoice, or only invoices that are not in the warehouse.",
        "connection, payment_id, currency, total_amount, transaction_date, reason, missing_invoice_ids",
        "connection, currency, total_amount DESC, payment_id",
    ),
    ExceptionList(
        "duplicate_payments",
        "Likely duplicate payments",
        "Two or more payments on the same invoice, for the same amount, on the same day.",
        "duplicate_group, connection, invoice_id, payment_id, currency, applied_amount, transaction_date",
        "duplicate_group, payment_id",
    ),
    ExceptionList(
        "currency_mismatches",
        "Payments in another currency than their invoice",
        "Not counted towards the invoice: convert and re-apply, or correct the payment's currency.",
        "connection, payment_id, invoice_number, invoice_id, payment_currency, invoice_currency, "
        "applied_amount_in_payment_currency, transaction_date",
        "connection, transaction_date, payment_id, invoice_id",
    ),
    ExceptionList(
        "absent_amounts",
        "Statuses that rest on an absent amount",
        "Panora leaves zero amounts out; these statuses depend on reading an absent balance or total as 0, "
        "or could not compare an absent balance. Check them in the accounting system.",
        "*",
        "connection, number, invoice_id",
    ),
)


@dataclass
class Report:
    path: Path
    csv_files: list[Path]
    headline: dict[str, Any]


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value:,.4f}".rstrip("0").rstrip(".") if value % 1 else f"{value:,.0f}"
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


NO_CURRENCY = "no currency"  # how rows without a currency are shown and keyed (sorted after the ISO codes)


def _currency_label(code: Any) -> str:
    return NO_CURRENCY if code is None or str(code).strip() == "" else str(code)


def _money(value: Any, exponent: int | None) -> str:
    if value is None:
        return ""
    places = exponent if exponent is not None else 4
    return f"{Decimal(value):,.{places}f}"


CURRENCY_COLUMNS = ("currency", "payment_currency", "invoice_currency")


def _table(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    figure: str | None = None,
    exponents: dict[str, int | None] | None = None,
) -> str:
    """An HTML table; decimal amounts get the decimals of the row's currency (the first currency column)."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    currency_at = next((columns.index(c) for c in CURRENCY_COLUMNS if c in columns), None)
    body = []
    for row in rows:
        cells = []
        exponent = (exponents or {}).get(row[currency_at]) if currency_at is not None else None
        for column, value in zip(columns, row, strict=True):
            attr = f' data-figure="{figure}.{html.escape(column)}"' if figure else ""
            numeric = isinstance(value, int | Decimal) and not isinstance(value, bool)
            cls = ' class="num"' if numeric else ""
            text = _money(value, exponent) if isinstance(value, Decimal) and currency_at is not None else _fmt(value)
            cells.append(f"<td{cls}{attr}>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    # a wide table scrolls inside its own box, so the page itself never runs off a laptop's screen
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _aging_svg(currency: str, exponent: int | None, amounts: dict[str, Decimal]) -> str:
    """A horizontal bar per bucket, scaled to the largest; amounts printed beside the bars."""
    width, bar_height, gap, label_width, value_width = 560, 22, 8, 70, 150
    largest = max([a for a in amounts.values() if a] or [Decimal(1)])
    colors = {"current": "#4c956c", "1-30": "#f2c14e", "31-60": "#f78154", "61-90": "#d1495b", "90+": "#8d0801"}
    height = len(BUCKETS) * (bar_height + gap) + gap
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="Receivables aging, {html.escape(currency)}">'
    ]
    for i, bucket in enumerate(BUCKETS):
        y = gap + i * (bar_height + gap)
        amount = amounts.get(bucket, Decimal(0))
        bar = int((width - label_width - value_width) * float(amount / largest)) if amount else 0
        parts.append(f'<text x="0" y="{y + 16}" font-size="13">{bucket}</text>')
        parts.append(f'<rect x="{label_width}" y="{y}" width="{bar}" height="{bar_height}" fill="{colors[bucket]}"/>')
        parts.append(
            f'<text x="{label_width + bar + 6}" y="{y + 16}" font-size="13" '
            f'data-figure="aging.{html.escape(currency)}.{bucket}">{_money(amount, exponent)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


STYLE = """
body { font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 2rem; color: #222; }
h1 { margin-bottom: 0.2rem; } .muted { color: #666; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 13px; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: left; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 1rem 0 2rem; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 10px 14px; min-width: 180px; }
.card .value { font-size: 22px; font-weight: 600; } .card .label { color: #666; font-size: 12px; }
.charts { display: flex; flex-wrap: wrap; gap: 24px; } section { margin-bottom: 2rem; }
.scroll { max-width: 100%; overflow-x: auto; } th { white-space: nowrap; }
.charts svg { max-width: 100%; height: auto; } p, h1, h2 { overflow-wrap: anywhere; }
@media print {
  body { margin: 0; } .scroll { overflow: visible; } table { font-size: 9pt; }
  th, td { padding: 2px 5px; } section, .card { break-inside: avoid; }
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


def _write_csv(path: Path, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    """One exception list as CSV: a header row, then the rows, each cell `spreadsheet_safe`."""
    cell = spreadsheet_safe

    def write(handle: Any) -> None:
        writer = csv.writer(handle)
        writer.writerow([cell(c) for c in columns])
        writer.writerows([cell(v) for v in row] for row in rows)

    _replace(path, write)


def write_report(
    database: str | Path | None,
    out_dir: str | Path,
    models_schema: str | None = None,
    max_rows: int = 200,
) -> Report:
    """Write `index.html` and one CSV per exception list into `out_dir`; returns where they are. Reads the
    DuckDB file `database`, or (None) the configured warehouse (`pipelines/warehouse/`)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    m = check_identifier(models_schema, "models schema") if models_schema else settings.models_schema()
    with read_warehouse(None if database is None else str(database)) as query:

        def rows_of(sql: str) -> list[tuple[Any, ...]]:
            return query(sql)[1]

        summary_table, aging_table = f"{m}.accounting__reconciliation_summary", f"{m}.accounting__receivables_aging"
        as_of, built_at = rows_of(f"SELECT as_of, built_at FROM {m}.accounting__model_run")[0]
        exponents = dict(rows_of(f"SELECT code, exponent FROM {m}.accounting__currencies"))
        summary_columns = [
            "connection", "currency", "invoices", *STATUSES, "void_or_draft", "invoiced_amount", "applied_amount",
            "open_amount", "unapplied_payments", "unapplied_amount", "currency_mismatches", "duplicate_payments",
        ]  # fmt: skip
        summary = rows_of(f"SELECT {', '.join(summary_columns)} FROM {summary_table} ORDER BY connection, currency")
        by_currency = rows_of(
            f"SELECT currency, sum(invoices), sum(open_amount), sum(unapplied_amount), "
            f"sum(balance_mismatch + overpaid) FROM {summary_table} GROUP BY currency ORDER BY currency"
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
        exceptions = []
        csv_files = [out / "receivables_aging_by_customer.csv"]
        _write_csv(csv_files[0], *by_customer)
        for exc in EXCEPTIONS:
            columns, rows = query(exc.sql(m))
            path = out / f"{exc.name}.csv"
            _write_csv(path, columns, rows)
            csv_files.append(path)
            exceptions.append((exc, columns, rows))

    aging: dict[str, dict[str, Decimal]] = {}
    for currency, bucket, amount in aging_rows:
        aging.setdefault(_currency_label(currency), {})[bucket] = amount
    by_currency = [(_currency_label(r[0]), *r[1:]) for r in by_currency]
    overdue = {_currency_label(c): amount for c, amount in overdue.items()}
    headline = {
        "invoices": sum(r[2] for r in summary),
        "exceptions": {exc.name: len(rows) for exc, _, rows in exceptions},
        "open_by_currency": {r[0]: r[2] for r in by_currency},
    }
    cards = [
        f'<div class="card"><div class="value" data-figure="headline.invoices">{headline["invoices"]:,}</div>'
        f'<div class="label">receivable invoices reconciled (bills left out)</div></div>'
    ]
    for currency, _, open_amount, _, _ in by_currency:
        exp = exponents.get(currency)
        cards.append(
            f'<div class="card"><div class="value" data-figure="headline.open.{html.escape(str(currency))}">'
            f'{_money(open_amount, exp)}</div><div class="label">open receivables, {html.escape(str(currency))}'
            f' (overdue <span data-figure="headline.overdue.{html.escape(str(currency))}">'
            f"{_money(overdue.get(currency, Decimal(0)), exp)}</span>)</div></div>"
        )
    for exc, _, rows in exceptions:
        cards.append(
            f'<div class="card"><div class="value" data-figure="headline.exceptions.{exc.name}">{len(rows):,}</div>'
            f'<div class="label">{html.escape(exc.title.lower())}</div></div>'
        )
    charts = "".join(
        f"<div><h3>{html.escape(str(currency))}</h3>{_aging_svg(str(currency), exponents.get(currency), amounts)}</div>"
        for currency, amounts in sorted(aging.items(), key=lambda item: (item[0] == NO_CURRENCY, item[0]))
    )
    sections = []
    for exc, columns, rows in exceptions:
        shown = rows[:max_rows]
        more = f'<p class="muted">{len(rows) - max_rows:,} more in {exc.name}.csv</p>' if len(rows) > max_rows else ""
        body = _table(columns, shown, f"list.{exc.name}", exponents) if rows else '<p class="muted">None.</p>'
        sections.append(
            f'<section id="{exc.name}"><h2>{html.escape(exc.title)} '
            f'(<span data-figure="count.{exc.name}">{len(rows):,}</span>)</h2>'
            f'<p class="muted">{html.escape(exc.explanation)} CSV: <a href="{exc.name}.csv">{exc.name}.csv</a></p>'
            f"{body}{more}</section>"
        )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Reconciliation report, as of {as_of}</title>
<style>{STYLE}</style></head><body>
<h1>Reconciliation report</h1>
<p class="muted">Receivables aged to <strong data-figure="as_of">{as_of}</strong>;
models built {built_at:%Y-%m-%d %H:%M} UTC. Amounts in each currency's own units; no conversion between currencies.</p>
<div class="cards">{"".join(cards)}</div>
<section><h2>Status by connection and currency</h2>
{_table(summary_columns, summary, figure="summary", exponents=exponents)}</section>
<section><h2>Receivables aging (open amount by days past due)</h2><div class="charts">{charts}</div>
<p class="muted">Per customer: <a href="receivables_aging_by_customer.csv">receivables_aging_by_customer.csv</a></p>
</section>
<section id="top_debtors"><h2>Top debtors</h2>
<p class="muted">The {TOP_DEBTORS} customers owing most in each connection and currency, at the as-of date.</p>
{_table(debtor_columns, debtors, figure="debtors", exponents=exponents) if debtors else '<p class="muted">None.</p>'}
</section>
{"".join(sections)}
</body></html>
"""
    index = out / "index.html"
    _replace(index, lambda handle: handle.write(page))
    return Report(index, csv_files, headline)
