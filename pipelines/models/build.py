"""Builds the reconciliation models: `dbt build` of this folder's dbt project (models, the currencies seed and
every test), in-process, then records what they were built from.

A load that changed nothing leaves the models as they are: before dbt runs, the row counts and latest load
ids of the raw tables, the as-of date and the project's files are digested, and compared with the digest the
last complete build stored in `accounting__model_run`. A failing model or test is reported, never raised:
the load it follows stays loaded, and `accounting__model_run` keeps its previous row (it is built after
every other model and their tests), so the next run builds again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol

from pipelines.models.dbt_runner import (
    ANALYST_MODELS_ENV,
    DbtRun,
    DbtTarget,
    analyst_models_dir,
    parse_ahead,
    project_digest,
    run_dbt,
)

log = logging.getLogger("accounting_etl.transforms")

MODEL_RUN = "accounting__model_run"
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
# Raw tables a warehouse loaded by an older version may lack: the models read them only where present.
# history tables (sources/common/tables/history.py): a warehouse loaded before history was kept has none
OPTIONAL_RAW_TABLES = ("contacts", "invoices_history", "payments_history", "payments__line_items_history")
# The exchange rates the user keeps in the dataset (docs/models.md): created empty when missing, so that the
# models always find it and a user always finds where to put rates.
FX_RATES = "fx_rates"
FX_RATES_COLUMNS = "rate_date date, currency varchar(3), quote_currency varchar(3), rate decimal(38, 12)"
# what of the rates the models read, as one text: a rate added, changed or removed rebuilds them
_FX_RATES_DIGEST = (
    "(SELECT md5(coalesce(string_agg(cast(rate_date as varchar) || ' ' || coalesce(currency, '') || ' ' "
    "|| coalesce(quote_currency, '') || ' ' || cast(rate as varchar), ',' ORDER BY rate_date, currency, "
    "quote_currency, rate), '')) FROM {schema}.fx_rates)"
)
RECORD_TABLES = ("invoices", "payments", "tracking_categories", "contacts")  # the ones with `deleted_at`


class Database(Protocol):
    """The few statements the runner sends itself: standard SQL that DuckDB and PostgreSQL both take."""

    def execute(self, sql: str) -> None: ...

    def query(self, sql: str) -> list[tuple[Any, ...]]: ...


OpenDatabase = Callable[[], AbstractContextManager[Database]]


class DuckDBDatabase:
    """A DuckDB connection, or one that speaks like it (`execute(sql)` returning a cursor)."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def execute(self, sql: str) -> None:
        self.connection.execute(sql)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        return self.connection.execute(sql).fetchall()


@dataclass(frozen=True)
class Knowledge:
    """What of the loads' history the books are read with, beside the as-of date (each None: the models'
    default). `known_at`: versions the loads saw before this moment count for the as-of date (default: the end
    of that day); `closed_through` / `closed_at`: the closed period accounting__changed_after_close watches
    (default: the month before the as-of date's, closed at its end)."""

    known_at: datetime | None = None
    closed_through: date | None = None
    closed_at: datetime | None = None

    def variables(self) -> dict[str, str]:
        out = {}
        if self.known_at is not None:
            out["known_at"] = _utc(self.known_at).isoformat()
        if self.closed_through is not None:
            out["closed_through"] = self.closed_through.isoformat()
        if self.closed_at is not None:
            out["closed_at"] = _utc(self.closed_at).isoformat()
        return out


