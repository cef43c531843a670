"""`accounting-etl transform`: `dbt build` of the reconciliation models (`transforms/`) in the warehouse (the
load job does this after every load; this is for a new as-of date, after changing a model, or after adding
one of your own). A DuckDB file, or the configured destination (`ACCOUNTING_ETL__DESTINATION=postgres`)."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

from pipelines.warehouse.access import configured_target, models_warehouse, models_work_dir
from transforms.run import TransformResult, build_models, run_project


def transform_database(
    database: str | None = None, dataset: str | None = None, as_of: date | None = None
) -> TransformResult:
    with models_warehouse(database, dataset) as (target, open_database):
        return build_models(open_database, target, models_work_dir(target), as_of=as_of)


def write_docs(out_dir: str | Path, database: str | None = None, dataset: str | None = None) -> Path:
    """`dbt docs generate` against the warehouse: the models, their columns and tests, and the lineage from
    the loaded tables, as one self-contained page (`index.html`, dbt's static site) beside dbt's
    `manifest.json` and `catalog.json`. Returns the page."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with models_warehouse(database, dataset) as (target, _):
        work_dir = models_work_dir(target)
        run = run_project(["docs", "generate", "--static"], target, work_dir)
    if not run.success:
        raise RuntimeError(f"dbt docs generate failed (dbt's log: {run.log_file})")
    built = work_dir / "target"
    shutil.copyfile(built / "static_index.html", out / "index.html")
    for name in ("manifest.json", "catalog.json"):
        shutil.copyfile(built / name, out / name)
    return out / "index.html"


def project_manifest(database: str | None = None, dataset: str | None = None) -> Path:
    """dbt's `manifest.json` of the project as it builds in the configured warehouse (`dbt parse`; nothing
    is opened): what Dagster's dbt assets are made from."""
    target = configured_target(database, dataset)
    work_dir = models_work_dir(target)
    run = run_project(["parse"], target, work_dir)
    if not run.success:
        raise RuntimeError(f"dbt parse failed (dbt's log: {run.log_file})")
    return work_dir / "target" / "manifest.json"
