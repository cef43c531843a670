"""`accounting-etl push`: create the queued payments (`outbound_payments`) and invoices (`outbound_invoices`)
through Panora's POST endpoints, each exactly once in effect, with a ledger (`push_log`, `push_attempts`)
of what was sent and what came of it.

Why not dlt's `@dlt.destination` sink: it is at-least-once per batch (a failed or interrupted batch is sent
again whole) and keeps its progress only in the local pipeline folder, while Panora's POST has no
idempotency key. Exactly-once in effect needs a durable intent before each request and a lookup before any
resend, per payment; so push talks HTTP directly through the sources' shared client (same retries,
backoff and pacing) and keeps its ledger in the warehouse.

Per payment:
1. validate against the loaded data (never sent when invalid: `rejected`, with the reason);
2. if the ledger says an earlier attempt's outcome is unknown (`pending`: crashed after the intent;
   `unknown`: no clear answer), look the payment up in the API first (by the `external_id` this job puts
   into `field_mappings`, else by content): found -> `created`, no request;
3. write the intent (`pending`), POST, write the outcome: `created` with its id; a 4xx is `rejected`; a
   request that may have arrived (timeout, dropped connection, 5xx) is `unknown` and is looked up again
   before any resend; after the retry budget it is `failed` (certainly not created), for the next run.
   After no answer at all (timeout, dropped connection) the request may still be running on the server,
   so the lookup waits `settle_seconds` first.
4. A lookup that finds nothing is not proof: Panora writes to the accounting system first and its own row
   second, so a record can exist remotely before Panora lists it (its next sync, every 8 h, brings it in).
   So an `unknown` record is sent again only when a lookup still finds nothing `resend_unknown_after`
   seconds after the send (default 9 h); until then it stays `unknown` and each run looks again. Against
   a server known to write atomically (the sandbox), 0 resends at once.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dlt
import iso4217

from pipelines import settings
from pipelines.csv_import import CsvReject, import_csv
from pipelines.ledger import FINAL, Ledger, calendar_day, ensure_tables, may_resend
from pipelines.progress import PushCounts, live, push_table
from pipelines.providers import PROVIDERS, check_distinct_aliases
from pipelines.push_rootfi import JobOptions, RootfiPusher
from pipelines.warehouse import push_connection
from sources.common.errors import ApiError, OutcomeUnknown
from sources.common.http import RequestStats, RetryPolicy
from sources.common.ratelimit import RateLimitPacer
from sources.common.secrets import SECRETS
from sources.panora.helpers import PanoraClient
from sources.panora.settings import DEFAULT_BASE_URL
from sources.rootfi.helpers import RootfiClient
from sources.rootfi.settings import DEFAULT_BASE_URL as ROOTFI_BASE_URL
from transforms.run import DEFAULT_MODELS_SCHEMA

log = logging.getLogger("accounting_etl.push")

ISO_CODES = {c.code for c in iso4217.Currency}
EXTERNAL_ID_FIELD = "external_id"  # the key under field_mappings that names a pushed payment
DEFAULT_RESEND_UNKNOWN_AFTER = 9 * 3600.0  # one Panora sync (8 h) and a margin


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
        """Every row created (or nothing to do), every CSV row queued, no provider failing part-way."""
        bad = {k for k in self.outcomes if k not in ("created", "confirmed", "would create")}
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
                lines.append(
                    f"  {item['action']:<7} {item['external_id']} [{item['connection']}] {item['reason'] or ''}"
                )
        return "\n".join(lines)


# -- validation ------------------------------------------------------------------------------------------
def _invoices(con: Any, raw: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(connection, invoice id) -> currency, status, open balance in minor units (from the models when built)."""
    tables = {
        r[0] for r in con.execute("SELECT table_schema || '.' || table_name FROM information_schema.tables").fetchall()
    }
    if f"{raw}.invoices" not in tables:
        return {}
    if f"{DEFAULT_MODELS_SCHEMA}.invoice_settlement" in tables:
        rows = con.execute(
            "SELECT connection, invoice_id, currency, source_status, open_minor, FALSE, number "
            f"FROM {DEFAULT_MODELS_SCHEMA}.invoice_settlement"
        ).fetchall()
        deleted = con.execute(
            f"SELECT connection, id, number FROM {raw}.invoices WHERE deleted_at IS NOT NULL"
        ).fetchall()
        rows += [(c, i, None, None, None, True, n) for c, i, n in deleted]
    else:
        rows = con.execute(
            f"SELECT connection, id, upper(currency), upper(status), coalesce(balance, 0), deleted_at IS NOT NULL, "
            f"number FROM {raw}.invoices"
        ).fetchall()
    return {
        (c, i): {"currency": cur, "status": st, "open": open_, "deleted": d, "number": n}
        for c, i, cur, st, open_, d, n in rows
    }