def _utc(moment: datetime) -> datetime:
    """A moment in UTC; one without an offset is taken as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


DEFAULT_KNOWLEDGE = Knowledge()


@dataclass
class TransformResult:
    as_of: date
    models_schema: str
    reporting_currency: str | None = None
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    skipped: str | None = None
    up_to_date: bool = False  # nothing they read changed since they were built: left as they are
    failures: list[str] = field(default_factory=list)  # models and tests that failed, with dbt's message
    not_built: list[str] = field(default_factory=list)  # left out because something they depend on failed
    tests_passed: int = 0
    log_file: Path | None = None

    @property
    def error(self) -> str | None:
        """One paragraph on what failed, or None when every model and test passed."""
        if not self.failures:
            return None
        text = f"{len(self.failures)} model(s) or test(s) failed: " + "; ".join(self.failures)
        if self.not_built:
            text += f"; {len(self.not_built)} not built because of it ({', '.join(self.not_built[:8])})"
        return text + (f" (dbt's log: {self.log_file})" if self.log_file else "")


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def raw_tables(db: Database, raw: str) -> set[str]:
    rows = db.query("SELECT table_name FROM information_schema.tables WHERE table_schema = " + _literal(raw))
    return {r[0] for r in rows}


def missing_raw_tables(db: Database, raw: str) -> list[str]:
    present = raw_tables(db, raw)
    return [t for t in REQUIRED_RAW_TABLES if t not in present]


def ensure_fx_rates(db: Database, raw_schema: str) -> None:
    """Create `<dataset>.fx_rates`, empty, when the dataset has none (a user's own table is left as it is)."""
    db.execute(f"CREATE TABLE IF NOT EXISTS {raw_schema}.{FX_RATES} ({FX_RATES_COLUMNS})")


def inputs_fingerprint(
    db: Database,
    raw_schema: str,
    as_of: date,
    reporting_currency: str | None = None,
    knowledge: Knowledge = DEFAULT_KNOWLEDGE,
) -> str | None:
    """What the models are built from, as one digest: the as-of date, the reporting currency, the project's
    files, each raw table's row count and latest load id (every write comes with a new load id), how many of
    a record table's rows are marked deleted (the load marks deletions by an update after its load step, which
    may load no package), and the exchange rates. None when it cannot be read (a table loaded without
    `_dlt_load_id`, a rates table of other columns): the models are then always built."""
    parts = []
    present = raw_tables(db, raw_schema)
    for table in (*REQUIRED_RAW_TABLES, *(t for t in OPTIONAL_RAW_TABLES if t in present)):
        parts.append(f"(SELECT count(*) FROM {raw_schema}.{table})")
        parts.append(f"(SELECT max(_dlt_load_id) FROM {raw_schema}.{table})")
        if table in RECORD_TABLES:
            parts.append(f"(SELECT count(deleted_at) FROM {raw_schema}.{table})")
    if FX_RATES in present:
        parts.append(_FX_RATES_DIGEST.format(schema=raw_schema))
    try:
        state = db.query("SELECT " + ", ".join(parts))[0]
    except Exception as exc:
        log.info("cannot read what the models are built from (%s); building them", type(exc).__name__)
        return None
    digest = hashlib.blake2b(digest_size=16)
    chosen = sorted(knowledge.variables().items())
    for item in (raw_schema, as_of.isoformat(), reporting_currency or "", *map(str, chosen), *map(str, state)):
        digest.update(item.encode() + b"\0")
    project_digest(digest)
    return digest.hexdigest()


def _built_from(db: Database, models_schema: str) -> str | None:
    """The fingerprint the models were last built from (None: never built completely by this runner)."""
    try:
        return db.query(f"SELECT inputs_fingerprint FROM {models_schema}.{MODEL_RUN}")[0][0]
    except Exception:
        return None


def _count_rows(db: Database, models_schema: str) -> dict[str, int]:
    tables = db.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = "
        f"{_literal(models_schema)} ORDER BY table_name"
    )
    # names found in the schema are quoted, never spliced: a table named with SQL in it stays a name
    return {name: db.query(f"SELECT count(*) FROM {_identifier(models_schema)}.{_identifier(name)}")[0][0]
            for (name,) in tables}  # fmt: skip


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@contextmanager
def _analysts_folder_for_dbt() -> Iterator[None]:
    """dbt reads the analysts' folder relative to the project: hand it an absolute path for the run."""
    before = os.environ.get(ANALYST_MODELS_ENV)
    folder = analyst_models_dir()
    if folder is not None:
        os.environ[ANALYST_MODELS_ENV] = str(folder)
    try:
        yield
    finally:
        if before is not None:
            os.environ[ANALYST_MODELS_ENV] = before


