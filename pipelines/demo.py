"""`accounting-etl demo`: sandbox -> load -> a look at the tables, all on this machine."""

from __future__ import annotations

import os
from pathlib import Path

import dlt
import duckdb

from pipelines.load import run_load
from pipelines.report import write_report
from pipelines.sandbox import build_rootfi_sandbox, build_sandbox
from pipelines.settings import DEFAULT_DATASET
from pipelines.summary import LoadSummary

PREVIEW_TABLES = (
    "payments",
    "payments__line_items",
    "invoices",
    "invoices__line_items",
    "invoices__line_items__tracking_categories",
    "tracking_categories",
    "load_runs",
)


def run_demo(
    database: str = "accounting.duckdb", pipelines_dir: str | None = None, report_dir: str = "report"
) -> LoadSummary:
    """Start both sandboxes (real rate limits on), load every resource of every Panora connection and Rootfi
    company into one DuckDB file (the reconciliation models are rebuilt after the second load), show the
    data, and write the reconciliation report. Returns the worse of the two load summaries."""
    database = str(Path(database).resolve())
    pipelines_dir = pipelines_dir or str(Path(database).parent / ".dlt-pipelines")
    destination = dlt.destinations.duckdb(credentials=database)
    with build_sandbox(port=0, rate_limit=100) as sandbox, build_rootfi_sandbox(port=0, rate_limit=100) as rootfi:
        print(f"Panora sandbox serving on {sandbox.url}, Rootfi sandbox on {rootfi.url}")
        summaries = [
            run_load(
                "panora",
                api_key=sandbox.api_key,
                connections=sandbox.store.tokens(),
                base_url=sandbox.url,
                destination=destination,
                pipeline_name="accounting_demo",
                pipelines_dir=pipelines_dir,
                transform=False,
            ),
            run_load(
                "rootfi",
                api_key=rootfi.api_key,
                connections=rootfi.store.company_ids(),
                base_url=rootfi.url,
                destination=destination,
                pipeline_name="accounting_demo_rootfi",
                pipelines_dir=pipelines_dir,
            ),
        ]
    for summary in summaries:
        print(summary.render())
    print(f"\nData: {database} (dataset `{DEFAULT_DATASET}`, models in `reconciliation`). Query it with:")
    print(
        f"  .venv/bin/python -c \"import duckdb; print(duckdb.connect('{os.path.relpath(database)}')"
        f".sql('FROM {DEFAULT_DATASET}.payments LIMIT 5'))\""
    )
    print("  or open the notebooks in notebooks/ (see README)")
    _preview(database)
    report = write_report(database, report_dir)
    print(f"\nReconciliation report: {report.path.resolve()}")
    print(f"  exception lists (CSV) beside it: {', '.join(p.name for p in report.csv_files)}")
    return next((s for s in summaries if s.status != "ok" or s.models_error), summaries[-1])


def _preview(database: str) -> None:
    with duckdb.connect(database, read_only=True) as con:
        if con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'reconciliation'"
        ).fetchone()[0]:
            frame = con.execute(
                "SELECT connection, currency, invoices, settled, partially_paid, overpaid, unpaid, balance_mismatch, "
                "open_amount, unapplied_payments FROM reconciliation.reconciliation_summary ORDER BY 1, 2"
            ).df()
            print("\nreconciliation.reconciliation_summary (the report below has the details):")
            print(frame.to_string(index=False))
        for table in PREVIEW_TABLES:
            name = f"{DEFAULT_DATASET}.{table}"
            count = con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
            print(f"\n{name}: {count:,} rows")
            frame = con.execute(f"SELECT * EXCLUDE (_dlt_load_id) FROM {name} LIMIT 3").df()
            print(frame.to_string(max_colwidth=24, max_cols=9, index=False))
