"""A warehouse as the jobs know it: what it is (the destination, the DuckDB file or the database, the dataset),
where its locks and dlt's scratch folder live, and how it is read and written.

A warehouse is the unit of identity. Everything a job keeps about it belongs to it, so two checkouts, two
warehouses or two users on one host never block or mix each other:

- **locks**: one load per pipeline, one push, one writer at a time, all kept with the warehouse itself: for a
  DuckDB file in `.<file>.etl/` beside it (`duckdb_file.py`), for PostgreSQL as advisory locks in its server
  keyed by database and dataset;
- **dlt state**: the warehouse's own (`_dlt_pipeline_state`, written with each load's data in one package).
  The pipeline folder dlt works in is scratch: emptied before every load, so a position (Rootfi's incremental
  cursors) is only ever taken from the warehouse being loaded, never from a folder that outlived it (a deleted
  DuckDB file, another warehouse loaded on this host before). It lives under dlt's data folder, one per
  warehouse (`scratch_dir`).

Reads and writes follow one rule (`writing`): on DuckDB, a writer works on a copy that replaces the file when it
is done, so that readers never stop a load and a load never stops a reader (`duckdb_file.py`); on PostgreSQL,
which takes readers and writers side by side, writers of one dataset take turns through an advisory lock.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dlt
import duckdb
from dlt.common.destination import Destination
from dlt.common.pipeline import get_dlt_pipelines_dir
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

from pipelines import settings
from pipelines.models.dbt_runner import DbtTarget
from pipelines.warehouse.destination import (
    LOAD_DUCKDB_SETTINGS,
    duckdb_memory_limit,
    make_destination,
)
from pipelines.warehouse.duckdb_file import WRITER_WAIT_SECONDS, DuckDBFile, Keep, Turn
from pipelines.warehouse.duckdb_merge import with_key_first_dedup
from pipelines.warehouse.locks import advisory_lock, file_lock


@dataclass(frozen=True)
class Warehouse:
    """One warehouse: `kind` is the dlt destination's name (`duckdb`, `postgres`, ...), `location` names the
    file or the database without any secret, `dataset` the schema the tables go to."""

    kind: str
    location: str
    dataset: str
    destination: Any = field(repr=False, compare=False)  # the dlt destination, as configured
    credentials: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def of(
        cls,
        destination: str | Destination | None = None,
        dataset: str | None = None,
        database: str | Path | None = None,
    ) -> Warehouse:
        """The warehouse a job writes: the DuckDB file `database` when given, else `destination` (a name or a
        dlt destination; default: the configured one, DuckDB's `accounting.duckdb` unless told otherwise)."""
        dataset = settings.dataset_name(dataset)
        # a DuckDB file is opened as the load opens it (its settings and memory bound)
        made = make_destination(destination) if database is None else make_destination("duckdb", str(database))
        destination = Destination.from_reference(made)
        credentials = getattr(destination.configuration(None, accept_partial=True), "credentials", None)
        name = destination.destination_name
        if name == "duckdb" and isinstance(credentials, DuckDbCredentials) and _is_file(credentials.database):
            return cls("duckdb", str(Path(credentials.database).resolve()), dataset, destination, credentials)
        if name == "postgres" and credentials is not None:
            where = f"{credentials.host}:{credentials.port or 5432}/{credentials.database}"
            return cls("postgres", where, dataset, destination, credentials)
        return cls(name, str(getattr(credentials, "database", "") or name), dataset, destination, credentials)

    # -- what it is -------------------------------------------------------------------------------------------
    @property
    def identity(self) -> str:
        return f"{self.kind}:{self.location}#{self.dataset}"

    @property
    def key(self) -> str:
        """A short name for folders and lock keys: readable, and unique by a digest of the identity."""
        slug = re.sub(r"[^a-z0-9]+", "-", Path(self.location).name.lower()).strip("-")[:40] or self.kind
        digest = hashlib.blake2b(self.identity.encode(), digest_size=6).hexdigest()
        return f"{self.kind}-{slug}-{self.dataset}-{digest}"

    @property
    def file(self) -> DuckDBFile:
        assert self.kind == "duckdb", f"{self.identity} is no DuckDB file"
        return DuckDBFile(self.location)

    def describe(self) -> str:
        """How messages name it: the file, or the database and dataset."""
        return self.location if self.kind == "duckdb" else f"dataset {self.dataset} in {self.kind} {self.location}"

    def scratch_dir(self) -> Path:
        """dlt's pipeline folder for loads into this warehouse (scratch: emptied before every load)."""
        return Path(get_dlt_pipelines_dir()) / "accounting-etl" / self.key

    def models_work_dir(self) -> Path:
        """Where dbt keeps its artifacts and log for this warehouse: the next build there reuses its parse."""
        return Path(get_dlt_pipelines_dir()).parent / "accounting_dbt" / f"{self.dataset}_reconciliation-{self.key}"

    # -- locks ------------------------------------------------------------------------------------------------
    @contextmanager
    def job_lock(self, name: str, what: str) -> Iterator[None]:
        """One `what` at a time per warehouse and `name` (a pipeline's loads, push): a second is refused with
        `AlreadyRunning` naming the first."""
        if self.kind == "duckdb":
            with file_lock(self.file.lock_path(name), what):
                yield
        elif self.kind == "postgres":
            # advisory locks belong to the database they are taken in: the dataset names the rest, whatever the
            # host is called in the URL (localhost, an address, a pooler)
            with advisory_lock(self._url(), f"{name}:{self.dataset}", what, wait=False):
                yield
        else:
            with file_lock(self.scratch_dir().parent / f"{self.key}.{name}.lock", what):
                yield

    # -- reading and writing ----------------------------------------------------------------------------------
    @contextmanager
    def reading(self) -> Iterator[Any]:
        """A dlt destination to read the warehouse as it is now (dlt's state, what is stored), unchanged while
        held: on DuckDB a read-only snapshot of the file (created empty when there is none yet)."""
        if self.kind != "duckdb":
            yield self.destination
            return
        if not self.file.path.exists():
            with self.file.writing("creating the warehouse"):
                pass
        with self.file.snapshot() as snapshot:
            yield _duckdb_destination(snapshot, read_only=True)

    @contextmanager
    def writing(
        self, what: str, durable: bool = False, keep: Sequence[Keep] = (), timings: dict[str, float] | None = None
    ) -> Iterator[WriteSession]:
        """The writer's turn for `what`: everything written through the session lands together when the block
        ends (DuckDB), or as it is written, with other writers of the dataset kept out meanwhile (PostgreSQL).
        `durable` and `keep` (tables `schema.table`): writes that must survive a stop half-way; `timings`: the
        seconds the turn spent waiting, copying and putting the copy in place (`duckdb_file`)."""
        if self.kind == "duckdb":
            with self.file.writing(what, durable=durable, keep=keep, timings=timings) as turn:
                yield WriteSession(self, turn.path, turn)
            return
        guard: Any = nullcontext()
        if self.kind == "postgres":
            guard = advisory_lock(self._url(), f"write:{self.dataset}", f"the writer's turn: {what}",
                                  wait_seconds=WRITER_WAIT_SECONDS)  # fmt: skip
        with guard:
            yield WriteSession(self, None)

    @contextmanager
    def query(self) -> Iterator[Any]:
        """A function running one query on the warehouse as it is now, returning (column names, rows); holds
        a connection only for the block (a DuckDB file read-only)."""
        if self.kind == "duckdb":
            # through a snapshot, a path of its own: DuckDB hands out the instance it holds for a path, and one
            # this process holds for the file itself may be of a version a writer has since replaced
            with self.file.snapshot() as snapshot:
                if snapshot is None:
                    raise FileNotFoundError(f"no warehouse at {self.location}: load first")
                with duckdb.connect(str(snapshot), read_only=True) as con:

                    def run(sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
                        cursor = con.execute(sql)
                        return [d[0] for d in cursor.description], cursor.fetchall()

                    yield run
            return
        pipeline = dlt.pipeline(pipeline_name="accounting_reader", destination=self.destination,
                                dataset_name=self.dataset, pipelines_dir=str(self.scratch_dir()))  # fmt: skip
        with pipeline.sql_client() as client:

            def run(sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
                with client.execute_query(sql) as cursor:
                    return [d[0] for d in cursor.description], list(cursor.fetchall())

            yield run

    def _url(self) -> str:
        return self.credentials.to_native_representation()


@dataclass
class WriteSession:
    """One writer's turn: the destination, dbt target and connections that write where this turn writes (on
    DuckDB the copy that replaces the file at the end)."""

    warehouse: Warehouse
    path: Path | None  # the DuckDB copy
    turn: Turn | None = None

    def discard(self) -> None:
        """Throw away what this turn wrote (on DuckDB; a load whose load step failed), unless it holds writes
        that must not be lost. On PostgreSQL what was written stays written."""
        if self.turn is not None:
            self.turn.discard()

    def destination(self) -> Any:
        """A dlt destination writing here."""
        if self.path is None:
            return self.warehouse.destination
        return _duckdb_destination(self.path)

    def dbt_target(self) -> DbtTarget:
        """The models' dbt target here (DuckDB or PostgreSQL, the two adapters installed)."""
        settings.models_schema(self.warehouse.dataset)  # refused before dbt runs when it is no identifier
        if self.path is not None:
            return DbtTarget.duckdb(str(self.path), self.warehouse.dataset, {"memory_limit": duckdb_memory_limit()})
        credentials = self.warehouse.credentials
        if self.warehouse.kind == "postgres":
            password = None if credentials.password is None else str(credentials.password)
            return DbtTarget.postgres(
                credentials.host,
                credentials.port or 5432,
                credentials.username,
                credentials.database,
                self.warehouse.dataset,
                password=password,
            )
        raise settings.ConfigurationError(
            f"the models are built with dbt on DuckDB or PostgreSQL; the destination ({self.warehouse.kind}) is "
            "neither: load with --no-transform, or build the dbt project in transforms/ with your own profile"
        )

    @contextmanager
    def connect(self) -> Iterator[Any]:
        """A connection for committed statements of the jobs' own (the push ledger, a queue): DuckDB's, or a
        psycopg2 connection that speaks like it (`PostgresConnection`)."""
        if self.path is not None:
            con = duckdb.connect(str(self.path))
            try:
                yield con
            finally:
                con.close()
            return
        if self.warehouse.kind != "postgres":
            raise settings.ConfigurationError(
                f"push keeps its ledger in DuckDB or PostgreSQL; the destination ({self.warehouse.kind}) is neither"
            )
        con = PostgresConnection.connect(self.warehouse._url())
        try:
            yield con
        finally:
            con.close()


def _is_file(database: Any) -> bool:
    return isinstance(database, str) and bool(database) and not database.startswith(":")


def _duckdb_destination(path: Path, read_only: bool = False) -> Any:
    """dlt's DuckDB (with the cheaper merge) on `path`, within the configured memory bound."""
    config = LOAD_DUCKDB_SETTINGS | {"memory_limit": duckdb_memory_limit()}
    credentials = DuckDbCredentials(str(path), read_only=read_only, global_config=config)
    return with_key_first_dedup(dlt.destinations.duckdb(credentials=credentials))


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
        # psycopg2 reads placeholders (and so a literal %) only when given parameters
        cursor.execute(sql if params is None else self._placeholders(sql), params)
        return cursor

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any:
        cursor = self._connection.cursor()
        cursor.executemany(self._placeholders(sql), rows)
        return cursor

    def bulk_queue(self, schema: str, table: str, columns: list[str], rows: list[list[Any]]) -> None:
        """Replace-or-insert many queue rows at once, through a temporary table filled in pages (psycopg2's
        `execute_values`), in one transaction."""
        from psycopg2.extras import execute_values

        names = ", ".join(columns)
        cursor = self._connection.cursor()
        cursor.execute("BEGIN")
        try:
            cursor.execute(f"CREATE TEMP TABLE staged_rows ON COMMIT DROP AS SELECT {names} FROM {schema}.{table} "
                           "WITH NO DATA")  # fmt: skip
            execute_values(cursor, f"INSERT INTO staged_rows ({names}) VALUES %s", rows, page_size=1000)
            cursor.execute(f"DELETE FROM {schema}.{table} WHERE external_id IN (SELECT external_id FROM staged_rows)")
            cursor.execute(f"INSERT INTO {schema}.{table} ({names}) SELECT {names} FROM staged_rows")
            cursor.execute("COMMIT")
        except BaseException:
            cursor.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._connection.close()