def _variables(
    target: DbtTarget, as_of: date | None, reporting_currency: str | None, knowledge: Knowledge = DEFAULT_KNOWLEDGE
) -> dict[str, str]:
    """The variables every command gets alike, so that one parse serves them all: the raw schema, the as-of
    date (default today, UTC) and the reporting currency (empty: nothing converted)."""
    return {
        "as_of": (as_of or datetime.now(UTC).date()).isoformat(),
        "raw_schema": target.schema,
        "reporting_currency": reporting_currency or "",
        **knowledge.variables(),
    }


def run_project(
    command: list[str],
    target: DbtTarget,
    work_dir: Path,
    as_of: date | None = None,
    artifacts: Sequence[str] = (),
    reporting_currency: str | None = None,
    knowledge: Knowledge = DEFAULT_KNOWLEDGE,
) -> DbtRun:
    """One dbt command on the project (the analysts' models included), with the named artifacts it left."""
    with _analysts_folder_for_dbt():
        variables = _variables(target, as_of, reporting_currency, knowledge)
        return run_dbt(command, target, work_dir, variables, artifacts=artifacts)


def parse_models(
    target: DbtTarget, work_dir: Path, as_of: date | None = None, reporting_currency: str | None = None
) -> bool:
    """Parse the project now for a `build_models` of the same target, as-of date and reporting currency to
    come (`dbt_runner.parse_ahead`); False when it does not parse."""
    with _analysts_folder_for_dbt():
        return parse_ahead(target, work_dir, _variables(target, as_of, reporting_currency))


def build_models(
    open_database: OpenDatabase,
    target: DbtTarget,
    work_dir: Path,
    as_of: date | None = None,
    only_if_changed: bool = False,
    reporting_currency: str | None = None,
    knowledge: Knowledge = DEFAULT_KNOWLEDGE,
) -> TransformResult:
    """`dbt build` of the models from the raw tables in `target.schema`, as the books stood at the end of
    `as_of` (default today, UTC), totalled in `reporting_currency` (an ISO 4217 code the caller checked,
    `pipelines.settings.reporting_currency`; None: nothing converted). `open_database` opens the warehouse for
    the runner's own few statements; it is closed while dbt runs (dbt opens its own connection).
    `only_if_changed`: leave the models as they are when nothing they read changed since their last complete
    build (the same raw rows, rates, as-of date, reporting currency and project files). `knowledge`: which
    of the loads' history counts (`Knowledge`; by default what the loads had seen by the end of `as_of`)."""
    as_of = as_of or datetime.now(UTC).date()
    raw_schema = target.schema
    result = TransformResult(as_of=as_of, models_schema=target.models_schema, reporting_currency=reporting_currency)
    started = time.monotonic()
    with open_database() as db:
        missing = missing_raw_tables(db, raw_schema)
        if missing:
            result.skipped = f"raw tables not loaded yet: {', '.join(missing)}"
            log.warning("models not built: %s", result.skipped)
            return result
        ensure_fx_rates(db, raw_schema)
        # read before building: a write that lands meanwhile makes the next run build again, never the reverse
        fingerprint = inputs_fingerprint(db, raw_schema, as_of, reporting_currency, knowledge)
        if only_if_changed and fingerprint is not None and _built_from(db, target.models_schema) == fingerprint:
            result.up_to_date = True
            result.rows = _count_rows(db, target.models_schema)
            result.seconds = round(time.monotonic() - started, 3)
            log.info("models: the models in %s are up to date (as of %s)", target.models_schema, as_of)
            return result
    run = run_project(["build"], target, work_dir, as_of, reporting_currency=reporting_currency, knowledge=knowledge)
    result.log_file = run.log_file
    result.failures = [node.describe() for node in run.failures]
    result.not_built = [node.name for node in run.skipped if node.kind != "test"]
    result.tests_passed = sum(1 for node in run.nodes if node.kind == "test" and node.status == "pass")
    with open_database() as db:
        if run.success and fingerprint is not None:
            db.execute(f"UPDATE {target.models_schema}.{MODEL_RUN} SET inputs_fingerprint = {_literal(fingerprint)}")
        result.rows = _count_rows(db, target.models_schema)
    result.seconds = round(time.monotonic() - started, 3)
    if result.error:
        log.error("models: %s", result.error)
    else:
        log.info("models: built in %s (as of %s) in %.1fs", target.models_schema, as_of, result.seconds)
    return result
