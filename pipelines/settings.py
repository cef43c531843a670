"""Where the jobs read and write, resolved once from dlt's config (environment variables work)."""

from __future__ import annotations

import dlt

# Not `accounting`: DuckDB 2.0 names the catalog of `accounting.duckdb` "accounting", and a schema of
# the same name makes every `accounting.<table>` reference ambiguous (a Binder Error, even for dlt).
DEFAULT_DATASET = "accounting_raw"
DEFAULT_DUCKDB_FILE = "accounting.duckdb"


def dataset_name(override: str | None = None) -> str:
    """ACCOUNTING_ETL__DATASET_NAME, else `accounting_raw`."""
    return override or dlt.config.get("accounting_etl.dataset_name") or DEFAULT_DATASET


def duckdb_file(override: str | None = None) -> str:
    """DESTINATION__DUCKDB__CREDENTIALS, else `accounting.duckdb` in the working directory."""
    return override or dlt.config.get("destination.duckdb.credentials") or DEFAULT_DUCKDB_FILE
