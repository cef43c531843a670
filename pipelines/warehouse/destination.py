"""Which warehouse the jobs write to, and how load packages are written for it (dlt's config; environment
variables work)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dlt
from dlt.common.destination import Destination
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

from pipelines.settings import DEFAULT_DESTINATION, DEFAULT_DUCKDB_MEMORY_LIMIT, ConfigurationError, duckdb_file
from pipelines.warehouse.duckdb_merge import with_key_first_dedup

# DuckDB's own memory default is 80% of the machine, which it then keeps as cache: a load of a million
# records grew by more than a GB in its merge and models. Bounded (DEFAULT_DUCKDB_MEMORY_LIMIT, or
# ACCOUNTING_ETL__DUCKDB_MEMORY_LIMIT), DuckDB spills the rest beside the file; the key-first merge of
# `duckdb_merge` is what keeps that spill small (figures: bench/README.md).
# dlt's connections only copy packages into tables and read rows back whose order nothing uses (every query
# that shows rows orders them), so the insertion order is not kept: DuckDB then copies a package's parquet
# files into the staging tables in parallel.
LOAD_DUCKDB_SETTINGS = {"preserve_insertion_order": False}


def make_destination(destination: str | Destination | None = None, database: str | None = None) -> str | Destination:
    """The configured destination; DuckDB writes `database`, else DESTINATION__DUCKDB__CREDENTIALS, else
    `accounting.duckdb`, within ACCOUNTING_ETL__DUCKDB_MEMORY_LIMIT. dlt's DuckDB, however given, merges with
    the cheaper de-duplication of `duckdb_merge`. A `database` beside another destination is refused."""
    if destination is None:
        destination = dlt.config.get("accounting_etl.destination") or DEFAULT_DESTINATION
    if database and destination != "duckdb":
        raise ConfigurationError(f"--database names a DuckDB file, not a {destination} warehouse")
    if destination == "duckdb":
        credentials = DuckDbCredentials(
            duckdb_file(str(Path(database).resolve()) if database else None),
            global_config=LOAD_DUCKDB_SETTINGS | {"memory_limit": duckdb_memory_limit()},
        )
        destination = dlt.destinations.duckdb(credentials=credentials)
    return with_key_first_dedup(destination)


def duckdb_memory_limit() -> str:
    """ACCOUNTING_ETL__DUCKDB_MEMORY_LIMIT, else 256MB: the bound of every DuckDB connection the jobs open."""
    return str(dlt.config.get("accounting_etl.duckdb_memory_limit") or DEFAULT_DUCKDB_MEMORY_LIMIT)


def uses_duckdb_file(database: str | None) -> bool:
    """A DuckDB file was named, or the configured destination is DuckDB (the default)."""
    return bool(database) or (dlt.config.get("accounting_etl.destination") or DEFAULT_DESTINATION) == "duckdb"


def file_format(pipeline: dlt.Pipeline) -> Any:
    """How load packages are written for the pipeline's destination. The sources yield arrow tables:
    parquet where the destination loads it natively (DuckDB's default `insert_values` was 300x slower
    here); PostgreSQL loads parquet only through an ADBC driver, so it gets CSV, which it takes with COPY;
    any other destination its own preference."""
    capabilities = pipeline.destination.capabilities()
    if pipeline.destination.destination_name == "postgres":
        return "csv"
    return "parquet" if "parquet" in capabilities.supported_loader_file_formats else None


def refuse_catalog_collision(destination: str | Destination, dataset_name: str) -> None:
    """DuckDB names a file's catalog after the file: `x.duckdb` with a dataset `x` makes every `x.<table>`
    ambiguous (DuckDB 2.0 refuses it, and so the load would fail half-way). Say so before anything runs."""
    credentials = getattr(getattr(destination, "config_params", {}), "get", lambda _: None)("credentials")
    if isinstance(credentials, DuckDbCredentials):
        credentials = credentials.database
    if isinstance(credentials, str) and credentials.endswith(".duckdb"):
        if Path(credentials).stem.lower() == dataset_name.lower():
            raise ConfigurationError(
                f"the DuckDB file {Path(credentials).name} and the dataset {dataset_name!r} share a name, which "
                "DuckDB cannot tell apart: rename the file or set ACCOUNTING_ETL__DATASET_NAME"
            )
