"""`accounting-etl push`: create the queued payments (`outbound_payments`) and invoices (`outbound_invoices`)
through the providers' APIs, each exactly once in effect, with a ledger (`push_log`, `push_attempts`) of what
was sent and what came of it.

One run: queue the rows of the given CSV files (`csv_import.py`); settle what an earlier run left open and
confirm what a load has since brought in; check every queued row against the loaded data (`plan.py`) and
record the plan (`push_plan`); then hand each provider its rows (`engine.py`, which holds the exactly-once
rules, through the provider's writer). One provider failing never stops another's rows.

The run is one writer's turn on the warehouse (`pipelines/warehouse/identity.py`), durable: should it stop
half-way, the next writer keeps its ledger rows. A dry run checks the queued rows and the files' rows as they
would be queued, and writes only its plan: it queues nothing, confirms nothing and writes no ledger row.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines import settings
from pipelines.progress import PushCounts, live, push_table
from pipelines.push.csv_import import CsvImport, CsvReject, invoice_numbers, queue_rows, read_csv
from pipelines.push.engine import Engine, Lane, SendRules, differences
from pipelines.push.ledger import FINAL, NEVER_REACHED, QUEUES, Ledger, PushStatus, ensure_tables, kept_tables
from pipelines.push.plan import KINDS, Kind, loaded_invoices
from pipelines.registry import check_distinct_aliases, providers
from pipelines.warehouse.identity import Warehouse
from sources.common.errors import ConfigurationError
from sources.common.http.client import RequestStats, RetryPolicy
from sources.common.provider import Provider
from sources.common.secrets import SECRETS
from sources.common.writer import COMPARED, WriterOptions

log = logging.getLogger("accounting_etl.push")


@dataclass(frozen=True)
class ProviderAccess:
    """A provider's credentials and accounts for one push, where they are not to come from its settings."""

    api_key: str | None = None
    accounts: Mapping[str, Any] | None = None  # alias -> connection token / company id
    base_url: str | None = None


@dataclass(frozen=True)
class PushSettings:
    database: str | None = None  # the DuckDB file (default: the configured destination)
    dataset: str | None = None
    dry_run: bool = False  # validate and record the plan; send nothing
    from_csv: str | Path | None = None  # payments to queue first
    invoices_csv: str | Path | None = None  # invoices to queue first
    concurrency: int = 4  # requests (or batches) in flight at once
    rules: SendRules = field(default_factory=SendRules)
    policy: RetryPolicy | None = None  # retries of each request (each provider's defaults when None)
    batch_size: int = 50  # records per request where an API takes several
    lookup_page_size: int = 500  # rows per request when looking pushed records up
    providers: Mapping[str, ProviderAccess] = field(default_factory=dict)  # by provider name
    on_event: Callable[[str, str], None] | None = None  # test hook: (intent|answered|submitted|recorded, id)


@dataclass
class PushSummary:
    run_id: str
    dry_run: bool
    outcomes: dict[str, int] = field(default_factory=dict)  # status -> payments
    plan: list[dict[str, Any]] = field(default_factory=list)
    requests: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    import_rejects: list[CsvReject] = field(default_factory=list)  # CSV rows not queued, and why
    errors: list[str] = field(default_factory=list)  # a provider's API failing part-way (masked)

    @property
    def ok(self) -> bool:
        """Every row created (or, in a dry run, every row would be; or nothing to do), every CSV row queued, no
        provider failing part-way."""
        bad = {k for k, n in self.outcomes.items() if n and k not in (*FINAL, "would create")}
        return not bad and not self.import_rejects and not self.errors

    def render(self) -> str:
        head = "push dry run" if self.dry_run else "push"
        counts = ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items())) or "nothing to do"
        lines = [f"{head}: {counts} ({self.seconds:.1f}s, {int(self.requests.get('requests', 0))} requests)"]
        for reject in self.import_rejects:
            lines.append(f"  not queued: {reject}")
        for error in self.errors:
            lines.append(f"  ERROR {error}")
        for item in self.plan:
            if item["action"] != "create" or self.dry_run:
                why = f": {item['reason']}" if item["reason"] else f" ({item['kind']}, would be sent)"
                lines.append(f"  {item['action']:<7} {item['external_id']} [{item['connection']}]{why}")
        return "\n".join(lines)


