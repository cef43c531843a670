"""`accounting-etl transform`: `dbt build` of the reconciliation models (`transforms/`) in the warehouse (the
load job does this after every load; this is for a new as-of date, after changing a model, or after adding
one of your own). A DuckDB file, or the configured destination (`ACCOUNTING_ETL__DESTINATION=postgres`)."""

from __future__ import annotations

from datetime import date

from pipelines import settings
from pipelines.warehouse.access import models_warehouse, models_work_dir
from transforms.run import TransformResult, build_models


def transform_database(
    database: str | None = None, dataset: str | None = None, as_of: date | None = None
) -> TransformResult:
    settings.dataset_name(dataset)  # a name that cannot work is refused before the warehouse is opened
    with models_warehouse(database, dataset) as (target, open_database):
        settings.check_identifier(target.models_schema, "models schema (the dataset name + _reconciliation)")
        return build_models(open_database, target, models_work_dir(target), as_of=as_of)