def _queued_row_problem(row: dict[str, Any], connections: Mapping[str, str]) -> str | None:
    """What every queued row needs, payment or invoice: an external id, a configured connection, a positive
    whole amount in minor units and an ISO 4217 currency."""
    if not row.get("external_id"):
        return "external_id is missing"
    if not row.get("connection"):
        return "connection is missing"
    if row["connection"] not in connections:
        return f"unknown connection {row['connection']!r} (configured: {', '.join(sorted(connections))})"
    amount = row.get("total_amount")
    if amount is None or isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        return f"total_amount must be a positive whole number of minor units, got {amount!r}"
    if (row.get("currency") or "").upper() not in ISO_CODES:
        return f"currency {row.get('currency')!r} is not an ISO 4217 code"
    return None


def validate_payment(
    row: dict[str, Any], connections: Mapping[str, str], invoices: dict, committed: dict
) -> str | None:
    """The reason a queued payment must not be sent, or None. `committed` holds what earlier rows of this
    run already take from each invoice's open balance."""
    problem = _queued_row_problem(row, connections)
    if problem:
        return problem
    amount = row["total_amount"]
    currency = row["currency"].upper()
    if not row.get("invoice_id"):
        return "invoice_id is missing"
    invoice = invoices.get((row["connection"], row["invoice_id"]))
    if invoice is None:
        return f"invoice {row['invoice_id']} is not among the loaded invoices of {row['connection']} (load first)"
    if invoice["deleted"]:
        return f"invoice {row['invoice_id']} was deleted upstream"
    if invoice["status"] in ("VOID", "VOIDED", "DRAFT"):
        return f"invoice {row['invoice_id']} is {invoice['status'].lower()}"
    if invoice["currency"] != currency:
        return f"currency {currency} differs from the invoice's {invoice['currency']}"
    key = (row["connection"], row["invoice_id"])
    open_left = (invoice["open"] or 0) - committed.get(key, 0)
    if amount > open_left and not row.get("overpayment_intended"):
        return (
            f"total_amount {amount} exceeds the invoice's open balance {open_left} (minor units); "
            "set overpayment_intended to send it anyway"
        )
    committed[key] = committed.get(key, 0) + amount
    return None


def payment_body(row: dict[str, Any]) -> dict[str, Any]:
    """The API's payment input for a queued row."""
    return _body(row, {"invoice_id": row["invoice_id"]}, ("contact_id", "account_id", "exchange_rate", "type"),
                 dates=("transaction_date",))  # fmt: skip


def _body(row: dict[str, Any], fields: dict[str, Any], texts: Sequence[str], dates: Sequence[str]) -> dict[str, Any]:
    """What every POST body has (amount, currency, the external id in `field_mappings`, tracking categories
    from their comma-separated ids), with `fields`, the `texts` as text and the `dates` as UTC ISO 8601."""
    body: dict[str, Any] = {
        **fields,
        "total_amount": row["total_amount"],
        "currency": row["currency"].upper(),
        "field_mappings": {EXTERNAL_ID_FIELD: row["external_id"]},
    }
    for key in texts:
        if row.get(key) is not None:
            body[key] = str(row[key])
    for key in dates:
        day = calendar_day(row.get(key))
        if day is not None:  # the queued calendar day, at midnight UTC: the same day on every machine
            body[key] = f"{day.isoformat()}T00:00:00Z"
    if row.get("tracking_categories"):
        body["tracking_categories"] = [t.strip() for t in str(row["tracking_categories"]).split(",") if t.strip()]
    return body


def validate_invoice(
    row: dict[str, Any], connections: Mapping[str, str], invoices: dict, committed: dict
) -> str | None:
    """The reason a queued invoice must not be sent, or None."""
    problem = _queued_row_problem(row, connections)
    if problem:
        return problem
    if row.get("line_items"):
        try:
            lines = json.loads(row["line_items"])
        except (TypeError, ValueError):
            return "line_items is not valid JSON"
        if not isinstance(lines, list) or not all(isinstance(line, dict) for line in lines):
            return "line_items must be a JSON array of objects"
    number = row.get("number")
    if number and number in committed.setdefault(("numbers", row["connection"]), set()):
        return f"invoice number {number} is queued twice"
    if number and any(v.get("number") == number for (c, _), v in invoices.items() if c == row["connection"]):
        return f"an invoice numbered {number} is already loaded for {row['connection']}"
    if number:
        committed[("numbers", row["connection"])].add(number)
    return None