def _selected(options: PushSettings) -> list[tuple[Provider, dict[str, str], str]]:
    """The providers push writes to, with their accounts and API keys: each provider that can push and whose
    accounts are given or configured."""
    chosen = []
    writers = [p for p in providers() if p.make_writer is not None]
    for provider in writers:
        access = options.providers.get(provider.name, ProviderAccess())
        if access.accounts is None and not provider.is_configured():
            continue
        chosen.append((provider, provider.accounts(access.accounts), provider.api_key(access.api_key)))
    if not chosen:
        settings_needed = " or ".join(f"{p.setting('api_key')} and {p.setting(p.accounts_setting)}" for p in writers)
        raise ConfigurationError(f"no provider to push to is configured: set {settings_needed}")
    check_distinct_aliases({p.name: accounts for p, accounts, _ in chosen})
    return chosen


def run_push(options: PushSettings | None = None) -> PushSummary:
    """Push the queued rows; see the module text."""
    options = options or PushSettings()
    started = time.monotonic()
    run_id = str(uuid.uuid4())
    raw = settings.dataset_name(options.dataset)
    chosen = _selected(options)
    for provider, accounts, api_key in chosen:
        SECRETS.add([api_key, *(accounts.values() if provider.accounts_are_secret else ())])
    owner = {alias: provider for provider, accounts, _ in chosen for alias in accounts}
    accounts = {alias: account for _, provider_accounts, _ in chosen for alias, account in provider_accounts.items()}
    summary = PushSummary(run_id=run_id, dry_run=options.dry_run)
    stats = RequestStats()
    warehouse = Warehouse.of(database=options.database, dataset=options.dataset)
    kept = kept_tables(raw)
    what = "a push dry run" if options.dry_run else "a push"
    with (
        warehouse.job_lock("push", f"{what} into {warehouse.describe()}"),
        warehouse.writing(what, durable=not options.dry_run, keep=kept) as session,
        session.connect() as con,
    ):
        try:
            ensure_tables(con, raw)
            counts = PushCounts()
            ledger = Ledger(con, raw, run_id, observer=counts.recorded)
            files = _read_csv_files(con, raw, options, summary, ledger.entries())
            if not options.dry_run:
                for imported in files:
                    queue_rows(con, raw, imported.table, imported.rows)
                    log.info("queued %d row(s) of %s into %s", len(imported.rows), imported.path, imported.table)
            _record_not_queued(con, raw, summary, options.dry_run)
            if not options.dry_run:
                _confirm(con, raw, ledger)
            entries = ledger.entries()
            todo = _open_rows(con, raw, entries, files if options.dry_run else [])
            sendable = _plan(con, raw, todo, accounts, owner, summary, options.dry_run)
            if options.dry_run:
                would = {"would create": len(sendable), "would reject": len(todo) - len(sendable)}
                summary.outcomes = {k: v for k, v in would.items() if v}
                return summary
            for item in summary.plan:
                if item["action"] == "reject":
                    previous = entries.get(item["external_id"], {})
                    if previous.get("status") != PushStatus.REJECTED or previous.get("error") != item["reason"]:
                        ledger.record(item["external_id"], item["connection"] or "", PushStatus.REJECTED,
                                      phase="validation", kind=item["kind"], error=item["reason"])  # fmt: skip
            counts.provider_of = {row["external_id"]: owner[row["connection"]].name for _, row in sendable}
            engine = Engine(ledger, entries, options.rules, options.concurrency, options.on_event,
                            loaded=LoadedIds(ledger, raw))  # fmt: skip
            writer_options = WriterOptions(policy=options.policy, stats=stats, page_size=options.lookup_page_size,
                                           batch_size=options.batch_size)  # fmt: skip
            sending = time.monotonic()
            with live(lambda: push_table(counts, sending)):
                for provider, provider_accounts, api_key in chosen:
                    rows = [(kind.name, row) for kind, row in sendable if row["connection"] in provider_accounts]
                    if not rows:
                        continue
                    assert provider.make_writer is not None
                    writer = provider.make_writer(api_key, provider.base_url(options.providers.get(
                        provider.name, ProviderAccess()).base_url), writer_options)  # fmt: skip
                    try:
                        engine.push(Lane(provider.title, writer, provider_accounts), rows)
                    finally:
                        writer.close()
            summary.errors.extend(engine.errors)
            final = ledger.entries()
            for _, row in todo:
                status = final.get(row["external_id"], {}).get("status", "rejected")
                summary.outcomes[status] = summary.outcomes.get(status, 0) + 1
            return summary
        finally:
            summary.requests = stats.as_dict()
            summary.seconds = round(time.monotonic() - started, 3)


