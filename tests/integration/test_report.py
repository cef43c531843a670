"""The reconciliation report over a freshly loaded sandbox dataset: rendered in headless Chromium, every
figure on the page equals the models."""

from __future__ import annotations

import csv
import html
import re
import shutil
import subprocess
from collections import Counter
from decimal import Decimal
from html.parser import HTMLParser

import duckdb
import pytest
from PIL import Image

from pipelines.report import EXCEPTIONS, NO_CURRENCY, write_report

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")

M = "accounting_raw_reconciliation"  # the models of the default dataset


class Figures(HTMLParser):
    """Collects the text of every element with a data-figure attribute (the last one per name)."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: dict[str, list[str]] = {}
        self._open: list[str | None] = []

    def handle_starttag(self, tag, attrs):
        name = dict(attrs).get("data-figure")
        self._open.append(name)
        if name:
            self.figures.setdefault(name, []).append("")

    def handle_endtag(self, tag):
        if self._open:
            self._open.pop()

    def handle_data(self, data):
        for name in self._open:
            if name:
                self.figures[name][-1] += data


def number(text: str) -> Decimal:
    return Decimal(text.replace(",", ""))


@pytest.fixture
def report(both, tmp_path, loaded_warehouses):
    """The report over a dataset of both providers (its figures must hold for Rootfi's rows too)."""
    loaded_warehouses.copy_into(both, "both")
    return write_report(both.path, tmp_path / "report"), both


def rendered_dom(path) -> str:
    if BROWSER is None:
        pytest.skip("no headless Chromium here (Debian package `chromium`): the rendered report is not checked")
    result = subprocess.run(
        [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={path.parent / 'chromium-profile'}", "--dump-dom", path.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "<h1>Reconciliation report</h1>" in result.stdout
    return result.stdout


def test_rendered_report_shows_the_models_figures(report):
    written, warehouse = report
    parser = Figures()
    parser.feed(rendered_dom(written.path))
    figures = parser.figures
    with duckdb.connect(str(warehouse.path), read_only=True) as con:
        q = lambda sql: con.execute(sql).fetchall()  # noqa: E731

        assert (
            number(figures["headline.invoices"][0])
            == q(f"SELECT count(*) FROM {M}.accounting__invoice_settlement WHERE is_receivable")[0][0]
        )
        for currency, open_amount in q(
            f"SELECT currency, sum(open_amount) FROM {M}.accounting__reconciliation_summary GROUP BY currency"
        ):
            assert number(figures[f"headline.open.{currency}"][0]) == open_amount
        aging = q(
            f"SELECT currency, bucket, sum(open_amount) FROM {M}.accounting__receivables_aging GROUP BY ALL"
        )  # the chart of a currency adds up its connections (EUR and GBP are held by both providers here)
        assert {c for c, _, _ in aging} >= {"EUR", "GBP", "JPY", "USD"}
        for currency, bucket, amount in aging:
            assert number(figures[f"aging.{currency}.{bucket}"][0]) == amount
        for exc in EXCEPTIONS:
            expected = q(f"SELECT count(*) FROM ({exc.sql(M)})")[0][0]
            assert number(figures[f"count.{exc.name}"][0]) == expected, exc.name
            assert number(figures[f"headline.exceptions.{exc.name}"][0]) == expected, exc.name
        summary = q(
            "SELECT connection, currency, invoices, settled, partially_paid, overpaid, unpaid, balance_mismatch "
            f"FROM {M}.accounting__reconciliation_summary ORDER BY connection, currency"
        )
        shown = list(zip(*(figures[f"summary.{c}"] for c in (
            "connection", "currency", "invoices", "settled", "partially_paid", "overpaid", "unpaid", "balance_mismatch"
        )), strict=True))  # fmt: skip
        assert [(r[0], r[1], *map(int, map(number, r[2:]))) for r in shown] == summary
        assert figures["as_of"][0] == str(q(f"SELECT as_of FROM {M}.accounting__model_run")[0][0])
        debtors = q(
            f"SELECT currency, connection, debtor_rank, customer_name, open_amount FROM {M}.accounting__top_debtors "
            "WHERE debtor_rank <= 10 ORDER BY currency, connection, debtor_rank"
        )
        shown = zip(*(figures[f"debtors.{c}"] for c in ("currency", "connection", "debtor_rank", "customer_name",
                                                         "open_amount")), strict=True)  # fmt: skip
        assert [(c, n, int(number(r)), name, number(a)) for c, n, r, name, a in shown] == debtors
        assert debtors and all(name for *_, name, _ in debtors)  # a name on every row, never a bare id
        trend = q(
            f"SELECT currency, month_end, sum(open_amount), sum(invoiced_amount), sum(collected_amount) "
            f"FROM {M}.accounting__receivables_trend GROUP BY ALL ORDER BY currency, month_end"
        )
        assert len(trend) == 12 * 6
        for currency in {c for c, *_ in trend}:
            rows = [r[1:] for r in trend if r[0] == currency]
            shown = zip(*(figures[f"trend_table.{currency}.{c}"] for c in (
                "month_end", "open_amount", "invoiced_amount", "collected_amount")), strict=True)  # fmt: skip
            assert [(d, number(o), number(i), number(c)) for d, o, i, c in shown] == [
                (str(d), o, i, c) for d, o, i, c in rows], currency  # fmt: skip


def test_each_exception_list_has_its_csv(report, tmp_path):
    written, warehouse = report
    with duckdb.connect(str(warehouse.path), read_only=True) as con:
        (as_of,) = con.execute(f"SELECT as_of FROM {M}.accounting__model_run").fetchone()
        for exc in EXCEPTIONS:
            path = written.path.parent / f"{exc.name}.csv"
            with path.open() as handle:
                rows = list(csv.DictReader(handle))
            assert len(rows) == con.execute(f"SELECT count(*) FROM ({exc.sql(M)})").fetchall()[0][0]
    for path in written.path.parent.glob("*.csv"):  # each file says the books' date, sent on alone
        with path.open() as handle:
            header, *rows = list(csv.reader(handle))
        assert header[0] == "as_of" and {row[0] for row in rows} <= {str(as_of)}, path.name
    # a folder that held a report in a reporting currency: this one has none, so that file goes
    folder = tmp_path / "reused"
    folder.mkdir()
    (folder / "reporting_currency_totals.csv").write_text("as_of,reporting_currency,open_amount\n2026-01-31,EUR,1\n")
    write_report(warehouse.path, folder)
    assert not (folder / "reporting_currency_totals.csv").exists() and (folder / "balance_mismatches.csv").exists()
    html_text = written.path.read_text()
    assert "<script" not in html_text and "http://" not in html_text.replace("http://www.w3.org/2000/svg", "")
    assert html_text.count('aria-label="Receivables aging, ') == 6  # one aging chart per currency of the sandbox
    assert html_text.count('aria-label="Open receivables at each month-end, ') == 6  # and one trend chart


FIT_CHECK = """<script>
const width = window.innerWidth;
const over = [...document.querySelectorAll('body *')]
  .filter(e => !e.parentElement.closest('.scroll'))  // inside a scroll box is the box's business
  .filter(e => e.getBoundingClientRect().right > width + 0.5)
  .map(e => e.tagName.toLowerCase() + (e.className && e.className.baseVal === undefined ? '.' + e.className : ''));
const headers = [...document.querySelectorAll('th')].map(th => getComputedStyle(th).whiteSpace);
// a wide table scrolled to its far right still shows each row's identifying (first) cell whole
const scrolled = [...document.querySelectorAll('.scroll')].filter(box => box.scrollWidth > box.clientWidth + 1);
const hidden = [];
for (const box of scrolled) {
  box.scrollLeft = box.scrollWidth;
  const frame = box.getBoundingClientRect();
  for (const row of box.querySelectorAll('tr')) {
    const cell = row.firstElementChild.getBoundingClientRect();
    if (cell.left < frame.left - 0.5 || cell.right > frame.right + 0.5) hidden.push(row.firstElementChild.textContent);
  }
}
document.body.setAttribute('data-fit', JSON.stringify({
  width, page: document.documentElement.scrollWidth, over, wrapped_headers: headers.filter(w => w !== 'nowrap').length,
  scrolled: scrolled.length, hidden
}));
</script></body>"""


# an aging chart of the written page (its currency, its content), and its bars (bucket, width, height, colour)
CHART = re.compile(r'aria-label="Receivables aging, ([^"]+)">(.*?)</svg>')
BAR = re.compile(r'<text [^>]*>([^<]+)</text><rect [^>]* width="(\d+)" height="(\d+)" fill="#([0-9a-f]{6})"')


def test_the_report_fits_a_laptop_screen(report, tmp_path):
    """At 1280 px no element runs off the page (wide tables scroll inside their own box) and no header is
    broken over lines; a screenshot at that width shows what a person would see: each currency's aging chart,
    its bars as the models' amounts say, painted whole."""
    import json

    written, warehouse = report
    dom = rendered_dom(written.path)  # skips without Chromium
    assert "<h1>Reconciliation report</h1>" in dom
    probe = written.path.parent / "fit-check.html"
    probe.write_text(written.path.read_text().replace("</body>", FIT_CHECK))
    common = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--hide-scrollbars", f"--user-data-dir={tmp_path / 'chromium-profile'}"]  # fmt: skip
    result = subprocess.run([*common, "--window-size=1280,900", "--dump-dom", probe.as_uri()],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    fit = json.loads(html.unescape(re.search(r"data-fit=\"([^\"]*)\"", result.stdout).group(1)))
    assert fit["width"] == 1280
    assert fit["over"] == [] and fit["page"] <= 1280, fit
    assert fit["wrapped_headers"] == 0
    assert fit["scrolled"] >= 1 and fit["hidden"] == [], fit  # a wide table scrolls; its first column stays
    screenshot = tmp_path / "report-1280.png"
    subprocess.run([*common, "--window-size=1280,2400", f"--screenshot={screenshot}", written.path.as_uri()],
                   capture_output=True, timeout=120, check=True)  # fmt: skip
    # what the screenshot shows: each aging chart has a bar for every bucket the models hold an amount in and
    # none for an empty one, longer for a larger amount; and every bar is painted whole, in its bucket's colour
    with duckdb.connect(str(warehouse.path), read_only=True) as con:
        aging = {
            (NO_CURRENCY if c is None else c, b): a
            for c, b, a in con.execute(
                f"SELECT currency, bucket, sum(open_amount) FROM {M}.accounting__receivables_aging GROUP BY ALL"
            ).fetchall()
        }
    charts = {currency: BAR.findall(chart) for currency, chart in CHART.findall(written.path.read_text())}
    assert set(charts) == {currency for currency, _ in aging}
    declared: Counter = Counter()
    for currency, bars in charts.items():
        # each bar is labelled in words ("not yet due" for the models' `current`)
        widths = {{"not yet due": "current"}.get(label, label): int(width) for label, width, _, _ in bars}
        assert {b for b, w in widths.items() if w} == {b for (c, b), a in aging.items() if c == currency and a}
        by_amount = sorted(widths, key=lambda bucket: aging.get((currency, bucket), 0))
        assert [widths[b] for b in by_amount] == sorted(widths.values()), currency
        for _, width, height, colour in bars:
            declared[tuple(bytes.fromhex(colour))] += int(width) * int(height)
    with Image.open(screenshot) as image:
        assert image.size[0] == 1280
        painted = Counter(image.convert("RGB").getdata())
    assert {colour: painted[colour] for colour in declared} == dict(declared)


def test_a_controller_reads_plain_words_and_each_currency_s_decimals(report):
    """Headers and statuses in words, not the models' snake_case; amounts with their currency's decimals on
    the page and in the CSVs alike (EUR 879.80, never 879.8000); the page names invoices and customers, the
    CSVs keep the ids; each connection's data freshness is on the page."""
    written, warehouse = report
    page = written.path.read_text()
    headers = re.findall(r"<th>([^<]*)</th>", page)
    assert headers and not [h for h in headers if "_" in h], headers
    assert "Paid in full" in headers and "Customer" in headers
    assert not re.search(r">(partially_paid|balance_mismatch|absent_amount_decides|no_invoice)<", page)
    uuid = re.compile(r"<td[^>]*>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}</td>")
    shown_ids = [m.group(0) for m in uuid.finditer(page) if "missing_invoice_ids" not in m.group(0)]
    assert shown_ids == []
    with (written.path.parent / "balance_mismatches.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and all(row["invoice_id"] for row in rows)
    places = {"EUR": 2, "GBP": 2, "USD": 2, "JPY": 0, "KWD": 3}
    checked = 0
    for row in rows:
        for column in ("total_amount", "applied_amount", "expected_balance"):
            decimals = row[column].partition(".")[2]
            if row["currency"] in places:
                assert len(decimals) == places[row["currency"]], (row["currency"], column, row[column])
                checked += 1
    assert checked
    figures = Figures()
    figures.feed(page)
    with duckdb.connect(str(warehouse.path), read_only=True) as con:
        loaded = {c for (c,) in con.execute("SELECT DISTINCT connection FROM accounting_raw.load_run_scans").fetchall()}
    assert set(figures.figures["freshness.connection"]) == loaded


RATES = [("2026-11-01", "USD", "EUR", "0.8623"), ("2026-11-01", "GBP", None, "1.1573")]


def test_totals_in_a_reporting_currency_are_the_models_with_the_rates_stated(report, tmp_path):
    _, warehouse = report
    with duckdb.connect(str(warehouse.path)) as con:
        con.execute("CREATE TABLE IF NOT EXISTS accounting_raw.fx_rates (rate_date DATE, currency VARCHAR, "
                    "quote_currency VARCHAR, rate DECIMAL(38, 12))")  # fmt: skip
        con.executemany("INSERT INTO accounting_raw.fx_rates VALUES (?, ?, ?, ?)", RATES)
        (as_of,) = con.execute(f"SELECT as_of FROM {M}.accounting__model_run").fetchone()
    # the models were built without one: the report rebuilds them in EUR, as of the same day
    again = write_report(warehouse.path, tmp_path / "in-eur", reporting_currency="EUR")
    parser = Figures()
    page = rendered_dom(again.path)
    parser.feed(page)
    figures = parser.figures
    # a headline that leaves currencies out says which on its card, not only in the section below it
    assert "open receivables, in EUR, without CAD, JPY, KWD (no rate)" in page
    assert "all currencies in EUR" not in page
    with duckdb.connect(str(warehouse.path), read_only=True) as con:
        q = lambda sql: con.execute(sql).fetchall()  # noqa: E731
        assert q(f"SELECT as_of, reporting_currency FROM {M}.accounting__model_run") == [(as_of, "EUR")]
        ((open_amount, overdue, unapplied, missing),) = q(
            f"SELECT open_amount, overdue_amount, unapplied_amount, unconverted_currencies "
            f"FROM {M}.accounting__reporting_currency_totals"
        )
        assert figures["reporting_currency"] == ["EUR"]
        assert number(figures["headline.reporting.open"][0].removeprefix("EUR ")) == open_amount > 0
        assert number(figures["headline.reporting.overdue"][0]) == overdue
        assert number(figures["headline.reporting.unapplied"][0].removeprefix("EUR ")) == unapplied
        assert missing == "CAD, JPY, KWD" and figures["reporting.unconverted"][0].startswith("CAD, JPY, KWD (")
        for bucket, amount in q(f"SELECT bucket, open_amount FROM {M}.accounting__reporting_currency_aging"):
            assert number(figures[f"reporting.aging.{bucket}"][0]) == amount
        stated = dict(zip(figures["rates.currency"], figures["rates.rate"], strict=True))
        assert stated["USD"] == "1 USD = 0.8623 EUR" and stated["GBP"] == "1 GBP = 1.1573 EUR"
        assert stated["EUR"] == "1 EUR = 1 EUR" and stated["JPY"] == stated["KWD"] == "no rate"
    assert again.headline["reporting"]["open"] == open_amount
