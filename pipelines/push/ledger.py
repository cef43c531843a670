"""The outbound queue and the push ledger, in the warehouse next to the loaded tables.

`outbound_payments` is where analysts queue payments (SQL, pandas, or `push --from-csv`); `push_log` says,
per `external_id`, what happened to it; `push_attempts` keeps every intent and outcome. The ledger is
written with direct, committed statements (not through dlt load packages, which land later and in batches):
an intent must be on disk before its request leaves, or a crash could not be told from a payment never sent.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sources.common.secrets import SECRETS


class PushStatus(enum.StrEnum):
    """A row's state in `push_log` (stored as its value)."""

    PENDING = "pending"  # the intent is written, the request may be on its way: never sent again blindly
    SUBMITTED = "submitted"  # in a write job (`remote_job`) that has not ended: followed up, never resent
    CREATED = "created"  # the provider answered with the record, checked against what was sent
    CONFIRMED = "confirmed"  # the record was seen, with the content sent, in a later load
    REJECTED = "rejected"  # validation or a 4xx: final until the row changes
    FAILED = "failed"  # the retry budget is used up before anything was created: the next run tries again
    UNKNOWN = "unknown"  # the request may have taken effect: resolved by a lookup before any resend
    CANCELLED = "cancelled"  # taken out of the queue by `push --cancel` before it could reach the provider


FINAL = (PushStatus.CREATED, PushStatus.CONFIRMED)
# what the ledger says of an external id that cannot have reached the provider: never sent, refused with a 4xx
# or by validation, or taken back by a cancel; any other state may be a record at the provider
NEVER_REACHED = (None, PushStatus.REJECTED, PushStatus.CANCELLED)

OUTBOUND_COLUMNS = {
    "external_id": "VARCHAR PRIMARY KEY",
    "connection": "VARCHAR",
    "invoice_id": "VARCHAR",
    "contact_id": "VARCHAR",
    "account_id": "VARCHAR",
    "currency": "VARCHAR",
    "exchange_rate": "VARCHAR",
    "total_amount": "BIGINT",  # integer minor units, as in the loaded tables
    "transaction_date": "DATE",  # a calendar day, the same on every machine (see DATE_COLUMNS)
    "type": "VARCHAR",
    "tracking_categories": "VARCHAR",  # comma-separated tracking category ids
    "overpayment_intended": "BOOLEAN DEFAULT FALSE",
    "queued_at": "TIMESTAMP WITH TIME ZONE DEFAULT current_timestamp",
}
INVOICE_COLUMNS = {
    "external_id": "VARCHAR PRIMARY KEY",
    "connection": "VARCHAR",
    "number": "VARCHAR",
    "type": "VARCHAR",  # ACCREC (sales) by default
    "contact_id": "VARCHAR",
    "issue_date": "DATE",
    "due_date": "DATE",
    "currency": "VARCHAR",
    "exchange_rate": "VARCHAR",
    "total_amount": "BIGINT",  # integer minor units
    "sub_total": "BIGINT",
    "total_tax_amount": "BIGINT",
    "memo": "VARCHAR",
    "tracking_categories": "VARCHAR",  # comma-separated tracking category ids
    "line_items": "VARCHAR",  # JSON array of the API's invoice line items
    "queued_at": "TIMESTAMP WITH TIME ZONE DEFAULT current_timestamp",
}
QUEUES = {"outbound_payments": OUTBOUND_COLUMNS, "outbound_invoices": INVOICE_COLUMNS}
LEDGER_TABLES = ("push_log", "push_attempts", "push_plan")


def kept_tables(schema: str) -> list[tuple[str, str | None]]:
    """What push writes that must survive a stop half-way (`Warehouse.writing`'s `keep`): the ledger whole, and
    the queue rows the ledger speaks of (a payment that may be in flight stays queued, so that it is followed
    up); other queue rows are not carried back, so a row deleted meanwhile is not queued again."""
    spoken_of = f'external_id IN (SELECT external_id FROM stopped."{schema}".push_log)'
    return [(f"{schema}.{table}", None) for table in LEDGER_TABLES] + [
        (f"{schema}.{queue}", spoken_of) for queue in QUEUES
    ]


# A queued date is a calendar day, not an instant: as TIMESTAMP WITH TIME ZONE, '2026-11-20' written on a
# machine east of UTC was the 19th in UTC and went out as the 19th. Queues made before were TIMESTAMP WITH
# TIME ZONE and are converted in place, in the zone of the machine running push (where they were written).
DATE_COLUMNS = {table: [c for c, kind in spec.items() if kind == "DATE"] for table, spec in QUEUES.items()}


def may_resend(sent_at: datetime | None, resend_unknown_after: float) -> bool:
    """Whether a record whose outcome was unclear, and that a lookup did not find, may be sent again: only
    `resend_unknown_after` seconds after its last send (0: at once, for a server known to write atomically)."""
    if resend_unknown_after <= 0:
        return True
    if sent_at is None:
        return False
    return (datetime.now(UTC) - sent_at).total_seconds() >= resend_unknown_after


