"""`accounting-etl transform`: rebuild the reconciliation models of the warehouse (the load job does this
after every load; this is for a new as-of date, or after changing a model). A DuckDB file, or the
configured destination (`ACCOUNTING_ETL__DESTINATION=postgres`, ...)."""

from __future__ import annotations

from datetime import date

from pipelines import settings
from pipelines.warehouse.access import models_database
from transforms.run import TransformResult, run_transforms


def transform_database(
    database: str | None = None, dataset: str | None = None, as_of: date | None = None
) -> TransformResult:
    raw = settings.dataset_name(dataset)  # a name that cannot work is refused before the warehouse is opened
    with models_database(database, dataset) as db:
        return run_transforms(db, raw, as_of=as_of)
