"""Creating invoice payments through Rootfi's write jobs.

Rootfi takes `POST /accounting/invoice_payments {"company_id", "data": [...]}` and answers with a job
(CREATED -> RUNNING -> SUCCESS or FAILED); each record succeeds or fails inside the job on its own, and the
HTTP status says nothing about it. There is no idempotency key, so every payment carries its `external_id`
as its `document_number`, and that is how it is found again (in the job's results, or in the list of
payments changed since it was sent).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sources.common.currencies import minor_unit_exponent
from sources.common.reading.values import server_moment
from sources.common.secrets import SECRETS, printable
from sources.common.writer import ChangesSince, Created, Job, Row, WriterOptions, calendar_day
from sources.rootfi.client import RootfiClient, updated_at
from sources.rootfi.objects import platform_ref, record_key
from sources.rootfi.settings import JOB_ENDED

RESOURCE = "payments"
LOOKUP_MARGIN = timedelta(minutes=5)  # a created record's rootfi_updated_at may precede our clock a little


def payment_body(row: Row, company_id: str) -> dict[str, Any]:
    """Rootfi's invoice payment input for a queued row: major units as an exact decimal (never a float:
    `encode_json` writes it as the JSON number it is), platform ids, `document_number` = `external_id`
    (the key that finds it again), the queued calendar day (today in UTC when none)."""
    currency = str(row["currency"]).upper()
    body: dict[str, Any] = {
        "invoice_id": platform_ref(row["invoice_id"], company_id),
        "amount": Decimal(int(row["total_amount"])).scaleb(-minor_unit_exponent(currency)),
        "currency_id": currency,
        "document_number": row["external_id"],
    }
    day = calendar_day(row.get("transaction_date")) or datetime.now(UTC).date()
    body["payment_date"] = day.isoformat()
    for column in ("contact_id", "account_id"):
        if row.get(column):
            body[column] = platform_ref(row[column], company_id)
    if row.get("exchange_rate") is not None:
        body["currency_rate"] = str(row["exchange_rate"])
    if row.get("type"):
        body["payment_mode"] = str(row["type"])
    return body


def _minor_units(amount: Any, currency: Any) -> int | None:
    """A Rootfi amount (major units) in minor units, or None when it does not read as one exactly: a JSON
    number parsed as a double keeps about 15 digits, so a larger one says nothing exact (compared, it would
    make every such payment look like another's)."""
    if isinstance(amount, bool) or not isinstance(amount, int | float | str | Decimal):
        return None
    if isinstance(amount, float) and abs(amount) >= 1e15:
        return None
    try:
        minor = Decimal(str(amount)).scaleb(minor_unit_exponent(currency))
    except (ArithmeticError, ValueError):
        return None
    return int(minor) if minor == minor.to_integral_value() else None


def _created(record: Mapping[str, Any], company_id: str) -> Created:
    """A created or listed payment: its keys, and what the engine checks against the row (the external id it
    carries as `document_number`, its invoice, amount and currency in the queue's terms)."""
    company = record.get("rootfi_company_id") or company_id
    platform_id = record.get("platform_id")
    rootfi_id = record.get("rootfi_id")
    currency = record.get("currency_id")
    invoice = record.get("invoice_id")
    content = {
        "invoice_id": None if invoice is None else record_key(company, invoice),
        "total_amount": None if record.get("amount") is None else _minor_units(record.get("amount"), currency),
        "currency": None if currency is None else str(currency).upper(),
    }
    document = record.get("document_number")
    return Created(
        record_id=record_key(company, platform_id) if platform_id is not None else None,
        remote_id=None if platform_id is None else str(platform_id),
        provider_id=None if rootfi_id is None else str(rootfi_id),
        external_id=None if document is None else str(document),
        content={k: v for k, v in content.items() if v is not None},
        created_at=server_moment(record.get("rootfi_created_at")) or updated_at(record),
    )


def read_job(job: Mapping[str, Any], company_id: str) -> Job:
    """A job's answer, its per-record results matched by `document_number`. Never by position: nothing says
    a job answers in the order it was sent. A failed result names its record only when it carries a
    `document_number` (at its top, or in an echo of the input); the reason of those that do not stands for
    every unmatched row only when it is the job's one such reason."""
    created: dict[str, Created] = {}
    failures: dict[str, str] = {}
    unnamed: set[str] = set()
    results = job.get("data")
    for result in results if isinstance(results, list) else []:
        if not isinstance(result, dict):
            continue
        response = result.get("response")
        if result.get("status") == "success" and isinstance(response, dict) and response.get("document_number"):
            created[str(response["document_number"])] = _created(response, company_id)
        elif result.get("status") != "success":
            echoed = next((v for v in (result.get("request"), result.get("data")) if isinstance(v, dict)), {})
            document = result.get("document_number") or echoed.get("document_number") or ""
            reason = printable(SECRETS.redact(str(result.get("error") or "failed in the job")))[:500]
            if document:
                failures[str(document)] = reason
            else:
                unnamed.add(reason)
    status = job.get("status")
    return Job(
        job_id=str(job.get("sync_id") or job.get("upload_job_id") or ""),
        label=printable(SECRETS.redact(f"job {job.get('upload_job_id')} {status}"))[:200],
        ended=status in JOB_ENDED,
        failed=status == "FAILED",
        created=created,
        failures=failures,
        unnamed_reason=next(iter(unnamed)) if len(unnamed) == 1 else None,
        reasons=tuple(sorted({*failures.values(), *unnamed})),
        failed_count=job.get("failed", "some"),
        error=None if job.get("error") is None else printable(SECRETS.redact(str(job.get("error"))))[:500],
    )


class _Lookup:
    """A company's invoice payments by `document_number`, read from a moment on and refreshed incrementally
    (`gte` on Rootfi's update time: continuing from the newest change seen leaves no gap)."""

    def __init__(self, client: RootfiClient, company_id: str, page_size: int) -> None:
        self.by_document: dict[str, dict[str, Any]] = {}
        self.changes = ChangesSince(
            lambda since: client.pages(RESOURCE, company_id, page_size, updated_since=since),
            self._keep,
            updated_at,
            margin=LOOKUP_MARGIN,
        )

    def _keep(self, record: Any) -> None:
        if isinstance(record, dict) and record.get("document_number") and not record.get("rootfi_deleted_at"):
            self.by_document[str(record["document_number"])] = record

    def refresh(self, since: datetime) -> None:
        self.changes.refresh(since)


class RootfiWriter:
    """Sends payments in batches, each batch one write job."""

    runs_in_background = True  # a job the server accepted runs on, whatever became of the answer

    def __init__(self, api_key: str, base_url: str, options: WriterOptions) -> None:
        self.client = RootfiClient(api_key, base_url, policy=options.policy,
                                   stats=options.stats)  # fmt: skip
        self.batch_size = options.batch_size
        self.page_size = options.page_size
        self.lookups: dict[str, _Lookup] = {}
        self.lock = threading.Lock()

    def send(self, kind: str, account: str, rows: Sequence[Row]) -> dict[str, Created] | Job:
        return read_job(self.client.submit(RESOURCE, account, [payment_body(r, account) for r in rows]), account)

    def job(self, account: str, job_id: str) -> Job:
        return read_job(self.client.job_status(job_id), account)

    def _lookup(self, account: str) -> _Lookup:
        with self.lock:
            if account not in self.lookups:
                self.lookups[account] = _Lookup(self.client, account, self.page_size)
            return self.lookups[account]

    def refresh(self, kind: str, account: str, since: datetime) -> None:
        self._lookup(account).refresh(since)

    def find(
        self, kind: str, account: str, row: Row, claimed: set[str], not_before: datetime | None = None
    ) -> Created | None:
        # by `document_number` only: every payment push sends carries it, so content is never needed
        record = self._lookup(account).by_document.get(row["external_id"])
        return None if record is None else _created(record, account)

    def backoff(self, send: int) -> float:
        return self.client.http.policy.backoff(send, self.client.http.rng)

    def close(self) -> None:
        self.client.close()