def _read_csv_files(
    con: Any, raw: str, options: PushSettings, summary: PushSummary, entries: Mapping[str, Mapping[str, Any]]
) -> list[CsvImport]:
    """The rows of the given CSV files as they would be queued; the rows that cannot be are kept in the run's
    plan, never in the ledger (a bad row must not overwrite what the ledger says of an external id created
    before)."""
    files = []
    numbers = None
    for path, table in ((options.from_csv, "outbound_payments"), (options.invoices_csv, "outbound_invoices")):
        if path:
            numbers = invoice_numbers(con, raw) if numbers is None else numbers
            imported = read_csv(path, table=table, numbers=numbers)
            _keep_what_may_have_been_sent(con, raw, imported, entries)
            for reject in imported.rejects:
                log.warning("not queued: %s", reject)
            summary.import_rejects.extend(imported.rejects)
            files.append(imported)
    return files


def _keep_what_may_have_been_sent(
    con: Any, raw: str, imported: CsvImport, entries: Mapping[str, Mapping[str, Any]]
) -> None:
    """A file row for an external id that may already exist at the provider (the ledger says pending,
    submitted, unknown, failed, created or confirmed) is a reject when it differs from the row that was queued
    and sent: queueing it would replace that row, so the queue and the models would show an amount, invoice or
    date the provider never received, while the ledger still says what happened to the first. The same row
    again (a cell's padding or a currency's case aside) is left as it was queued: a file imported twice changes
    nothing."""
    spec = [c for c in QUEUES[imported.table] if c != "queued_at"]
    wanted = [row for row in imported.rows if entries.get(row["external_id"], {}).get("status") not in NEVER_REACHED]
    if not wanted:
        return
    # one read of the queued rows the ledger speaks of, not one per row (a cumulative bank file re-imported)
    queued = con.execute(
        f"SELECT {', '.join(spec)} FROM {raw}.{imported.table} "
        f"WHERE external_id IN (SELECT external_id FROM {raw}.push_log)"
    ).fetchall()
    sent = {row["external_id"]: row for row in (dict(zip(spec, values, strict=True)) for values in queued)}
    this_kind = next(kind.name for kind in KINDS if kind.queue == imported.table)
    for row in wanted:
        status = entries[row["external_id"]]["status"]
        before = sent.get(row["external_id"])
        if before is None:
            kind = entries[row["external_id"]].get("kind") or "record"
            if kind == this_kind:
                reason = (f"may already exist at the provider (the ledger says {status}), and its queued row is "
                          "gone, so this row cannot be checked against what was sent")  # fmt: skip
            else:
                reason = (
                    f"is already the external id of a {kind} that may exist at the provider (the ledger says {status})"
                )
            imported.reject(row, "external_id", f"{reason}: use a new external id for a new record")
            continue
        for column in spec:
            new, old = _compared(column, row.get(column)), _compared(column, before[column])
            if new != old:
                imported.reject(row, column, f"{before[column]!r} was sent for this external id (the ledger says "
                                f"{status}); this file gives {row.get(column)!r}. A record that may exist at the "
                                "provider is not changed by queueing it again: change it there, or use a new "
                                "external id")  # fmt: skip
                break
        else:  # the same row: the queue keeps it as it was sent (not the file's spelling of it)
            imported.rows.remove(row)


