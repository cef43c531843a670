"""Builds the reconciliation models: every `models/NN_name.sql` in order, as table `name` in the models
schema, in one transaction (a crash leaves the previous models in place).

Each model file is one SELECT that states its grain in its opening comment, reading `{raw}` (the loaded
tables), `{models}` (the models before it) and `{as_of}` (the date ages are counted to: explicit, so a
report can be reproduced; today by default).

The models are written once, in DuckDB's dialect, and translated with sqlglot for any other database
(PostgreSQL: `date_diff` becomes date subtraction, and so on), so there is no copy of a model per database.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import sqlglot

from pipelines.settings import check_identifier
from sources.common.currencies import currency_table

log = logging.getLogger("accounting_etl.transforms")

MODELS_DIR = Path(__file__).parent / "models"
DEFAULT_MODELS_SCHEMA = "reconciliation"
REQUIRED_RAW_TABLES = (
    "invoices",
    "invoices__line_items",
    "invoices__line_items__tracking_categories",
    "invoices__tracking_categories",
    "payments",
    "payments__line_items",
    "payments__tracking_categories",
    "tracking_categories",
)


MODELS_DIALECT = "duckdb"  # the dialect the model files are written in


class Database(Protocol):
    dialect: str  # sqlglot's name of the database's SQL dialect

    def execute(self, sql: str) -> None: ...

    def query(self, sql: str) -> list[tuple[Any, ...]]: ...


def translate(sql: str, dialect: str) -> str:
    """A statement written for DuckDB, in `dialect`."""
    if dialect == MODELS_DIALECT:
        return sql
    statements = sqlglot.transpile(sql, read=MODELS_DIALECT, write=dialect)
    if len(statements) != 1:
        raise ValueError(f"expected one statement, got {len(statements)}")
    return statements[0]


class DuckDBDatabase:
    """A DuckDB connection (analysts' notebooks, `accounting-etl transform`)."""

    dialect = "duckdb"

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.connection.execute("SET TimeZone = 'UTC'")

    def execute(self, sql: str) -> None:
        self.connection.execute(sql)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        return self.connection.execute(sql).fetchall()


class SqlClientDatabase:
    """dlt's SQL client of a pipeline's destination (the load job)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.dialect = getattr(client.capabilities, "sqlglot_dialect", None) or MODELS_DIALECT
        # dates are cut from timestamps in UTC, whatever the server's or session's zone
        if self.dialect == "duckdb":
            client.execute_sql("SET TimeZone = 'UTC'")
        elif self.dialect == "postgres":
            client.execute_sql("SET TIME ZONE 'UTC'")

    def execute(self, sql: str) -> None:
        self.client.execute_sql(sql)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        return list(self.client.execute_sql(sql) or [])


@dataclass
class TransformResult:
    as_of: date
    models_schema: str
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    skipped: str | None = None
    up_to_date: bool = False  # nothing they read changed since they were built: left as they are


def model_files() -> list[Path]:
    return sorted(MODELS_DIR.glob("[0-9][0-9]_*.sql"))


def model_name(path: Path) -> str:
    return path.stem.split("_", 1)[1]


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, int | Decimal):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def _currencies_sql(models: str) -> list[str]:
    values = ",\n".join(
        f"({_literal(code)}, {_literal(name)}, {_literal(exp)}, {_literal(unit)})"
        for code, name, exp, unit in currency_table()
    )
    return [
        f"DROP TABLE IF EXISTS {models}.currencies",
        f"CREATE TABLE {models}.currencies (code VARCHAR, name VARCHAR, exponent INTEGER, minor_unit DECIMAL(18, 4))",
        f"INSERT INTO {models}.currencies VALUES\n{values}",
    ]


def missing_raw_tables(db: Database, raw: str) -> list[str]:
    rows = db.query("SELECT table_name FROM information_schema.tables WHERE table_schema = " + _literal(raw))
    present = {r[0] for r in rows}
    return [t for t in REQUIRED_RAW_TABLES if t not in present]


def _count_rows(db: Database, models_schema: str, files: list[Path], result: TransformResult) -> None:
    for path in files:
        name = model_name(path)
        result.rows[name] = db.query(f"SELECT count(*) FROM {models_schema}.{name}")[0][0]


def inputs_fingerprint(db: Database, raw_schema: str, as_of: date, files: list[Path]) -> str | None:
    """What the models are built from, as one digest: the as-of date, the model files, and each raw table's
    row count and latest load id (every write, deletion marks included, comes with a new load id). None
    when it cannot be read (a table loaded without `_dlt_load_id`): the models are then always built."""
    parts = []
    for table in REQUIRED_RAW_TABLES:
        parts.append(f"(SELECT count(*) FROM {raw_schema}.{table})")
        parts.append(f"(SELECT max(_dlt_load_id) FROM {raw_schema}.{table})")
    try:
        state = db.query(translate("SELECT " + ", ".join(parts), db.dialect))[0]
    except Exception as exc:
        log.info("cannot read what the models are built from (%s); building them", type(exc).__name__)
        return None
    digest = hashlib.blake2b(digest_size=16)
    for item in (raw_schema, as_of.isoformat(), *(str(v) for v in state)):
        digest.update(item.encode() + b"\0")
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _built_from(db: Database, models_schema: str) -> str | None:
    """The fingerprint the models were last built from (None before this version wrote one)."""
    try:
        return db.query(f"SELECT inputs_fingerprint FROM {models_schema}.model_run")[0][0]
    except Exception:
        return None


def run_transforms(
    db: Database,
    raw_schema: str,
    models_schema: str = DEFAULT_MODELS_SCHEMA,
    as_of: date | None = None,
    only_if_changed: bool = False,
) -> TransformResult:
    """Build every model from the raw tables in `raw_schema`, counting ages to `as_of` (default today).
    `only_if_changed`: leave the models as they are when nothing they read changed since they were built
    (the same raw rows, as-of date and model files), as after a load that wrote nothing."""
    check_identifier(raw_schema, "dataset of the loaded tables")
    check_identifier(models_schema, "models schema")
    as_of = as_of or datetime.now(UTC).date()
    result = TransformResult(as_of=as_of, models_schema=models_schema)
    missing = missing_raw_tables(db, raw_schema)
    if missing:
        result.skipped = f"raw tables not loaded yet: {', '.join(missing)}"
        log.warning("transforms skipped: %s", result.skipped)
        return result
    started = time.monotonic()
    files = model_files()
    # read before building: a write that lands meanwhile makes the next run build again, never the reverse
    fingerprint = inputs_fingerprint(db, raw_schema, as_of, files)
    if only_if_changed and fingerprint is not None and _built_from(db, models_schema) == fingerprint:
        result.up_to_date = True
        _count_rows(db, models_schema, files, result)
        result.seconds = round(time.monotonic() - started, 3)
        log.info("transforms: the models in %s are up to date (as of %s)", models_schema, as_of)
        return result
    names = {"raw": raw_schema, "models": models_schema, "as_of": as_of.isoformat()}
    # translated before the transaction starts: a model that cannot be translated changes nothing
    statements = [f"CREATE SCHEMA IF NOT EXISTS {models_schema}", *_currencies_sql(models_schema)]
    for path in files:
        name = model_name(path)
        statements.append(f"DROP TABLE IF EXISTS {models_schema}.{name}")
        statements.append(f"CREATE TABLE {models_schema}.{name} AS\n{path.read_text().format(**names)}")
    statements.append(f"DROP TABLE IF EXISTS {models_schema}.model_run")
    statements.append(
        f"CREATE TABLE {models_schema}.model_run AS SELECT DATE {_literal(as_of.isoformat())} AS as_of, "
        f"CAST({_literal(datetime.now(UTC).isoformat())} AS TIMESTAMP) AS built_at, "
        f"{_literal(raw_schema)} AS raw_schema, CAST({_literal(fingerprint)} AS VARCHAR) AS inputs_fingerprint"
    )
    statements = [translate(statement, db.dialect) for statement in statements]
    db.execute("BEGIN TRANSACTION")
    try:
        for statement in statements:
            db.execute(statement)
        db.execute("COMMIT")
    except Exception:
        db.execute("ROLLBACK")
        raise
    _count_rows(db, models_schema, files, result)
    result.seconds = round(time.monotonic() - started, 3)
    log.info("transforms: %d models in %s (as of %s) in %.1fs", len(files), models_schema, as_of, result.seconds)
    return result
