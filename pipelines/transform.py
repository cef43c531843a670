"""`accounting-etl transform`: rebuild the reconciliation models of a DuckDB warehouse (the load job does
this after every load; this is for a new as-of date, or after changing a model)."""

from __future__ import annotations

from datetime import date

import duckdb

from pipelines import settings
from transforms.run import DuckDBDatabase, TransformResult, run_transforms


def transform_database(
    database: str | None = None, dataset: str | None = None, as_of: date | None = None
) -> TransformResult:
    with duckdb.connect(settings.duckdb_file(database)) as con:
        return run_transforms(DuckDBDatabase(con), settings.dataset_name(dataset), as_of=as_of)
