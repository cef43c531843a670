"""The load job: a provider -> warehouse (DuckDB by default), then a summary row in `load_runs`. Every provider
fills the same tables; each has its own dlt pipeline (its own state) and they load one after the other into
one dataset.

Callable from the CLI, Python, a notebook or an orchestrator:

    from pipelines.load import run_load, run_loads
    summary = run_load("rootfi", resources=["payments", "invoices"])
    summaries = run_loads()  # every configured provider, then the models once

Settings come from dlt's config and secrets (environment variables work): each provider's
`SOURCES__<PROVIDER>__...` (`accounting-etl load --help` lists them), ACCOUNTING_ETL__DESTINATION (default
duckdb), ACCOUNTING_ETL__DATASET_NAME (default accounting_raw), DESTINATION__DUCKDB__CREDENTIALS (default
accounting.duckdb), or any other dlt destination's settings.

A load fetches and normalizes while reading the warehouse as it is (a snapshot on DuckDB), beside readers and
other loads, then writes in one writer's turn (`pipelines/warehouse/identity.py`): the load step, the push
tables, the models and the run's summary, which on DuckDB become visible together.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import dlt
from dlt.common.destination import Destination

from pipelines import registry, settings
from pipelines.exit_codes import ExitCode
from pipelines.models.build import build_models, parse_models
from pipelines.progress import live, load_table
from pipelines.push.ledger import ensure_tables
from pipelines.registry import check_distinct_aliases, configured_providers, provider
from pipelines.settings import ConfigurationError
from pipelines.summary import LoadSummary
from pipelines.warehouse.access import open_session_database
from pipelines.warehouse.destination import file_format, make_destination, refuse_catalog_collision
from pipelines.warehouse.identity import Warehouse, WriteSession
from pipelines.warehouse.locks import AlreadyRunning
from pipelines.warehouse.stored import WarehouseRecords
from sources.common.http.client import RequestStats
from sources.common.scan import ScanLog
from sources.common.secrets import SECRETS

log = logging.getLogger("accounting_etl.load")


def connection_pipeline_name(provider_name: str, alias: str) -> str:
    """The dlt pipeline of one connection's own loads (its own state and lock): `accounting_<provider>_<alias>`,
    the alias made a valid identifier (as dlt requires), with a short digest when that changed it, so that
    `acme-eu` and `acme_eu` never share a pipeline."""
    slug = re.sub(r"[^a-z0-9_]", "_", alias.lower())
    if slug != alias:
        slug = f"{slug}_{hashlib.blake2b(alias.encode(), digest_size=3).hexdigest()}"
    return f"accounting_{provider_name}_{slug}"


def run_load(
    provider_name: str,
    resources: Sequence[str] | None = None,
    only_connections: Sequence[str] | None = None,
    api_key: str | None = None,
    connections: Mapping[str, str] | None = None,
    base_url: str | None = None,
    page_size: int | None = None,
    destination: str | Destination | None = None,
    database: str | None = None,
    dataset_name: str | None = None,
    pipeline_name: str | None = None,
    pipelines_dir: str | None = None,
    source_options: Mapping[str, Any] | None = None,
    transform: bool = True,
    as_of: date | None = None,
    full_refresh: bool = False,
    reporting_currency: str | None = None,
) -> LoadSummary:
    """Load one provider into the warehouse and record the run.

    Args:
        provider_name: a registered provider (`pipelines/registry.py`).
        resources: which of `payments`, `invoices`, `tracking_categories`, `contacts` (default: all).
        only_connections: load only these aliases of the provider's configured accounts.
        api_key: overrides the configured API key.
        connections: override the configured accounts: alias -> account, as the provider's accounts setting
            takes it.
        base_url: overrides the configured API root.
        page_size: overrides the configured rows per list request.
        destination: a dlt destination (name or object); default from config, else DuckDB.
        database: the DuckDB file to write (overrides DESTINATION__DUCKDB__CREDENTIALS); DuckDB only.
        dataset_name: the dataset (schema) to load into; default `accounting_raw`.
        pipeline_name: the dlt pipeline, whose state (Rootfi's positions) the warehouse keeps under this name.
        pipelines_dir: dlt's scratch folder (default: one per warehouse under dlt's data folder), emptied of
            this pipeline's files before the load: the state is always the warehouse's own.
        source_options: more arguments of the provider's source (max_attempts, backoff_base, timeout, ...).
        transform: rebuild the reconciliation models after the load (`transforms/`).
        as_of: the date the models age receivables to (default: the day the load starts, UTC).
        full_refresh: an incremental source scans every record, not only the changes since the last load
            (a source whose scans are always complete ignores it).
        reporting_currency: the ISO 4217 code the models total every currency in (default
            ACCOUNTING_ETL__REPORTING_CURRENCY; none: nothing converted).

    Returns:
        The run's summary; `status` is `ok`, or `partial` when a connection's scan failed.
    """
    source_provider = provider(provider_name)
    resources = list(resources or source_provider.resources)
    unknown = sorted(set(resources) - set(source_provider.resources))
    if unknown:
        raise ConfigurationError(f"unknown resource(s) {unknown}; choose from {list(source_provider.resources)}")
    api_key = source_provider.api_key(api_key)
    reporting_currency = settings.reporting_currency(reporting_currency)  # refused before anything is loaded
    selected = source_provider.accounts(connections, only_connections)
    SECRETS.add([api_key, *(selected.values() if source_provider.accounts_are_secret else ())])
    pipeline_name = pipeline_name or f"accounting_{provider_name}"
    kwargs: dict[str, Any] = {"full_refresh": full_refresh, **(source_options or {})}
    if base_url:
        kwargs["base_url"] = base_url
    if page_size:
        kwargs["page_size"] = page_size
    dataset_name = settings.dataset_name(dataset_name)
    destination = make_destination(destination, database)
    refuse_catalog_collision(destination, dataset_name)
    warehouse = Warehouse.of(destination, dataset_name)
    with warehouse.job_lock(
        f"load-{pipeline_name}", f"a load of pipeline {pipeline_name!r} into {warehouse.describe()}"
    ):
        folder = Path(pipelines_dir) if pipelines_dir else warehouse.scratch_dir()
        # dlt's local folder is scratch: the state (Rootfi's positions) comes from the warehouse being loaded,
        # never from a folder that outlived it (a deleted DuckDB file, another warehouse loaded before)
        shutil.rmtree(folder / pipeline_name, ignore_errors=True)
        return _run(warehouse, folder, pipeline_name, provider_name, resources, api_key, selected, kwargs,
                    transform, as_of, reporting_currency)  # fmt: skip


def run_loads(
    providers: Sequence[str] | None = None,
    only_connections: Sequence[str] | None = None,
    transform: bool = True,
    as_of: date | None = None,
    **options: Any,
) -> list[LoadSummary]:
    """Load several providers (default: every configured one) into one dataset, one after the other (a
    DuckDB file has one writer), then rebuild the models once. `only_connections` may name aliases of any
    of them; `options` go to every `run_load`."""
    chosen = [provider(name) for name in providers] if providers else configured_providers()
    if not chosen:
        needed = " or ".join(
            f"{p.setting('api_key')} and {p.setting(p.accounts_setting)}" for p in registry.providers()
        )
        raise ConfigurationError(f"no provider configured: set {needed}")
    accounts = {p.name: p.accounts() for p in chosen}
    check_distinct_aliases(accounts)
    if only_connections:
        unknown = sorted(set(only_connections) - {a for aliases in accounts.values() for a in aliases})
        if unknown:
            raise ConfigurationError(f"unknown connection alias(es) {unknown}")
        chosen = [p for p in chosen if set(accounts[p.name]) & set(only_connections)]
    summaries = []
    for position, source_provider in enumerate(chosen):
        subset = [a for a in only_connections if a in accounts[source_provider.name]] if only_connections else None
        last = position == len(chosen) - 1
        summaries.append(
            run_load(
                source_provider.name, only_connections=subset, transform=transform and last, as_of=as_of, **options
            )
        )
    return summaries


def _run(
    warehouse: Warehouse,
    folder: Path,
    pipeline_name: str,
    provider_name: str,
    resources: list[str],
    api_key: str,
    selected: dict[str, str],
    kwargs: dict[str, Any],
    transform: bool,
    as_of: date | None,
    reporting_currency: str | None,
) -> LoadSummary:
    # arrow tables get dlt's `_dlt_load_id` too, so every row says which load wrote it
    dlt.config["normalize.parquet_normalizer.add_dlt_load_id"] = True
    summary = LoadSummary(
        run_id=str(uuid.uuid4()),
        pipeline_name=pipeline_name,
        provider=provider_name,
        started_at=datetime.now(UTC),
    )
    # one date for the whole run: the models parsed ahead and the models built age to the same day, even when
    # the load crosses midnight (else the parse is for a day the build does not use)
    as_of = as_of or summary.started_at.date()
    stats, scans = RequestStats(), ScanLog()
    failure: Exception | None = None
    started = time.monotonic()

    def pipeline_on(destination: Any) -> dlt.Pipeline:
        return dlt.pipeline(pipeline_name=pipeline_name, destination=destination, dataset_name=warehouse.dataset,
                            pipelines_dir=str(folder))  # fmt: skip

    # Fetching and normalizing read the warehouse as it is (its state, what is stored) and write nothing to it,
    # so they run beside other loads and readers; the writing is one writer's turn after them (`writing`).
    try:
        with warehouse.reading() as read_destination:
            pipeline = pipeline_on(read_destination)
            pipeline.sync_destination()
            fmt = file_format(pipeline)
            stored = WarehouseRecords(pipeline, duckdb=warehouse.kind == "duckdb")
            source = provider(provider_name).make_source(api_key, selected, stats=stats, scan_log=scans,
                                                         stored=stored, **kwargs)  # fmt: skip
            log.info("loading %s %s for %d connection(s) into %s", provider_name, ", ".join(resources),
                     len(selected), warehouse.describe())  # fmt: skip
            started = time.monotonic()
            with live(lambda: load_table(provider_name, scans, stats, started)):
                pipeline.extract(source.with_resources(*resources), loader_file_format=fmt)
            extracted = time.monotonic()
            pipeline.normalize()
            normalized = time.monotonic()
            summary.step_seconds = {
                "extract": round(extracted - started, 3),
                "normalize": round(normalized - extracted, 3),
            }
    except AlreadyRunning:
        raise  # the warehouse is held: nothing to record in it either
    except Exception as exc:
        failure = exc
    turn: dict[str, float] = {}
    with warehouse.writing(f"a load of {provider_name} ({pipeline_name})", timings=turn) as session:
        pipeline = pipeline_on(session.destination())
        if failure is None:
            try:
                wanted = transform and any(scans.rows_per_table().values())
                with _models_parsed_meanwhile(session, warehouse, as_of, reporting_currency, wanted):
                    loading = time.monotonic()
                    try:
                        stored.start_history(pipeline)  # a warehouse loaded before history was kept
                        info = pipeline.load()
                        # the deletions the complete scans found, in this turn
                        stored.apply(pipeline, info.loads_ids[-1] if info.loads_ids else None)
                    except Exception:
                        # a package loaded part-way: thrown away whole (the next run fetches it again), so that
                        # the warehouse never holds some of its tables' rows without the others
                        session.discard()
                        raise
                    summary.load_ids.extend(info.loads_ids)
                    summary.step_seconds["load"] = round(time.monotonic() - loading, 3)
                summary.rows_per_table = scans.rows_per_table()
                summary.status = "partial" if scans.failed else "ok"
                if warehouse.kind == "duckdb":
                    with session.connect() as con:
                        ensure_tables(con, warehouse.dataset)  # the push queue and ledger
                if transform:
                    _transform(session, warehouse, summary, as_of, reporting_currency)
            except Exception as exc:
                failure = exc
        if failure is not None:
            summary.status = "failed"
            summary.error = SECRETS.describe(failure, limit=2000)
        _finish(summary, stats, scans)
        _diagnose(summary, kwargs.get("base_url") or provider(provider_name).base_url())
        _record(pipeline, summary)
    steps = {"waited for the warehouse": "wait", "warehouse copy": "copy", "warehouse swap": "publish"}
    for step, key in steps.items():
        if turn.get(key, 0.0) >= 0.05:
            summary.step_seconds[step] = turn[key]
    if failure is not None:
        raise failure
    return summary


@contextmanager
def _models_parsed_meanwhile(
    session: WriteSession, warehouse: Warehouse, as_of: date, reporting_currency: str | None, wanted: bool
) -> Iterator[None]:
    """While the warehouse loads (work that waits on the destination, not on Python), dbt is imported and
    parses the project in a thread, so that the models' build after the load starts at once (the parse takes a
    core the load step leaves idle). Only when rows were written: a load that wrote none usually leaves the
    models up to date, and then nothing needs parsing. Waits for the thread before going on; a parse that fails
    only costs its time (the build parses again and says why)."""
    if not wanted:
        yield
        return
    try:
        target = session.dbt_target()
    except Exception:  # no dbt target for this destination: the models step reports it
        yield
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dbt-parse") as ahead:
        parsed = ahead.submit(parse_models, target, warehouse.models_work_dir(), as_of, reporting_currency)
        try:
            yield
        finally:
            if parsed.exception() is not None:
                log.debug("parsing the models ahead failed", exc_info=parsed.exception())


def _diagnose(summary: LoadSummary, base_url: str) -> None:
    """Scans that failed for a setting to fix say which (`SOURCES__PANORA__API_KEY`, ...); when every scan of
    the run failed so, the summary's `problem` is the one line that says it (a configuration error when the
    provider refused the credentials of every connection)."""
    source_provider = provider(summary.provider)
    settings_of = {
        "api_key": source_provider.setting("api_key"),
        "account": source_provider.setting(source_provider.accounts_setting),
        "unreachable": source_provider.setting("base_url"),
    }
    failed = summary.failed_scans
    for scan in failed:
        if scan.cause in settings_of and scan.error and "(check " not in scan.error:
            which = f" ({scan.connection})" if scan.cause == "account" else ""
            scan.error += f" (check {settings_of[scan.cause]}{which})"
    if not summary.scans or len(failed) < len(summary.scans):
        return
    causes = {scan.cause for scan in failed}
    said = (failed[0].error or "").split(" failed: ", 1)[-1].split(" (check ")[0]
    if causes <= {"api_key", "account"}:
        checks = " and ".join(settings_of[c] for c in sorted(causes))
        summary.problem = (
            f"{source_provider.title} refused the credentials of every connection ({said}): check {checks}"
        )
        summary.problem_exit = ExitCode.BAD_INPUT
    elif causes == {"unreachable"}:
        summary.problem = (
            f"nothing answers at {base_url} for {source_provider.title}: check {settings_of['unreachable']} and "
            "that the server is running"
        )
        summary.problem_exit = ExitCode.NEEDS_A_LOOK


def _finish(summary: LoadSummary, stats: RequestStats, scans: ScanLog) -> None:
    summary.finished_at = datetime.now(UTC)
    summary.requests = stats.as_dict()
    summary.scans = scans.results


def _transform(
    session: WriteSession,
    warehouse: Warehouse,
    summary: LoadSummary,
    as_of: date | None,
    reporting_currency: str | None,
) -> None:
    """Build the models after a load (`dbt build`); a model or test that fails is reported, it does not undo
    a good load."""
    try:
        result = build_models(open_session_database(session), session.dbt_target(), warehouse.models_work_dir(),
                              as_of=as_of, only_if_changed=True, reporting_currency=reporting_currency)  # fmt: skip
    except Exception as exc:
        summary.models_error = f"models failed: {SECRETS.redact(str(exc))[:500]}"
    else:
        summary.models = result.rows
        summary.models_schema = result.models_schema
        summary.models_skipped = result.skipped
        summary.models_up_to_date = result.up_to_date
        summary.step_seconds["transform"] = result.seconds
        if result.error:
            summary.models_error = SECRETS.redact(result.error)[:2000]
    if summary.models_error:
        log.error("%s (the data loaded; rerun `accounting-etl transform` once fixed)", summary.models_error)


def _record(pipeline: dlt.Pipeline, summary: LoadSummary) -> None:
    """Store the run's summary; a failure here is reported, never allowed to hide the run's own outcome."""
    if pipeline.has_pending_data:
        # the load itself did not finish: running now would retry that package, not record the summary
        log.warning("run summary not stored: the load did not finish (the next run fetches its data again)")
        return
    try:
        pipeline.run(summary.resources(), loader_file_format=file_format(pipeline))
    except Exception as exc:
        log.error("could not record the run summary: %s", SECRETS.redact(str(exc))[:500])
