"""`accounting-etl transform`: `dbt build` of the reconciliation models (`transforms/`) in the warehouse (the
load job does this after every load; this is for a new as-of date, after changing a model, or after adding
one of your own). A DuckDB file, or the configured destination (`ACCOUNTING_ETL__DESTINATION=postgres`)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from pipelines import settings
from pipelines.models.build import DEFAULT_KNOWLEDGE, Knowledge, TransformResult, build_models, run_project
from pipelines.warehouse.access import configured_target, docs_target, models_warehouse


def transform_database(
    database: str | None = None,
    dataset: str | None = None,
    as_of: date | None = None,
    reporting_currency: str | None = None,
    knowledge: Knowledge = DEFAULT_KNOWLEDGE,
) -> TransformResult:
    """Build the models as of `as_of` (default today, UTC), totalled in `reporting_currency` (default
    ACCOUNTING_ETL__REPORTING_CURRENCY; none: nothing converted), with the loads' history read as `knowledge`
    says (default: what they had seen by the end of `as_of`)."""
    code = settings.reporting_currency(reporting_currency)
    with models_warehouse(database, dataset) as (warehouse, target, open_database):
        work_dir = warehouse.models_work_dir()
        return build_models(open_database, target, work_dir, as_of=as_of, reporting_currency=code, knowledge=knowledge)


def write_docs(out_dir: str | Path, database: str | None = None, dataset: str | None = None) -> Path:
    """`dbt docs generate` against the warehouse: the models, their columns and tests, and the lineage from
    the loaded tables, as one self-contained page (`index.html`, dbt's static site) beside dbt's
    `manifest.json` and `catalog.json`. Returns the page. Reads a snapshot of the warehouse: writes nothing."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {"static_index.html": "index.html", "manifest.json": "manifest.json", "catalog.json": "catalog.json"}
    with docs_target(database, dataset) as (warehouse, target):
        work_dir = warehouse.models_work_dir().with_name(warehouse.models_work_dir().name + "-docs")
        run = run_project(["docs", "generate", "--static"], target, work_dir, artifacts=[*written])
    if not run.success:
        raise RuntimeError(f"dbt docs generate failed (dbt's log: {run.log_file})")
    for artifact, name in written.items():
        (out / name).write_bytes(run.artifacts[artifact])
    return out / "index.html"


def project_manifest(database: str | None = None, dataset: str | None = None) -> dict[str, Any]:
    """dbt's manifest of the project as it builds in the configured warehouse (`dbt parse`; nothing is
    opened): what Dagster's dbt assets are made from."""
    warehouse, target = configured_target(database, dataset)
    run = run_project(["parse"], target, warehouse.models_work_dir(), artifacts=["manifest.json"])
    if not run.success:
        raise RuntimeError(f"dbt parse failed (dbt's log: {run.log_file})")
    return json.loads(run.artifacts["manifest.json"])
