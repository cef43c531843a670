"""`accounting-etl demo`: every provider's sandbox -> load -> models -> report, all on this machine."""

from __future__ import annotations

import os
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from pipelines.load import run_load
from pipelines.registry import ENTRIES, check_distinct_aliases
from pipelines.report import write_report
from pipelines.settings import DEFAULT_DATASET, models_schema
from pipelines.summary import LoadSummary
from pipelines.warehouse.destination import make_destination


def run_demo(
    database: str = "accounting.duckdb",
    pipelines_dir: str | None = None,
    report_dir: str = "report",
    reporting_currency: str | None = None,
) -> LoadSummary:
    """Start every registered provider's sandbox (real rate limits on), load every resource of every account
    into one DuckDB file (the reconciliation models are rebuilt after the last load), write the
    reconciliation report, and end with a short summary: what loaded, where it is, what to try next.
    Returns the worst of the load summaries."""
    database = str(Path(database).resolve())
    pipelines_dir = pipelines_dir or str(Path(database).parent / ".dlt-pipelines")
    destination = make_destination("duckdb", database)  # as `load --database` opens it
    with ExitStack() as servers:
        sandboxes = [(e, servers.enter_context(e.sandbox.start_sandbox(port=0, rate_limit=100))) for e in ENTRIES]
        for entry, server in sandboxes:
            print(f"{entry.provider.title} sandbox on {server.url}")
        check_distinct_aliases({entry.name: server.accounts() for entry, server in sandboxes})  # as load does
        summaries = [
            run_load(
                entry.name,
                api_key=server.api_key,
                connections=server.accounts(),
                base_url=server.url,
                destination=destination,
                pipeline_name=f"accounting_demo_{entry.name}",
                pipelines_dir=pipelines_dir,
                transform=position == len(sandboxes) - 1,
                reporting_currency=reporting_currency,
            )
            for position, (entry, server) in enumerate(sandboxes)
        ]
    report = write_report(database, report_dir, reporting_currency=reporting_currency)
    print(closing_summary(database, summaries, report.path, len(report.csv_files)))
    return next((s for s in summaries if s.status != "ok" or s.models_error), summaries[-1])


def closing_summary(database: str, summaries: list[LoadSummary], report: Path, csv_files: int) -> str:
    """What the demo leaves a person with: what loaded, where it is, what to try next (no data dumps)."""
    here = os.path.relpath(database)
    lines = ["", "Loaded:"]
    for s in summaries:
        line = f"  {s.provider:<7} {s.render().splitlines()[0]}"
        if s.step_seconds.get("transform"):  # the last load builds the models of every provider
            line += f" (the models of all: {s.step_seconds['transform']:.1f}s)"
        lines.append(line)
    with duckdb.connect(database, read_only=True) as con:
        tables = con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ? AND table_name NOT LIKE '\\_dlt%' "
            "ESCAPE '\\' ORDER BY table_name",
            [DEFAULT_DATASET],
        ).fetchall()
        counts = [(t, con.execute(f"SELECT count(*) FROM {DEFAULT_DATASET}.{t}").fetchone()[0]) for (t,) in tables]
        statuses = con.execute(
            "SELECT sum(invoices), sum(settled), sum(partially_paid), sum(overpaid), sum(unpaid), "
            "sum(balance_mismatch), sum(awaiting_sync), sum(void_or_draft), sum(unapplied_payments) "
            f"FROM {models_schema(DEFAULT_DATASET)}.accounting__reconciliation_summary"
        ).fetchone()
    width = max(len(t) for t, _ in counts)
    lines += [
        "",
        f"Tables in {here} (dataset {DEFAULT_DATASET}; the models in schema {models_schema(DEFAULT_DATASET)}):",
    ]
    lines += [f"  {t:<{width}}  {n:>9,}" for t, n in counts]
    invoices, settled, partial, overpaid, unpaid, mismatch, awaiting, void, unapplied = (int(v or 0) for v in statuses)
    last_month_end = datetime.now(UTC).date().replace(day=1) - timedelta(days=1)
    lines += [
        "",
        f"Reconciliation: {invoices:,} invoices: {settled:,} settled, {partial:,} partially paid, {unpaid:,} unpaid, "
        f"{overpaid:,} overpaid, {mismatch:,} with a balance mismatch,",
        f"  {awaiting:,} awaiting the provider's sync, {void:,} void or draft; {unapplied:,} unapplied payments.",
        f"Report: {report.resolve()} (and {csv_files} exception lists as CSV beside it)",
        "",
        "Try next:",
        f"  .venv/bin/accounting-etl status --database {here}",
        f"  .venv/bin/python -c \"import duckdb; duckdb.connect('{here}', read_only=True)"
        f".sql('FROM {DEFAULT_DATASET}.payments').show()\"",
        f"  .venv/bin/accounting-etl transform --database {here} --as-of {last_month_end}    # last month's close",
        f"  .venv/bin/accounting-etl docs --database {here}    # the models' documentation and lineage (dbt)",
        '  .venv/bin/pip install -e ".[notebooks]" && .venv/bin/jupyter lab notebooks/',
    ]
    return "\n".join(lines)