def _compared(column: str, value: Any) -> Any:
    """A queue value as compared with what was sent: an empty flag is the queue's default (false), text without
    its padding, a currency code in either case."""
    if column == "overpayment_intended":
        return bool(value)
    if isinstance(value, str):
        return value.strip().upper() if column == "currency" else value.strip()
    return value


def _record_not_queued(con: Any, raw: str, summary: PushSummary, dry_run: bool) -> None:
    if summary.import_rejects:
        now = datetime.now(UTC)
        con.executemany(
            f"INSERT INTO {raw}.push_plan VALUES (?, ?, ?, ?, ?, ?, ?)",
            [[summary.run_id, r.external_id, None, "not queued", str(r), dry_run, now]
             for r in summary.import_rejects],
        )  # fmt: skip


def _open_rows(
    con: Any, raw: str, entries: Mapping[str, Mapping[str, Any]], files: Sequence[CsvImport] = ()
) -> list[tuple[Kind, dict[str, Any]]]:
    """The queued rows the ledger does not show as created, oldest first; then the rows of `files` (a dry run's,
    not queued), each in place of a queued row of the same external id, as queueing them would do."""
    todo = []
    replaced = {row["external_id"] for imported in files for row in imported.rows}
    for kind in KINDS:
        cursor = con.execute(f"SELECT * FROM {raw}.{kind.queue} ORDER BY queued_at, external_id")
        names = [d[0] for d in cursor.description]
        for values in cursor.fetchall():
            row = dict(zip(names, values, strict=True))
            if row["external_id"] in replaced:
                continue
            if _open(entries.get(row["external_id"], {}), row):
                todo.append((kind, row))
    queues = {kind.queue: kind for kind in KINDS}
    for imported in files:
        for row in imported.rows:
            if entries.get(row["external_id"], {}).get("status") not in FINAL:
                todo.append((queues[imported.table], dict(row)))
    return todo


def _open(entry: Mapping[str, Any], row: Mapping[str, Any]) -> bool:
    """Whether a queued row is still to be sent: not created, and not cancelled (unless queued again after the
    cancel: a new intent)."""
    status = entry.get("status")
    if status in FINAL:
        return False
    if status == PushStatus.CANCELLED:
        queued, cancelled = row.get("queued_at"), entry.get("updated_at")
        return queued is not None and cancelled is not None and queued > cancelled
    return True


def _plan(
    con: Any,
    raw: str,
    todo: list[tuple[Kind, dict[str, Any]]],
    accounts: Mapping[str, str],
    owner: Mapping[str, Provider],
    summary: PushSummary,
    dry_run: bool,
) -> list[tuple[Kind, dict[str, Any]]]:
    """Check every open row against the loaded data and record the plan; returns the rows to send."""
    invoices = loaded_invoices(con, raw)
    committed: dict = {}
    sendable = []
    seen_ids: set[str] = set()
    for kind, row in todo:
        reason = kind.validate(row, accounts, invoices, committed)
        provider = owner.get(row["connection"])
        if reason is None and provider is not None and kind.name not in provider.pushes:
            takes = " and ".join(f"{k}s" for k in sorted(provider.pushes))
            reason = f"{kind.name}s are not pushed to {provider.title} (its write path here takes {takes})"
        if reason is None and provider is not None and provider.row_problem is not None:
            reason = provider.row_problem(kind.name, row)
        if reason is None and row["external_id"] in seen_ids:
            reason = "external_id is queued twice (external ids are unique across payments and invoices)"
        seen_ids.add(row["external_id"])
        action = "reject" if reason else "create"
        summary.plan.append({"external_id": row["external_id"], "connection": row.get("connection"),
                             "action": action, "reason": reason, "kind": kind.name})  # fmt: skip
        if reason is None:
            sendable.append((kind, row))
    if summary.plan:
        now = datetime.now(UTC)
        con.executemany(
            f"INSERT INTO {raw}.push_plan VALUES (?, ?, ?, ?, ?, ?, ?)",
            [[summary.run_id, p["external_id"], p["connection"], p["action"], p["reason"], dry_run, now]
             for p in summary.plan],
        )  # fmt: skip
    return sendable


