"""Opening the warehouse: for the load's writer, the models, the report and push, with one writer at a time.

`models_warehouse` / `pipeline_models` give the models' dbt target (`transforms/`) and a way to open the
warehouse around it; `read_warehouse` opens it for `report` and `status`: a DuckDB file directly, any other
SQL destination through dlt's SQL client (their statements are plain SQL both take). `push_connection`
opens it for push, whose ledger needs committed statements of its own:
DuckDB or PostgreSQL, one push at a time per warehouse.

One writer at a time, while the fetching runs in parallel:

Loads of different connections run at the same time (each in its own dlt pipeline), but what touches the
warehouse is taken in turn:

- DuckDB has a single writer per file, and another process cannot even read a file that one process
  writes. So every access (reading back stored hashes, restoring state, the load step, the models, the
  run summary) holds an exclusive lock on `<file>.writer.lock`. It is an OS file lock, released when the
  holder ends, however it ends; a waiting load blocks until the lock is free.
- PostgreSQL takes concurrent reads and writes, but two loads changing one dataset's tables at once
  race on schema changes (both add the same column, both create the same table) and share dlt's staging
  tables. So the load step (and the models) holds a session advisory lock keyed by the dataset; it works
  across machines, since it lives in the server.
- Other destinations: no lock (their loads are not run side by side here).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import dlt
import duckdb
from dlt.common.pipeline import get_dlt_pipelines_dir
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

from pipelines import settings
from pipelines.warehouse.destination import duckdb_memory_limit, make_destination, uses_duckdb_file
from pipelines.warehouse.locks import advisory_lock, file_lock
from transforms.dbt_runner import DbtTarget
from transforms.run import Database, DuckDBDatabase, OpenDatabase, SqlClientDatabase

# (column names, rows) of one query
Query = Callable[[str], tuple[list[str], list[tuple[Any, ...]]]]

Guard = Callable[[], AbstractContextManager[Any]]


def writer_guard(pipeline: Any) -> Guard:
    """A context-manager factory that holds the warehouse of `pipeline` for one writer (waiting its turn)."""
    name = pipeline.destination.destination_name
    if name == "duckdb":
        database = pipeline.sql_client().credentials.database
        return lambda: file_lock(f"{database}.writer.lock", f"the writer's turn on {database}", wait=True)
    if name == "postgres":
        url = pipeline.sql_client().credentials.to_native_representation()
        dataset = pipeline.dataset_name
        return lambda: advisory_lock(url, dataset, f"the writer's turn on dataset {dataset}")
    return nullcontext


def _models_pipeline(dataset: str | None) -> dlt.Pipeline:
    return dlt.pipeline(
        pipeline_name="accounting_models", destination=make_destination(), dataset_name=settings.dataset_name(dataset)
    )


@contextmanager
def _destination_client(dataset: str | None) -> Iterator[Any]:
    pipeline = _models_pipeline(dataset)
    with writer_guard(pipeline)(), pipeline.sql_client() as client:
        yield client


def dbt_target(credentials: Any, dataset: str) -> DbtTarget:
    """The dbt target of a dlt destination's credentials: a DuckDB file or a PostgreSQL database (the two
    adapters installed), the models reading `dataset`. Refused before dbt runs when `<dataset>_reconciliation`
    is no plain identifier (a long dataset name)."""
    settings.models_schema(dataset)
    if isinstance(credentials, DuckDbCredentials):
        return DbtTarget.duckdb(credentials.database, dataset, {"memory_limit": duckdb_memory_limit()})
    if getattr(credentials, "drivername", None) in ("postgres", "postgresql"):
        return DbtTarget.postgres(
            credentials.host,
            credentials.port or 5432,
            credentials.username,
            credentials.database,
            dataset,
            password=None if credentials.password is None else str(credentials.password),
        )
    raise settings.ConfigurationError(
        f"the models are built with dbt on DuckDB or PostgreSQL; the destination ({type(credentials).__name__}) is "
        "neither: load with --no-transform, or build the dbt project in transforms/ with your own profile"
    )


def models_work_dir(target: DbtTarget) -> Path:
    """Where dbt keeps its artifacts and log for one warehouse and dataset (dlt's data folder): the next
    build there reuses its parse."""
    key = hashlib.blake2b(target.identity().encode(), digest_size=8).hexdigest()
    return Path(get_dlt_pipelines_dir()).parent / "accounting_dbt" / f"{target.schema}-{key}"


def pipeline_models(pipeline: dlt.Pipeline) -> tuple[DbtTarget, OpenDatabase]:
    """The dbt target of a pipeline's destination, and a way to open it through dlt's SQL client."""

    @contextmanager
    def open_database() -> Iterator[Database]:
        with pipeline.sql_client() as client:
            yield SqlClientDatabase(client)

    return dbt_target(pipeline.destination_client().config.credentials, pipeline.dataset_name), open_database


def configured_target(database: str | None = None, dataset: str | None = None) -> DbtTarget:
    """The models' dbt target in the DuckDB file, else in the configured destination (nothing is opened)."""
    if uses_duckdb_file(database):
        return dbt_target(DuckDbCredentials(settings.duckdb_file(database)), settings.dataset_name(dataset))
    return pipeline_models(_models_pipeline(dataset))[0]


@contextmanager
def models_warehouse(
    database: str | None = None, dataset: str | None = None
) -> Iterator[tuple[DbtTarget, OpenDatabase]]:
    """The models' dbt target in the DuckDB file, else in the configured destination, and a way to open the
    warehouse, holding the writer's turn throughout."""
    if not uses_duckdb_file(database):
        pipeline = _models_pipeline(dataset)
        with writer_guard(pipeline)():
            yield pipeline_models(pipeline)
        return
    target = configured_target(database, dataset)
    path = target.fields["path"]

    @contextmanager
    def open_database() -> Iterator[Database]:
        with duckdb.connect(path) as con:
            yield DuckDBDatabase(con)

    with file_lock(f"{path}.writer.lock", f"the writer's turn on {path}", wait=True):
        yield target, open_database


@contextmanager
def read_warehouse(database: str | None = None, dataset: str | None = None) -> Iterator[Query]:
    """A query function on the warehouse: the DuckDB file (read-only), else the configured destination."""
    if uses_duckdb_file(database):
        with duckdb.connect(settings.duckdb_file(database), read_only=True) as con:

            def query(sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
                cursor = con.execute(sql)
                return [d[0] for d in cursor.description], cursor.fetchall()

            yield query
    else:
        with _destination_client(dataset) as client:

            def query(sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
                with client.execute_query(sql) as cursor:
                    return [d[0] for d in cursor.description], list(cursor.fetchall())

            yield query


class PostgresConnection:
    """A psycopg2 connection (autocommit) that speaks like a DuckDB one, for the push ledger's few portable
    statements: `execute(sql, params)` with `?` placeholders returns a cursor (`fetchone`, `fetchall`,
    `description`), and statements commit as they run (BEGIN ... COMMIT are explicit, as on DuckDB)."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self._connection.autocommit = True
        self.execute("SET TIME ZONE 'UTC'")

    @classmethod
    def connect(cls, url: str) -> PostgresConnection:
        import psycopg2

        return cls(psycopg2.connect(url))

    @staticmethod
    def _placeholders(sql: str) -> str:
        return sql.replace("%", "%%").replace("?", "%s")

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        cursor = self._connection.cursor()
        cursor.execute(self._placeholders(sql), params)
        return cursor

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any:
        cursor = self._connection.cursor()
        cursor.executemany(self._placeholders(sql), rows)
        return cursor

    def close(self) -> None:
        self._connection.close()


@contextmanager
def push_connection(database: str | None = None, dataset: str | None = None) -> Iterator[Any]:
    """The warehouse for one push, refused (`AlreadyRunning`) while another push into it runs: the DuckDB
    file (a file lock beside it) or the configured PostgreSQL (an advisory lock in the server)."""
    if uses_duckdb_file(database):
        database_file = settings.duckdb_file(database)
        with file_lock(f"{database_file}.push.lock", f"a push into {database_file}"):
            con = duckdb.connect(database_file)
            try:
                yield con
            finally:
                con.close()
        return
    with _destination_client(dataset) as client:
        if client.capabilities.sqlglot_dialect != "postgres":
            raise ValueError("push keeps its ledger in DuckDB or PostgreSQL; the configured destination is neither")
        url = client.credentials.to_native_representation()
    name = settings.dataset_name(dataset)
    with advisory_lock(url, f"push:{name}", f"a push into dataset {name}", wait=False) as connection:
        yield PostgresConnection(connection)