def invoice_body(row: dict[str, Any]) -> dict[str, Any]:
    """The API's invoice input for a queued row."""
    fields = {
        "type": row.get("type") or "ACCREC",
        "line_items": json.loads(row["line_items"]) if row.get("line_items") else [],
        **{k: row[k] for k in ("sub_total", "total_tax_amount") if row.get(k) is not None},
    }
    return _body(row, fields, ("number", "contact_id", "exchange_rate", "memo"), dates=("issue_date", "due_date"))


def _same_payment(record: dict[str, Any], body: dict[str, Any]) -> bool:
    return (
        record.get("invoice_id") == body["invoice_id"]
        and record.get("total_amount") == body["total_amount"]
        and str(record.get("currency", "")).upper() == body["currency"]
        and str(record.get("transaction_date") or "")[:10] == str(body.get("transaction_date") or "")[:10]
    )


def _same_invoice(record: dict[str, Any], body: dict[str, Any]) -> bool:
    return (
        record.get("number") == body.get("number")
        and record.get("total_amount") == body["total_amount"]
        and str(record.get("currency", "")).upper() == body["currency"]
    )


@dataclass(frozen=True)
class Kind:
    """What push needs to know about one kind of record it creates."""

    name: str  # the ledger's `kind`
    resource: str  # the API resource (`POST /accounting/<resource>`)
    queue: str  # the outbound table
    validate: Callable[[dict[str, Any], Mapping[str, str], dict, dict], str | None]
    body: Callable[[dict[str, Any]], dict[str, Any]]
    same_content: Callable[[dict[str, Any], dict[str, Any]], bool]


KINDS = (
    Kind("invoice", "invoices", "outbound_invoices", validate_invoice, invoice_body, _same_invoice),
    Kind("payment", "payments", "outbound_payments", validate_payment, payment_body, _same_payment),
)


# -- looking records up ----------------------------------------------------------------------------------
class RecordIndex:
    """What the API lists of one kind for one connection, read incrementally: new records are appended at the
    end of Panora's insertion-ordered list, so a refresh continues from the last row it saw."""

    def __init__(self, client: PanoraClient, kind: Kind, token: str, page_size: int) -> None:
        self.kind = kind
        self.client = client
        self.token = token
        self.page_size = page_size
        self.by_external_id: dict[str, dict[str, Any]] = {}
        self.records: list[dict[str, Any]] = []
        self.last_id: str | None = None
        self.lock = threading.Lock()

    def refresh(self) -> None:
        with self.lock:
            for page in self.client.pages(self.kind.resource, self.token, self.page_size, start_after=self.last_id):
                for record in page:
                    if not isinstance(record, dict) or not isinstance(record.get("id"), str):
                        continue
                    self.records.append(record)
                    self.last_id = record["id"]
                    mappings = record.get("field_mappings")
                    if isinstance(mappings, dict) and mappings.get(EXTERNAL_ID_FIELD):
                        self.by_external_id[str(mappings[EXTERNAL_ID_FIELD])] = record

    def find(self, row: dict[str, Any], claimed: set[str]) -> dict[str, Any] | None:
        """The API's record of a pushed row: by external id, else by content not claimed by another."""
        found = self.by_external_id.get(row["external_id"])
        if found is not None:
            return found
        body = self.kind.body(row)
        return next((r for r in self.records if r["id"] not in claimed and self.kind.same_content(r, body)), None)