class LoadedIds:
    """Whether a record id is among the loaded payments or invoices (`in`), asked of the warehouse one id at a
    time (a warehouse may hold millions; push asks of the few records servers name)."""

    def __init__(self, ledger: Ledger, raw: str) -> None:
        self.ledger = ledger
        self.tables = [k.loaded_table for k in KINDS if ledger.has_table(k.loaded_table)]
        self.known: dict[str, bool] = {}

    def __contains__(self, record_id: object) -> bool:
        if not isinstance(record_id, str) or not self.tables:
            return False
        if record_id not in self.known:
            self.known[record_id] = any(self.ledger.holds(table, record_id) for table in self.tables)
        return self.known[record_id]

    def created_at(self, record_id: str) -> datetime | None:
        """When the loaded record was created, as its provider says (`created_at`); None when unknown."""
        for table in self.tables:
            moment = self.ledger.created_at(table, record_id)
            if moment is not None:
                return moment
        return None


def _confirm(con: Any, raw: str, ledger: Ledger) -> None:
    """`created` records that a later load brought into `payments` / `invoices` become `confirmed`, when the
    loaded record is what was sent (amount, currency, invoice; an invoice's number): one that differs is
    `unknown`, with what differs, for a person (the id alone proves nothing: an answer may have named another
    record)."""
    for kind in KINDS:
        present = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [raw, kind.loaded_table],
        ).fetchone()[0]
        if not present:
            continue
        columns = {r[0] for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
            [raw, kind.loaded_table]).fetchall()}  # fmt: skip
        compared = [c for c in COMPARED[kind.name] if c in columns]
        loaded = ", ".join(f"r.{c} AS loaded_{c}" for c in compared)
        cursor = con.execute(
            # the ledger's columns last: a dict of the row keeps them over the queue's (gone when cancelled)
            f"SELECT q.*, {loaded}, l.external_id, l.connection, l.record_id FROM {raw}.push_log l "
            f"JOIN {raw}.{kind.loaded_table} r ON r.id = l.record_id "
            f"LEFT JOIN {raw}.{kind.queue} q ON q.external_id = l.external_id "
            "WHERE l.status = 'created' AND l.kind = ?",
            [kind.name],
        )
        names = [d[0] for d in cursor.description]
        for values in cursor.fetchall():
            found = dict(zip(names, values, strict=False))
            content = {c: found[f"loaded_{c}"] for c in compared}
            if kind.name == "payment" and content.get("total_amount") is None and "total_amount" in content:
                content["total_amount"] = 0  # Panora leaves a zero amount out
            differs = differences(kind.name, found, content) if found.get("total_amount") is not None else []
            if differs:
                ledger.record(found["external_id"], found["connection"], PushStatus.UNKNOWN, phase="confirm",
                              kind=kind.name, error=f"the loaded record {found['record_id']} is not what was sent: its "
                              f"{', '.join(differs)}; check it in the accounting system")  # fmt: skip
            else:
                ledger.record(
                    found["external_id"], found["connection"], PushStatus.CONFIRMED, phase="confirm", kind=kind.name
                )
