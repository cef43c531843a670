"""`accounting-etl`: the command-line entry point. Each subcommand parses its options and calls one function
in `pipelines/` that can equally be called from Python."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from datetime import date, datetime

from pipelines.exit_codes import ExitCode
from pipelines.logs import setup_logging
from pipelines.push.csv_import import CsvFileError
from pipelines.registry import NAMES, providers
from pipelines.settings import JOB_SETTINGS, ConfigurationError, bad_setting
from pipelines.warehouse.locks import AlreadyRunning
from sources.common.secrets import SECRETS
from sources.common.settings import SHARED as SHARED_SOURCE_SETTINGS


def load_settings_help() -> str:
    """The load command's epilog: every registered provider's settings, then the shared and the jobs' ones
    (all generated from their declarations: the providers' specs and `pipelines.settings.JOB_SETTINGS`)."""
    lines = ["settings (dlt config/secrets; environment variables shown):"]
    for provider in providers():
        lines += [f"  {provider.setting(s.key):<34} {s.help}{' (secret)' if s.secret else ''} [{s.shown_default()}]"
                  for s in provider.settings]  # fmt: skip
    lines += [f"  {'SOURCES__' + s.key.upper():<34} {s.help}" for s in SHARED_SOURCE_SETTINGS]
    lines += [f"  {s.variable:<34} {s.help} [{s.default}]" for s in JOB_SETTINGS]
    lines += [
        "Every configured provider is loaded unless --provider says otherwise; aliases are unique across providers.",
        "State: dlt's state (the incremental providers' positions) is kept in the warehouse itself and read from it on",
        "every load; dlt's local pipeline folder is scratch, emptied first (default: one per warehouse under dlt's",
        "data folder, DLT_DATA_DIR: ~/.dlt, or /var/dlt as root). Locks live beside a DuckDB file (.<file>.etl/).",
        "exit status: 0 loaded, 1 a connection's scan failed (the rest loaded), nothing answered at a provider's",
        "base URL, or the models failed to build, 2 bad settings (also: a provider refused the credentials of",
        "every connection), 3 load failed, 4 another load of the same pipeline into the same warehouse is",
        "running, or another process holds the DuckDB file open for writing",
    ]
    return "\n".join(lines)


PUSH_HELP = """CSV columns (header row; external_id and connection required):
  external_id, connection, invoice_id, contact_id, account_id, currency, exchange_rate,
  total_amount (integer minor units: 1050 = 10.50 EUR), transaction_date (ISO 8601), type,
  tracking_categories (comma-separated ids), overpayment_intended (true/false)
Invoice CSV columns (external_id, connection required; external ids unique across payments and invoices):
  external_id, connection, number, type, contact_id, issue_date, due_date, currency, exchange_rate,
  total_amount, sub_total, total_tax_amount (minor units), memo, tracking_categories, line_items (JSON array)
Bank files: a payments CSV may name the invoice by invoice_number instead of invoice_id (resolved among the
  connection's loaded invoices), and the amount as amount in major units of the row's currency (125.00 EUR
  = 12500) instead of total_amount; an invoices CSV may give amount too. Never rounded, never guessed.
--dry-run writes only its plan (push_plan): it queues nothing, sends nothing, writes no ledger row.
--cancel EXTERNAL_ID[,...] takes queued rows back that cannot have reached the provider (no ledger entry,
  or rejected), recording `cancelled`; a row that may have reached it is refused, naming its state.
exit status: 0 every payment created (a dry run: every row would be; or nothing to do), 1 some rejected,
failed or unknown (or would be rejected), CSV rows not queued, or a cancel refused, 2 bad settings or an
unreadable CSV, 3 push failed, 4 another push into the same warehouse is running"""


DATABASE_HELP = "DuckDB file (default: DESTINATION__DUCKDB__CREDENTIALS or accounting.duckdb)"


def _split(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


REPORTING_CURRENCY_HELP = (
    "total every currency in this ISO 4217 code at the rates of <dataset>.fx_rates (overrides "
    "ACCOUNTING_ETL__REPORTING_CURRENCY; default: nothing converted)"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="accounting-etl",
        description="Load payments and invoices from unified accounting APIs into a warehouse, reconcile them, "
        "and push payments back.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    load = sub.add_parser(
        "load",
        help="load payments, invoices, tracking categories and contacts into the warehouse",
        description="Pull payments, invoices, tracking categories and contacts for every configured account of every "
        "configured provider and merge them into the warehouse: changed records updated, unchanged ones left "
        "alone, deletions marked (listed by the API, or the records a complete scan no longer sees). Ends with a "
        "summary per provider, also stored in `load_runs`.",
        epilog=load_settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    load.add_argument("--provider", help=f"comma-separated: {','.join(NAMES)} (default: every configured provider)")
    load.add_argument(
        "--resources", help="comma-separated: payments,invoices,tracking_categories,contacts (default all)"
    )
    load.add_argument("--connections", help="comma-separated aliases: load only these configured connections")
    load.add_argument(
        "--full-refresh",
        action="store_true",
        help="incremental providers: scan every record again instead of the changes since the last load (and "
        "mark deleted what is no longer listed); providers whose scans are always complete ignore it",
    )
    load.add_argument("--page-size", type=int, help="rows per request (overrides SOURCES__<PROVIDER>__PAGE_SIZE)")
    load.add_argument("--destination", help="dlt destination name (overrides ACCOUNTING_ETL__DESTINATION)")
    load.add_argument("--database", help=DATABASE_HELP + "; the destination is then DuckDB")
    load.add_argument("--dataset", help="dataset name (overrides ACCOUNTING_ETL__DATASET_NAME)")
    load.add_argument(
        "--pipelines-dir",
        help="dlt's scratch folder (default: one per warehouse under dlt's data folder); the state is the "
        "warehouse's own",
    )
    load.add_argument(
        "--no-transform",
        action="store_true",
        help="load only: do not build the dbt models after it (a warehouse the jobs do not build them on, or "
        "an orchestrator that builds them once after many loads)",
    )
    load.add_argument(
        "--as-of",
        type=date.fromisoformat,
        help="age receivables in the models built after the load to this date (default: the day the load starts, UTC)",
    )
    load.add_argument("--reporting-currency", help=REPORTING_CURRENCY_HELP)

    sandbox = sub.add_parser(
        "sandbox",
        help="serve a provider-compatible sandbox API on 127.0.0.1",
        description="Serve one provider's API (--provider) with seeded data on "
        "127.0.0.1, with the real server's behaviour (paging quirks, filters, write jobs, 5xx answers, a rate "
        "limit). Prints the settings that point the pipeline at it. Reads no settings.",
    )
    sandbox.add_argument("--provider", choices=NAMES, default=NAMES[0], help=f"whose API (default {NAMES[0]})")
    sandbox.add_argument("--port", type=int, default=3000, help="port on 127.0.0.1 (default 3000; 0 = any free)")
    sandbox.add_argument("--rate-limit", type=int, default=100, help="requests per 60 s per client; 0 = off")
    sandbox.add_argument("--seed", type=int, help="random seed of the data (default: the sandbox's own)")
    sandbox.add_argument("--scale", type=float, default=1.0, help="multiply the seeded record counts")
    sandbox.add_argument("--delay", type=float, default=0.0, help="seconds added to every answer")

    transform = sub.add_parser(
        "transform",
        help="dbt build of the reconciliation models (load does this after every load)",
        description="Build and test the reconciliation models (the dbt project in transforms/, schema "
        "`<dataset>_reconciliation`) from the loaded tables: staging, payment applications, invoice settlement, "
        "the exception lists, receivables aging, summary, and the models in ACCOUNTING_ETL__ANALYST_MODELS. "
        "Works on the DuckDB file (--database, DESTINATION__DUCKDB__CREDENTIALS) or the configured destination "
        "(ACCOUNTING_ETL__DESTINATION=postgres); reads ACCOUNTING_ETL__DATASET_NAME. Exit 1 when a model or "
        "test fails.",
    )
    transform.add_argument("--database", help=DATABASE_HELP)
    transform.add_argument("--dataset", help="dataset of the loaded tables (default accounting_raw)")
    transform.add_argument(
        "--as-of",
        type=date.fromisoformat,
        help="the books as they stood at the end of this date, UTC: records dated later are left out (default today)",
    )
    transform.add_argument("--reporting-currency", help=REPORTING_CURRENCY_HELP)
    transform.add_argument(
        "--known-at",
        type=_moment,
        help="read the books at the as-of date with what the loads had seen before this moment (ISO 8601, UTC "
        "without an offset; default: the end of the as-of date), e.g. to rebuild a report run that morning",
    )
    transform.add_argument(
        "--closed-through",
        type=date.fromisoformat,
        help="the last day of a closed period: accounting__changed_after_close lists what loads after the close "
        "changed in it (default: the last day of the month before the as-of date's)",
    )
    transform.add_argument(
        "--closed-at",
        type=_moment,
        help="when that period was closed (ISO 8601; default: the end of --closed-through, UTC)",
    )

    docs = sub.add_parser(
        "docs",
        help="dbt docs generate: the models' documentation and lineage as one page",
        description="Run `dbt docs generate` of the models (transforms/) against the warehouse and write its "
        "static site: index.html (one file: models, columns, tests, lineage from the loaded tables), with dbt's "
        "manifest.json and catalog.json beside it.",
    )
    docs.add_argument("--out", default="dbt-docs", help="folder to write into (default ./dbt-docs)")
    docs.add_argument("--database", help=DATABASE_HELP)
    docs.add_argument("--dataset", help="dataset of the loaded tables (default accounting_raw)")

    report = sub.add_parser(
        "report",
        help="write the HTML reconciliation report and CSV exception lists",
        description="Write a self-contained HTML reconciliation report (headline figures, status summary, "
        "aging charts, exception lists) and one CSV per exception list, from the reconciliation models of the "
        "DuckDB file (--database, DESTINATION__DUCKDB__CREDENTIALS) or the configured destination.",
    )
    report.add_argument("--out", default="report", help="folder to write into (default ./report)")
    report.add_argument("--database", help=DATABASE_HELP)
    report.add_argument(
        "--reporting-currency",
        help=REPORTING_CURRENCY_HELP + "; models built in another are rebuilt in this one first, as of the same date",
    )

    push = sub.add_parser(
        "push",
        help="create the queued payments (outbound_payments) through the API, exactly once in effect",
        description="Validate the payments queued in `outbound_payments` (and invoices in `outbound_invoices`) "
        "against the loaded invoices, then create them through each account's provider: one request per record, "
        "or in batches through write jobs (followed to the end, or by the next run), as the provider's API "
        "takes them. A ledger (`push_log`, `push_attempts`) is written before and after every request; an "
        "unclear outcome is looked up before any resend. Reads the same settings as `load`.",
        epilog=PUSH_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    push.add_argument("--from-csv", help="queue the payments of this CSV first (columns: see below)")
    push.add_argument("--invoices-csv", help="queue the invoices of this CSV first (columns: see below)")
    push.add_argument(
        "--dry-run", action="store_true", help="validate and record the plan; queue, send and confirm nothing"
    )
    push.add_argument("--cancel", metavar="EXTERNAL_ID[,...]", help="take these queued rows back (see below)")
    push.add_argument("--concurrency", type=int, default=4, help="payments sent at once (default 4)")
    push.add_argument(
        "--resend-unknown-after",
        type=float,
        default=9 * 3600.0,
        help="seconds before a record whose outcome was unclear and that a lookup cannot find is sent again "
        "(default 9 h: an API may list a remotely created record only after its next sync, 8-hourly at Panora)",
    )
    push.add_argument("--database", help=DATABASE_HELP)

    status = sub.add_parser(
        "status",
        help="per connection: the last load, its failures, rejected records and data age; the push ledger",
        description="Show, per provider and connection, the last load (when, how long, status, records "
        "written, rejected, marked deleted, 429s) with what failed and why, the age of its data, and the push "
        "ledger by state with the rows that need a person (rejected, failed, unknown). Read from the "
        "warehouse (DuckDB file or the configured destination), so it says the same whichever machine ran the "
        "loads. Exit status 0 when every connection's last load completed (and is fresh enough) and no push "
        "needs a person, 1 when a connection failed, is older than --max-age or was never loaded, or the push "
        "ledger holds rows that are rejected, failed, unknown, or pending/submitted for longer than --stuck-after, "
        "2 for bad settings.",
    )
    status.add_argument("--database", help=DATABASE_HELP)
    status.add_argument("--dataset", help="dataset of the loaded tables (default accounting_raw)")
    status.add_argument("--max-age", help="data older than this is stale (exit 1): e.g. 90m, 6h, 2d")
    status.add_argument(
        "--stuck-after",
        help="a push row pending or submitted for longer needs a person (exit 1); default "
        "ACCOUNTING_ETL__PUSH_STUCK_AFTER, else 1h",
    )
    status.add_argument("--json", action="store_true", help="JSON for scripts and monitors instead of tables")

    demo = sub.add_parser(
        "demo",
        help="sandboxes + load into accounting.duckdb + reconciliation report",
        description="Start every provider's sandbox, load them all into one DuckDB file (the reconciliation "
        "models are rebuilt with the last load), say what loaded and where, and write the reconciliation "
        "report. Reads no settings: everything is local.",
    )
    demo.add_argument("--database", default="accounting.duckdb", help="DuckDB file to write")
    demo.add_argument("--report", default="report", help="folder for the report (default ./report)")
    demo.add_argument("--reporting-currency", help=REPORTING_CURRENCY_HELP)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; every error it can end with becomes an exit code and one masked line here (no
    traceback reaches the user; `-v` logs it): 2 bad settings or input, 3 the job itself failed, 4 another
    run holds the lock."""
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        return COMMANDS[args.command](args)
    except AlreadyRunning as exc:
        print(f"accounting-etl {args.command}: {exc}", file=sys.stderr)
        return ExitCode.BUSY
    except Exception as exc:
        setting = bad_setting(exc)
        if setting is not None:
            logging.getLogger("accounting_etl").debug("%s failed", args.command, exc_info=True)
            print(f"accounting-etl {args.command}: {SECRETS.redact(setting)}", file=sys.stderr)
            return ExitCode.BAD_INPUT
        bad_input = isinstance(exc, ConfigurationError | CsvFileError)
        logging.getLogger("accounting_etl").debug("%s failed", args.command, exc_info=True)
        message = SECRETS.redact(str(exc))[:2000]
        print(f"accounting-etl {args.command}{':' if bad_input else ' failed:'} {message}", file=sys.stderr)
        return ExitCode.BAD_INPUT if bad_input else ExitCode.FAILED


def _sandbox(args: argparse.Namespace) -> int:
    from pipelines.sandbox import serve

    serve(args.provider, args.port, args.rate_limit or None, args.seed, args.scale, args.delay)
    return ExitCode.OK


def _demo(args: argparse.Namespace) -> int:
    from pipelines.demo import run_demo

    _tune_process_for_loads()
    summary = run_demo(args.database, report_dir=args.report, reporting_currency=args.reporting_currency)
    return ExitCode.OK if summary.status == "ok" else ExitCode.NEEDS_A_LOOK


def _moment(text: str) -> datetime:
    """An ISO 8601 date-time from the command line (`Z` taken as UTC)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _transform(args: argparse.Namespace) -> int:
    from pipelines.models.build import Knowledge
    from pipelines.transform import transform_database

    knowledge = Knowledge(known_at=args.known_at, closed_through=args.closed_through, closed_at=args.closed_at)
    result = transform_database(args.database, args.dataset, args.as_of, args.reporting_currency, knowledge)
    if result.skipped:
        print(f"accounting-etl transform: nothing built: {result.skipped}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    currency = f", totals in {result.reporting_currency}" if result.reporting_currency else ""
    print(f"models in schema {result.models_schema} (as of {result.as_of}{currency}, {result.seconds:.1f}s):")
    for name, rows in result.rows.items():
        print(f"  {name:<40} {rows:>9,}")
    if result.error:
        print(f"accounting-etl transform: {SECRETS.redact(result.error)}", file=sys.stderr)
        return ExitCode.NEEDS_A_LOOK
    return ExitCode.OK


def _push(args: argparse.Namespace) -> int:
    from pipelines.push import PushSettings, SendRules, cancel_queued, run_push

    if args.cancel:
        if args.dry_run or args.from_csv or args.invoices_csv:
            raise ConfigurationError("--cancel goes alone: not with --dry-run, --from-csv or --invoices-csv")
        cancelled = cancel_queued(_split(args.cancel) or [], args.database)
        print(cancelled.render())
        return ExitCode.OK if cancelled.ok else ExitCode.NEEDS_A_LOOK

    result = run_push(
        PushSettings(
            database=args.database,
            dry_run=args.dry_run,
            from_csv=args.from_csv,
            invoices_csv=args.invoices_csv,
            concurrency=args.concurrency,
            rules=SendRules(resend_unknown_after=args.resend_unknown_after),
        )
    )
    print(result.render())
    return ExitCode.OK if result.ok else ExitCode.NEEDS_A_LOOK


def _status(args: argparse.Namespace) -> int:
    from rich.console import Console

    from pipelines.status import parse_age, read_status, render

    try:
        max_age = parse_age(args.max_age) if args.max_age else None
        stuck_after = parse_age(args.stuck_after) if args.stuck_after else None
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    report = read_status(args.database, args.dataset, max_age, stuck_after)
    if args.json:
        print(report.as_json())
    else:
        # a terminal's own width; a pipe or a file gets room enough not to cut the columns
        render(report, Console() if sys.stdout.isatty() else Console(width=160))
    return ExitCode.OK if report.ok else ExitCode.NEEDS_A_LOOK


def _docs(args: argparse.Namespace) -> int:
    from pipelines.transform import write_docs

    print(f"docs: {write_docs(args.out, args.database, args.dataset).resolve()}")
    return ExitCode.OK


def _report(args: argparse.Namespace) -> int:
    from pipelines.report import write_report

    written = write_report(args.database, args.out, reporting_currency=args.reporting_currency)
    print(f"report: {written.path.resolve()}")
    for path in written.csv_files:
        print(f"  {path}")
    return ExitCode.OK


def _tune_process_for_loads() -> None:
    """Process-wide tuning that a load gains from (the allocator's threshold, the collector), applied here
    because it is the program's to apply: a library call leaves its caller's process as it was."""
    from pipelines.gc_tuning import collect_less
    from pipelines.malloc_tuning import fix_mmap_threshold

    fix_mmap_threshold()
    collect_less()  # after the load's imports, which are then frozen out of the collector's walks


def _load(args: argparse.Namespace) -> int:
    from pipelines.load import run_loads

    _tune_process_for_loads()
    summaries = run_loads(
        _split(args.provider),
        only_connections=_split(args.connections),
        resources=_split(args.resources),
        page_size=args.page_size,
        destination=args.destination,
        database=args.database,
        dataset_name=args.dataset,
        pipelines_dir=args.pipelines_dir,
        full_refresh=args.full_refresh,
        transform=not args.no_transform,
        as_of=args.as_of,
        reporting_currency=args.reporting_currency,
    )
    verbose = logging.getLogger("accounting_etl").isEnabledFor(logging.DEBUG)
    for summary in summaries:
        if summary.problem:  # one line that says what to fix; the run's detail under -v
            print(f"accounting-etl load: {SECRETS.redact(summary.problem)}", file=sys.stderr)
            if not verbose:
                continue
        print(summary.render())
    if any(s.problem_exit == ExitCode.BAD_INPUT for s in summaries):
        return ExitCode.BAD_INPUT
    return ExitCode.OK if all(s.status == "ok" and not s.models_error for s in summaries) else ExitCode.NEEDS_A_LOOK


COMMANDS = {
    "load": _load,
    "sandbox": _sandbox,
    "demo": _demo,
    "transform": _transform,
    "push": _push,
    "report": _report,
    "docs": _docs,
    "status": _status,
}