# -- the job ---------------------------------------------------------------------------------------------
def run_push(
    database: str | None = None,
    dataset: str | None = None,
    api_key: str | None = None,
    connections: Mapping[str, str] | None = None,
    base_url: str | None = None,
    dry_run: bool = False,
    from_csv: str | Path | None = None,
    invoices_csv: str | Path | None = None,
    concurrency: int = 4,
    sends_per_payment: int = 3,
    policy: RetryPolicy | None = None,
    page_size: int = 1000,
    settle_seconds: float = 30.0,
    resend_unknown_after: float = DEFAULT_RESEND_UNKNOWN_AFTER,
    on_event: Callable[[str, str], None] | None = None,
    rootfi_api_key: str | None = None,
    rootfi_companies: Mapping[str, Any] | None = None,
    rootfi_base_url: str | None = None,
    job_options: JobOptions | None = None,
) -> PushSummary:
    """Push the queued payments; see the module text. `on_event(name, external_id)` is called at each step
    (`intent`, `answered`, `recorded`; Rootfi also `submitted`) for tests that crash the job at a chosen
    point. Rows of Panora connections go through Panora's POST endpoints; payments of Rootfi companies
    through Rootfi's write jobs (`pipelines/push_rootfi.py`). Each provider's settings are read when given
    or configured; at least one is needed."""
    started = time.monotonic()
    run_id = str(uuid.uuid4())
    raw = settings.dataset_name(dataset)
    panora, rootfi = PROVIDERS["panora"], PROVIDERS["rootfi"]
    connections = _accounts_if_configured(panora, api_key, connections)
    companies = _accounts_if_configured(rootfi, rootfi_api_key, rootfi_companies)
    if connections is None and companies is None:
        panora.api_key(api_key)  # raises the configuration error that says what to set
        panora.accounts(connections)
    connections, companies = connections or {}, companies or {}
    check_distinct_aliases({"panora": connections, "rootfi": companies})
    api_key = panora.api_key(api_key) if connections else ""
    rootfi_api_key = rootfi.api_key(rootfi_api_key) if companies else ""
    SECRETS.add([api_key, rootfi_api_key, *connections.values()])
    base_url = base_url or dlt.config.get("sources.panora.base_url") or DEFAULT_BASE_URL
    rootfi_base_url = rootfi_base_url or dlt.config.get("sources.rootfi.base_url") or ROOTFI_BASE_URL
    job_options = job_options or JobOptions(settle_seconds=settle_seconds, resend_unknown_after=resend_unknown_after)
    summary = PushSummary(run_id=run_id, dry_run=dry_run)
    stats = RequestStats()
    with push_connection(database, dataset) as con:
        try:
            ensure_tables(con, raw)
            for path, table in ((from_csv, "outbound_payments"), (invoices_csv, "outbound_invoices")):
                if path:
                    imported = import_csv(con, raw, path, table=table)
                    log.info("queued %d row(s) of %s into %s", imported.queued, path, table)
                    for reject in imported.rejects:
                        log.warning("not queued: %s", reject)
                    summary.import_rejects.extend(imported.rejects)
            if summary.import_rejects:
                # kept in the run's plan, never in the ledger: a bad row must not overwrite what the ledger
                # says of an external id that was created before
                con.executemany(
                    f"INSERT INTO {raw}.push_plan VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        [run_id, r.external_id, None, "not queued", str(r), dry_run, datetime.now(UTC)]
                        for r in summary.import_rejects
                    ],
                )
            counts = PushCounts()
            ledger = Ledger(con, raw, run_id, observer=counts.recorded)
            _confirm(con, raw, ledger)
            entries = ledger.entries()
            invoices = _invoices(con, raw)
            committed: dict = {}
            todo: list[tuple[Kind, dict[str, Any]]] = []
            sendable: list[tuple[Kind, dict[str, Any]]] = []
            seen_ids: set[str] = set()
            for kind in KINDS:
                cursor = con.execute(f"SELECT * FROM {raw}.{kind.queue} ORDER BY queued_at, external_id")
                names = [d[0] for d in cursor.description]
                for values in cursor.fetchall():
                    row = dict(zip(names, values, strict=True))
                    if entries.get(row["external_id"], {}).get("status") not in FINAL:
                        todo.append((kind, row))
            accounts = {**connections, **companies}
            for kind, row in todo:
                reason = kind.validate(row, accounts, invoices, committed)
                if reason is None and kind.name == "invoice" and row["connection"] in companies:
                    reason = "invoices are not pushed to Rootfi (its write path here takes invoice payments)"
                if reason is None and row["external_id"] in seen_ids:
                    reason = "external_id is queued twice (external ids are unique across payments and invoices)"
                seen_ids.add(row["external_id"])
                action = "reject" if reason else "create"
                summary.plan.append(
                    {
                        "external_id": row["external_id"],
                        "connection": row.get("connection"),
                        "action": action,
                        "reason": reason,
                        "kind": kind.name,
                    }
                )
                if reason is None:
                    sendable.append((kind, row))
            now = datetime.now(UTC)
            if summary.plan:
                con.executemany(
                    f"INSERT INTO {raw}.push_plan VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        [run_id, p["external_id"], p["connection"], p["action"], p["reason"], dry_run, now]
                        for p in summary.plan
                    ],
                )
            if dry_run:
                summary.outcomes = {"would create": len(sendable), "would reject": len(todo) - len(sendable)}
                return summary
            for item in summary.plan:
                if item["action"] == "reject":
                    previous = entries.get(item["external_id"], {})
                    if previous.get("status") != "rejected" or previous.get("error") != item["reason"]:
                        ledger.record(
                            item["external_id"],
                            item["connection"] or "",
                            "rejected",
                            phase="validation",
                            kind=item["kind"],
                            error=item["reason"],
                        )
            to_rootfi = [row for _, row in sendable if row["connection"] in companies]
            sendable = [(kind, row) for kind, row in sendable if row["connection"] in connections]
            counts.provider_of = {row["external_id"]: "rootfi" for row in to_rootfi}
            counts.provider_of.update({row["external_id"]: "panora" for _, row in sendable})
            sending = time.monotonic()
            with live(lambda: push_table(counts, sending)):
                # one provider's API failing never stops the other's rows: each row is left in a state the next
                # run resolves (`pending` / `unknown` are looked up before any resend, `submitted` followed)
                if to_rootfi:
                    rootfi_client = RootfiClient(rootfi_api_key, rootfi_base_url, policy=policy, pacer=RateLimitPacer(),
                                                 stats=stats)  # fmt: skip
                    try:
                        pusher = RootfiPusher(rootfi_client, ledger, companies, entries, job_options, sends_per_payment,
                                              on_event)  # fmt: skip
                        pusher.push(to_rootfi)
                        summary.errors.extend(pusher.errors)
                    finally:
                        rootfi_client.close()
                if sendable:
                    client = PanoraClient(api_key, base_url, policy=policy, pacer=RateLimitPacer(), stats=stats)
                    try:
                        sender = _Sender(
                            client,
                            ledger,
                            connections,
                            entries,
                            sends_per_payment,
                            page_size,
                            settle_seconds,
                            resend_unknown_after,
                            on_event,
                        )
                        with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="push") as pool:
                            list(pool.map(lambda item: sender.push_guarded(*item), sendable))
                        summary.errors.extend(sender.errors)
                    finally:
                        client.close()
            final = ledger.entries()
            for _, row in todo:
                status = final.get(row["external_id"], {}).get("status", "rejected")
                summary.outcomes[status] = summary.outcomes.get(status, 0) + 1
            return summary
        finally:
            summary.requests = stats.as_dict()
            summary.seconds = round(time.monotonic() - started, 3)