def ensure_tables(con: Any, schema: str) -> None:
    """Create the queues and the ledger when missing (the load job and push both call this), and bring
    older queues up to date (their date columns become DATE)."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    for table, spec in QUEUES.items():
        columns = ", ".join(f"{name} {kind}" for name, kind in spec.items())
        con.execute(f"CREATE TABLE IF NOT EXISTS {schema}.{table} ({columns})")
        stored = dict(
            con.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? "
                "AND table_name = ?",
                [schema, table],
            ).fetchall()
        )
        for column in DATE_COLUMNS[table]:
            if column in stored and str(stored[column]).lower() != "date":
                con.execute(f"ALTER TABLE {schema}.{table} ALTER COLUMN {column} TYPE DATE")
    con.execute(
        f"""CREATE TABLE IF NOT EXISTS {schema}.push_log (
            external_id VARCHAR PRIMARY KEY, kind VARCHAR, connection VARCHAR, status VARCHAR, record_id VARCHAR,
            remote_id VARCHAR, http_status INTEGER, error VARCHAR, attempts INTEGER DEFAULT 0,
            first_attempt_at TIMESTAMP WITH TIME ZONE, last_attempt_at TIMESTAMP WITH TIME ZONE,
            updated_at TIMESTAMP WITH TIME ZONE)"""
    )
    con.execute(f"ALTER TABLE {schema}.push_log ADD COLUMN IF NOT EXISTS remote_job VARCHAR")
    # the provider's own number of a created record where it differs from `record_id` (Rootfi's rootfi_id)
    con.execute(f"ALTER TABLE {schema}.push_log ADD COLUMN IF NOT EXISTS provider_id VARCHAR")
    con.execute(
        f"""CREATE TABLE IF NOT EXISTS {schema}.push_attempts (
            external_id VARCHAR, attempt INTEGER, phase VARCHAR, status VARCHAR, http_status INTEGER,
            message VARCHAR, run_id VARCHAR, happened_at TIMESTAMP WITH TIME ZONE)"""
    )
    con.execute(
        f"""CREATE TABLE IF NOT EXISTS {schema}.push_plan (
            run_id VARCHAR, external_id VARCHAR, connection VARCHAR, action VARCHAR, reason VARCHAR,
            dry_run BOOLEAN, planned_at TIMESTAMP WITH TIME ZONE)"""
    )


@contextmanager
def transaction(con: Any) -> Iterator[None]:
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


class Ledger:
    """push_log and push_attempts, written through one connection shared by the sending threads."""

    def __init__(self, con: Any, schema: str, run_id: str, observer: Callable[[str, str], None] | None = None) -> None:
        self.con = con
        self.schema = schema
        self.run_id = run_id
        self.lock = threading.Lock()
        self.observer = observer  # hears (external_id, status) of every committed record (live progress)

    def status(self, external_id: str) -> str | None:
        with self.lock:
            row = self.con.execute(
                f"SELECT status FROM {self.schema}.push_log WHERE external_id = ?", [external_id]
            ).fetchone()
        return row[0] if row else None

    def has_table(self, table: str) -> bool:
        with self.lock:
            return bool(
                self.con.execute(
                    "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                    [self.schema, table],
                ).fetchone()[0]
            )

    def holds(self, table: str, record_id: str) -> bool:
        """Whether the loaded `table` holds a record of this id."""
        with self.lock:
            return (
                self.con.execute(f"SELECT count(*) FROM {self.schema}.{table} WHERE id = ?", [record_id]).fetchone()[0]
                > 0
            )

    def created_at(self, table: str, record_id: str) -> datetime | None:
        """The loaded `table`'s `created_at` of a record (timezone-aware), or None."""
        with self.lock:
            row = self.con.execute(f"SELECT created_at FROM {self.schema}.{table} WHERE id = ?", [record_id]).fetchone()
        moment = row[0] if row else None
        if not isinstance(moment, datetime):
            return None
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)

    def entries(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            cursor = self.con.execute(f"SELECT * FROM {self.schema}.push_log")
            names = [d[0] for d in cursor.description]
            return {row[0]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}

    def record(
        self,
        external_id: str,
        connection: str,
        status: PushStatus,
        *,
        phase: str,
        kind: str = "payment",
        attempt: bool = False,
        record_id: str | None = None,
        remote_id: str | None = None,
        http_status: int | None = None,
        error: str | None = None,
        remote_job: str | None = None,
        provider_id: str | None = None,
    ) -> None:
        """Upsert the ledger row and append the attempt's event, in one committed transaction. The error is
        masked (`sources/common/secrets.py`): it may quote a server that echoed a credential."""
        now = datetime.now(UTC)
        status = PushStatus(status).value  # a plain string for the drivers, and a status this enum knows
        error = None if error is None else SECRETS.redact(error)
        s = self.schema
        with self.lock, transaction(self.con):
            exists = self.con.execute(
                f"SELECT attempts FROM {s}.push_log WHERE external_id = ?", [external_id]
            ).fetchone()
            attempts = (exists[0] if exists else 0) + (1 if attempt else 0)
            attempt_at = now if attempt else None
            if exists:
                self.con.execute(
                    f"""UPDATE {s}.push_log SET kind = ?, connection = ?, status = ?,
                        record_id = coalesce(?, record_id), remote_id = coalesce(?, remote_id), http_status = ?,
                        error = ?, attempts = ?, last_attempt_at = coalesce(?, last_attempt_at),
                        first_attempt_at = coalesce(first_attempt_at, ?), updated_at = ?,
                        remote_job = coalesce(?, remote_job), provider_id = coalesce(?, provider_id)
                        WHERE external_id = ?""",
                    [kind, connection, status, record_id, remote_id, http_status, error, attempts, attempt_at,
                     attempt_at, now, remote_job, provider_id, external_id],
                )  # fmt: skip
            else:
                self.con.execute(
                    f"""INSERT INTO {s}.push_log (external_id, kind, connection, status, record_id, remote_id,
                        http_status, error, attempts, first_attempt_at, last_attempt_at, updated_at, remote_job,
                        provider_id)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                    [external_id, kind, connection, status, record_id, remote_id, http_status, error, attempts,
                     attempt_at, attempt_at, now, remote_job, provider_id],
                )  # fmt: skip
            self.con.execute(
                f"INSERT INTO {s}.push_attempts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [external_id, attempts, phase, status, http_status, error, self.run_id, now],
            )
        if self.observer is not None:
            self.observer(external_id, status)
