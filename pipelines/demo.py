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


def run_demo(
    database: str = "accounting.duckdb", pipelines_dir: str | None = None, report_dir: str = "report"
) -> LoadSummary:
    """Start both sandboxes (real rate limits on), load every resource of every Panora connection and Rootfi
    company into one DuckDB file (the reconciliation models are rebuilt after the second load), write the
    reconciliation report, and end with a short summary: what loaded, where it is, what to try next.
    Returns the worse of the two load summaries."""
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
    report = write_report(database, report_dir)
    print(closing_summary(database, summaries, report.path, len(report.csv_files)))
    return next((s for s in summaries if s.status != "ok" or s.models_error), summaries[-1])


def closing_summary(database: str, summaries: list[LoadSummary], report: Path, csv_files: int) -> str:
    """What the demo leaves a person with: what loaded, where it is, what to try next (no data dumps)."""
    here = os.path.relpath(database)
    lines = ["", "Loaded:"]
    lines += [f"  {s.provider:<7} {s.render().splitlines()[0]}" for s in summaries]
    with duckdb.connect(database, read_only=True) as con:
        tables = con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ? AND table_name NOT LIKE '\\_dlt%' "
            "ESCAPE '\\' ORDER BY table_name",
            [DEFAULT_DATASET],
        ).fetchall()
        counts = [(t, con.execute(f"SELECT count(*) FROM {DEFAULT_DATASET}.{t}").fetchone()[0]) for (t,) in tables]
        statuses = con.execute(
            "SELECT sum(invoices), sum(settled), sum(partially_paid), sum(overpaid), sum(unpaid), "
            "sum(balance_mismatch), sum(unapplied_payments) FROM reconciliation.reconciliation_summary"
        ).fetchone()
    width = max(len(t) for t, _ in counts)
    lines += ["", f"Tables in {here} (dataset {DEFAULT_DATASET}; the models in schema reconciliation):"]
    lines += [f"  {t:<{width}}  {n:>9,}" for t, n in counts]
    invoices, settled, partial, overpaid, unpaid, mismatch, unapplied = (int(v or 0) for v in statuses)
    lines += [
        "",
        f"Reconciliation: {invoices:,} invoices: {settled:,} settled, {partial:,} partially paid, {unpaid:,} unpaid, "
        f"{overpaid:,} overpaid, {mismatch:,} with a balance mismatch; {unapplied:,} unapplied payments.",
        f"Report: {report.resolve()} (and {csv_files} exception lists as CSV beside it)",
        "",
        "Try next:",
        f"  .venv/bin/accounting-etl status --database {here}",
        f"  .venv/bin/python -c \"import duckdb; print(duckdb.connect('{here}')"
        f".sql('FROM {DEFAULT_DATASET}.payments LIMIT 5'))\"",
        f"  .venv/bin/accounting-etl transform --database {here} --as-of 2026-12-31",
        '  .venv/bin/pip install -e ".[notebooks]" && .venv/bin/jupyter lab notebooks/',
    ]
    return "\n".join(lines)