def _accounts_if_configured(provider: Any, api_key: str | None, accounts: Mapping[str, Any] | None) -> dict | None:
    """A provider's alias -> account map when it is given or configured (with an API key), else None."""
    if accounts is None and not provider.is_configured():
        return None
    return provider.accounts(accounts)


def _confirm(con: Any, raw: str, ledger: Ledger) -> None:
    """`created` records that a later load brought into `payments` / `invoices` become `confirmed`."""
    for kind in KINDS:
        present = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [raw, kind.resource],
        ).fetchone()[0]
        if not present:
            continue
        rows = con.execute(
            f"SELECT l.external_id, l.connection FROM {raw}.push_log l JOIN {raw}.{kind.resource} r "
            f"ON r.id = l.record_id WHERE l.status = 'created' AND l.kind = ?",
            [kind.name],
        ).fetchall()
        for external_id, connection in rows:
            ledger.record(external_id, connection, "confirmed", phase="confirm", kind=kind.name)


class _Sender:
    """Sends one queued payment (called from the pool's threads)."""

    def __init__(
        self,
        client: PanoraClient,
        ledger: Ledger,
        connections: Mapping[str, str],
        entries: dict[str, dict[str, Any]],
        sends: int,
        page_size: int,
        settle_seconds: float,
        resend_unknown_after: float,
        on_event: Callable[[str, str], None] | None,
    ) -> None:
        self.settle_seconds = settle_seconds
        self.resend_unknown_after = resend_unknown_after
        self.client = client
        self.ledger = ledger
        self.connections = connections
        self.entries = entries
        self.sends = sends
        self.page_size = page_size
        self.on_event = on_event or (lambda name, external_id: None)
        self.indexes: dict[tuple[str, str], RecordIndex] = {}
        self.claimed = {e["record_id"] for e in entries.values() if e.get("record_id")}
        self.lock = threading.Lock()
        self.errors: list[str] = []

    def _index(self, kind: Kind, connection: str) -> RecordIndex:
        with self.lock:
            key = (kind.name, connection)
            if key not in self.indexes:
                self.indexes[key] = RecordIndex(self.client, kind, self.connections[connection], self.page_size)
            return self.indexes[key]

    def _lookup(self, kind: Kind, row: dict[str, Any]) -> dict[str, Any] | None:
        index = self._index(kind, row["connection"])
        index.refresh()
        with self.lock:
            found = index.find(row, self.claimed)
            if found is not None:
                self.claimed.add(found["id"])
            return found

    def _created(
        self, kind: Kind, row: dict[str, Any], record: dict[str, Any], phase: str, http_status: int | None
    ) -> None:
        details = {"record_id": record.get("id"), "remote_id": record.get("remote_id"), "http_status": http_status}
        self.ledger.record(row["external_id"], row["connection"], "created", phase=phase, kind=kind.name, **details)

    def push_guarded(self, kind: Kind, row: dict[str, Any]) -> None:
        """`push`, where anything that goes wrong (the API failing a lookup, an answer no rule foresaw) ends
        this row alone, in a state the next run resolves: `unknown` when a request may have gone out (the
        ledger shows its intent or an unclear outcome), `failed` when none did; a created row stays so."""
        try:
            self.push(kind, row)
        except Exception as exc:
            message = SECRETS.describe(exc)
            log.error("push of %s [%s] stopped: %s", row["external_id"], row["connection"], message)
            status = self.ledger.status(row["external_id"])
            if status not in FINAL:
                sent = status in ("pending", "unknown")
                follow_up = "looked up before any resend" if sent else "tried again by the next push"
                self.ledger.record(row["external_id"], row["connection"], "unknown" if sent else "failed",
                                   phase="error", kind=kind.name, error=f"{message} ({follow_up})")  # fmt: skip
            with self.lock:
                self.errors.append(f"{row['external_id']} [{row['connection']}]: {message}")

    def push(self, kind: Kind, row: dict[str, Any]) -> None:
        external_id, connection = row["external_id"], row["connection"]

        def record(status: str, phase: str, **details: Any) -> None:
            self.ledger.record(external_id, connection, status, phase=phase, kind=kind.name, **details)

        entry = self.entries.get(external_id, {})
        if entry.get("status") in ("pending", "unknown"):
            # an earlier run left this record's outcome open: never resend before looking it up
            found = self._lookup(kind, row)
            if found is not None:
                self._created(kind, row, found, "resolve", None)
                return
            if not may_resend(entry.get("last_attempt_at"), self.resend_unknown_after):
                record("unknown", "resolve", error="not found yet; sent again only after resend_unknown_after")
                return
        for send in range(1, self.sends + 1):
            record("pending", "intent", attempt=True)
            self.on_event("intent", external_id)
            try:
                created = self.client.create(kind.resource, kind.body(row), self.connections[connection])
                if not isinstance(created, dict) or not isinstance(created.get("id"), str) or not created["id"]:
                    # a 2xx without the created record: it was created, but which record is it?
                    raise OutcomeUnknown("POST", f"/accounting/{kind.resource}", 201,
                                         f"the answer holds no created record ({type(created).__name__})")  # fmt: skip
            except OutcomeUnknown as exc:
                record("unknown", "outcome", http_status=exc.status, error=exc.message)
                if exc.status is None:
                    time.sleep(self.settle_seconds)  # no answer: the request may still be running on the server
                found = self._lookup(kind, row)
                if found is not None:
                    self._created(kind, row, found, "resolve", None)
                    return
                if not may_resend(datetime.now(UTC), self.resend_unknown_after):
                    return  # stays `unknown`: later runs look again before sending again
                if send == self.sends:
                    record("failed", "resolve", http_status=exc.status,
                           error=f"not created after {send} sends (looked up each time): {exc.message}")  # fmt: skip
                    return
                time.sleep(self.client.http.policy.backoff(send, self.client.http.rng))
                continue
            except ApiError as exc:
                final = exc.status is not None and 400 <= exc.status < 500
                record("rejected" if final else "failed", "outcome", http_status=exc.status, error=exc.message)
                return
            self.on_event("answered", external_id)
            with self.lock:
                self.claimed.add(created.get("id"))
            self._created(kind, row, created, "outcome", 201)
            self.on_event("recorded", external_id)
            return
