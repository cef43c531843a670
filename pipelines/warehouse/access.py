"""The warehouse as the commands other than `load` open it, each through the one writer rule
(`identity.Warehouse`): the models and their docs (`models_warehouse`, `docs_target`), the report and `status`
(`read_warehouse`, a connection only while they read), push (`Warehouse.writing` in `pipelines/push`), and a
user's own writes (`writing`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipelines.models.build import DuckDBDatabase, OpenDatabase
from pipelines.models.dbt_runner import DbtTarget
from pipelines.warehouse.identity import Warehouse, WriteSession

# (column names, rows) of one query
Query = Any


def open_session_database(session: Any) -> OpenDatabase:
    """A way for the models' runner to open the warehouse where a writer's turn writes."""

    @contextmanager
    def open_database() -> Iterator[DuckDBDatabase]:
        with session.connect() as con:
            yield DuckDBDatabase(con)

    return open_database


@contextmanager
def models_warehouse(
    database: str | None = None, dataset: str | None = None, what: str = "a build of the models"
) -> Iterator[tuple[Warehouse, DbtTarget, OpenDatabase]]:
    """The warehouse (the DuckDB file `database`, else the configured destination), in a writer's turn: its
    models' dbt target and a way to open it for the runner's own statements."""
    warehouse = Warehouse.of(database=database, dataset=dataset)
    with warehouse.writing(what) as session:
        yield warehouse, session.dbt_target(), open_session_database(session)


@contextmanager
def docs_target(database: str | None = None, dataset: str | None = None) -> Iterator[tuple[Warehouse, DbtTarget]]:
    """A dbt target that reads the warehouse as it is now and writes nothing (dbt's docs): on DuckDB a
    read-only snapshot of the file, so that neither a load nor a reader has to wait for the docs."""
    warehouse = Warehouse.of(database=database, dataset=dataset)
    if warehouse.kind != "duckdb":
        with warehouse.writing("dbt docs generate") as session:
            yield warehouse, session.dbt_target()
        return
    with warehouse.file.snapshot() as snapshot:
        if snapshot is None:
            raise FileNotFoundError(f"no warehouse at {warehouse.location}: load first")
        target = DbtTarget.duckdb(str(snapshot), warehouse.dataset)
        fields = {**target.fields, "config_options": {"access_mode": "READ_ONLY"}}
        yield warehouse, DbtTarget("duckdb", target.schema, fields)


def configured_target(database: str | None = None, dataset: str | None = None) -> tuple[Warehouse, DbtTarget]:
    """The models' dbt target as a writer's turn builds them (nothing is opened): what Dagster parses."""
    warehouse = Warehouse.of(database=database, dataset=dataset)
    work = warehouse.file.work_path if warehouse.kind == "duckdb" else None
    return warehouse, WriteSession(warehouse, work).dbt_target()


@contextmanager
def read_warehouse(database: str | None = None, dataset: str | None = None) -> Iterator[Query]:
    """A query function on the warehouse (the DuckDB file read-only, else the configured destination), for the
    block only."""
    with Warehouse.of(database=database, dataset=dataset).query() as query:
        yield query


QUEUE_TABLES = ("outbound_payments", "outbound_invoices")


@contextmanager
def writing(
    database: str | Path | None = None, dataset: str | None = None, keep: Sequence[str] = QUEUE_TABLES
) -> Iterator[Any]:
    """A connection for your own writes to the warehouse (a payment queued by SQL, a table of rates), through
    the same rule as the jobs' writes: it waits for a load or push that is writing, never fails because a
    notebook or dashboard has the file open, and what it commits is never lost by another writer. On DuckDB
    the writes become visible together when the block ends. `keep`: the tables (of the dataset) whose rows
    must survive should the process stop half-way (default: the two push queues).

        from pipelines.warehouse import writing
        with writing() as con:
            con.execute("INSERT INTO accounting_raw.outbound_payments (...) VALUES (...)")
    """
    warehouse = Warehouse.of(database=None if database is None else str(database), dataset=dataset)
    kept = [f"{warehouse.dataset}.{table}" if "." not in table else table for table in keep]
    with warehouse.writing("your writes (pipelines.warehouse.writing)", durable=True, keep=kept) as session:
        with session.connect() as con:
            yield con
