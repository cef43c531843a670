"""The outbound queue and the push ledger, in the warehouse next to the loaded tables.

`outbound_payments` is where analysts queue payments (SQL, pandas, or `push --from-csv`); `push_log` says,
per `external_id`, what happened to it; `push_attempts` keeps every intent and outcome. The ledger is
written with direct, committed statements (not through dlt load packages, which land later and in batches):
an intent must be on disk before its request leaves, or a crash could not be told from a payment never sent.
"""

from __future__ import annotations

import csv
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# statuses of push_log: pending (intent written, outcome not yet), created, confirmed (seen in a later
# load), rejected (validation or a 4xx: final until the row changes), failed (retry budget used: the next
# run tries again), unknown (the request may have taken effect: resolved by a lookup before any resend),
# submitted (Rootfi: in a write job, `remote_job`, that has not ended: followed up, never resent)
FINAL = ("created", "confirmed")

OUTBOUND_COLUMNS = {
    "external_id": "VARCHAR PRIMARY KEY",
    "connection": "VARCHAR",
    "invoice_id": "VARCHAR",
    "contact_id": "VARCHAR",
    "account_id": "VARCHAR",
    "currency": "VARCHAR",
    "exchange_rate": "VARCHAR",
    "total_amount": "BIGINT",  # integer minor units, as in the loaded tables
    "transaction_date": "TIMESTAMP WITH TIME ZONE",
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
    "issue_date": "TIMESTAMP WITH TIME ZONE",
    "due_date": "TIMESTAMP WITH TIME ZONE",
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
CSV_COLUMNS = [c for c in OUTBOUND_COLUMNS if c != "queued_at"]


def may_resend(sent_at: datetime | None, resend_unknown_after: float) -> bool:
    """Whether a record whose outcome was unclear, and that a lookup did not find, may be sent again: only
    `resend_unknown_after` seconds after its last send (0: at once, for a server known to write atomically)."""
    if resend_unknown_after <= 0:
        return True
    if sent_at is None:
        return False
    return (datetime.now(UTC) - sent_at).total_seconds() >= resend_unknown_after


def ensure_tables(con: Any, schema: str) -> None:
    """Create the queues and the ledger when missing (the load job and push both call this)."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    for table, spec in QUEUES.items():
        columns = ", ".join(f"{name} {kind}" for name, kind in spec.items())
        con.execute(f"CREATE TABLE IF NOT EXISTS {schema}.{table} ({columns})")
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


def import_csv(con: Any, schema: str, path: str | Path, table: str = "outbound_payments") -> int:
    """Queue the rows of a CSV (header = the queue's columns; `external_id`, `connection` required).
    A row whose external_id is already queued replaces it. Returns the rows read."""
    allowed = [c for c in QUEUES[table] if c != "queued_at"]
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"external_id", "connection"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: the CSV needs the columns {sorted(missing)}")
        unknown = set(reader.fieldnames or []) - set(allowed)
        if unknown:
            raise ValueError(f"{path}: unknown columns {sorted(unknown)}; the columns are {allowed}")
        rows = [{k: (v if v != "" else None) for k, v in row.items()} for row in reader]
    names = [c for c in allowed if rows and c in rows[0]]
    placeholders = ", ".join("?" for _ in names)
    with transaction(con):
        for row in rows:
            con.execute(f"DELETE FROM {schema}.{table} WHERE external_id = ?", [row["external_id"]])
            con.execute(
                f"INSERT INTO {schema}.{table} ({', '.join(names)}) VALUES ({placeholders})",
                [row.get(n) for n in names],
            )
    return len(rows)


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

    def __init__(self, con: Any, schema: str, run_id: str) -> None:
        self.con = con
        self.schema = schema
        self.run_id = run_id
        self.lock = threading.Lock()

    def entries(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            cursor = self.con.execute(f"SELECT * FROM {self.schema}.push_log")
            names = [d[0] for d in cursor.description]
            return {row[0]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}

    def record(
        self,
        external_id: str,
        connection: str,
        status: str,
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
        """Upsert the ledger row and append the attempt's event, in one committed transaction."""
        now = datetime.now(UTC)
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
