"""The Rootfi sandbox's records and write jobs, in memory, thread-safe.

Lists are ordered by (`rootfi_updated_at`, `rootfi_id`) and paged by a keyset cursor on that pair, so a
record changed during a scan moves to the end instead of shifting the pages (the client sees it again,
never loses one). Changes stamp `rootfi_updated_at` with a clock that never goes back; a delete keeps the
row with `rootfi_deleted_at` (listed only with `include_deleted_records=true`).
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sandbox.rootfi.seed import EXPONENT, SeedCompany, data_hash, iso, seed_companies

KINDS = ("invoices", "invoice_payments", "tracking_categories", "contacts")


class UnknownRecord(KeyError):
    pass


@dataclass
class Job:
    """One write job: CREATED -> RUNNING -> SUCCESS (records may still fail one by one) or FAILED."""

    upload_job_id: int
    sync_id: str
    company_id: int
    records: list[Any]
    status: str = "CREATED"
    results: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def document(self) -> dict[str, Any]:
        results = self.results or [{"job_id": self.upload_job_id, "status": "pending"} for _ in self.records]
        doc = {"status": self.status, "upload_job_id": self.upload_job_id, "sync_id": self.sync_id, "data": results}
        if self.error:
            doc["error"] = self.error
        return doc

    def counts(self) -> dict[str, Any]:
        counter = Counter(r["status"] for r in self.results)
        pending = len(self.records) - counter["success"] - counter["failed"]
        return {
            "sync_id": self.sync_id,
            "upload_job_id": self.upload_job_id,
            "status": self.status,
            "success": counter["success"],
            "failed": counter["failed"],
            "pending": pending,
        }


class Store:
    def __init__(self, companies: list[SeedCompany] | None = None) -> None:
        companies = companies if companies is not None else seed_companies()
        self.lock = threading.RLock()
        self.companies = {c.company_id: c for c in companies}
        self.aliases = {c.alias: c.company_id for c in companies}
        self.records: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
        for company in companies:
            for kind in KINDS:
                self.records[kind].extend(getattr(company, kind))
        self.next_rootfi_id = 1 + max(r["rootfi_id"] for rows in self.records.values() for r in rows)
        self.last_stamp = max(r["rootfi_updated_at"] for rows in self.records.values() for r in rows)
        self.jobs: dict[str, Job] = {}
        self.job_ids = itertools.count(9001)
        self.created_by_document: Counter = Counter()
        self.received: dict[str, dict[str, Any]] = {}  # the last record sent per document_number, as written

    # -- reading ---------------------------------------------------------------------------------------
    def company_ids(self) -> dict[str, int]:
        return dict(self.aliases)

    def page(
        self,
        kind: str,
        company_id: int | None,
        updated_since: str | None,
        include_deleted: bool,
        after: tuple[str, int] | None,
        limit: int,
    ) -> tuple[list[dict[str, Any]], bool, int]:
        """Rows after the keyset `after`, whether more follow, and the filtered total."""
        with self.lock:
            rows = [
                r
                for r in self.records[kind]
                if (company_id is None or r["rootfi_company_id"] == company_id)
                and (updated_since is None or r["rootfi_updated_at"] >= updated_since)
                and (include_deleted or r["rootfi_deleted_at"] is None)
            ]
            rows.sort(key=lambda r: (r["rootfi_updated_at"], r["rootfi_id"]))
            total = len(rows)
            if after is not None:
                rows = [r for r in rows if (r["rootfi_updated_at"], r["rootfi_id"]) > after]
            return [dict(r) for r in rows[:limit]], len(rows) > limit, total

    def find(self, alias: str, kind: str, platform_id: str) -> dict[str, Any]:
        company_id = self.aliases[alias]
        with self.lock:
            for record in self.records[kind]:
                if record["rootfi_company_id"] == company_id and record["platform_id"] == platform_id:
                    return record
        raise UnknownRecord(platform_id)

    def all(self, alias: str, kind: str, include_deleted: bool = False) -> list[dict[str, Any]]:
        company_id = self.aliases[alias]
        with self.lock:
            return [
                dict(r)
                for r in self.records[kind]
                if r["rootfi_company_id"] == company_id and (include_deleted or r["rootfi_deleted_at"] is None)
            ]

    # -- changes (tests and the admin API) ---------------------------------------------------------------
    def stamp(self) -> str:
        """A `rootfi_updated_at` later than every stored one."""
        with self.lock:
            now = iso(datetime.now(UTC))
            if now <= self.last_stamp:
                last = datetime.fromisoformat(self.last_stamp.replace("Z", "+00:00"))
                now = iso(last + timedelta(milliseconds=1))
            self.last_stamp = now
            return now

    def update(self, alias: str, kind: str, platform_id: str, **fields: Any) -> dict[str, Any]:
        with self.lock:
            record = self.find(alias, kind, platform_id)
            record.update(fields)
            record["rootfi_updated_at"] = self.stamp()
            record["data_hash"] = data_hash(record)
            return dict(record)

    def delete(self, alias: str, kind: str, platform_id: str) -> None:
        with self.lock:
            record = self.find(alias, kind, platform_id)
            record["rootfi_deleted_at"] = record["rootfi_updated_at"] = self.stamp()

    def restore(self, alias: str, kind: str, platform_id: str) -> None:
        with self.lock:
            record = self.find(alias, kind, platform_id)
            record["rootfi_deleted_at"] = None
            record["rootfi_updated_at"] = self.stamp()

    # -- writes through jobs -----------------------------------------------------------------------------
    def new_job(self, company_id: int, records: list[Any]) -> Job:
        with self.lock:
            number = next(self.job_ids)
            job = Job(upload_job_id=number, sync_id=f"sync_{number}", company_id=company_id, records=records)
            self.jobs[job.sync_id] = job
            return job

    def run_job(self, job: Job, fail_whole_job: str | None = None, reverse: bool = False) -> None:
        """Carry out a job: every record is checked and created on its own; a FAILED job creates nothing.
        `reverse`: the results come in the reverse order of the records."""
        with self.lock:
            if fail_whole_job:
                job.status, job.error = "FAILED", fail_whole_job
                job.results = [
                    {"job_id": job.upload_job_id, "status": "failed", "error": fail_whole_job} for _ in job.records
                ]
                job.done.set()
                return
            for item in job.records:
                problem = self._payment_problem(job.company_id, item)
                if problem:
                    job.results.append({"job_id": job.upload_job_id, "status": "failed", "error": problem})
                    continue
                created = self._create_payment(job.company_id, item)
                job.results.append({"job_id": job.upload_job_id, "status": "success", "response": dict(created)})
            if reverse:
                job.results.reverse()
            job.status = "SUCCESS"
            job.done.set()

    def _payment_problem(self, company_id: int, item: Any) -> str | None:
        if not isinstance(item, dict):
            return "each record must be an object"
        if item.get("document_number"):
            self.received[str(item["document_number"])] = dict(item)
        for key in ("invoice_id", "amount", "currency_id", "payment_date"):
            if item.get(key) in (None, ""):
                return f"'{key}' is required"
        amount = item["amount"]
        if isinstance(amount, bool) or not isinstance(amount, int | float | str | Decimal):
            return "'amount' must be a number"
        try:
            value = Decimal(str(amount))
        except InvalidOperation:
            return "'amount' must be a number"
        if value <= 0:
            return "'amount' must be positive"
        invoice = next(
            (
                r
                for r in self.records["invoices"]
                if r["rootfi_company_id"] == company_id
                and r["platform_id"] == item["invoice_id"]
                and r["rootfi_deleted_at"] is None
            ),
            None,
        )
        if invoice is None:
            return f"Invoice {item['invoice_id']} not found in the accounting platform"
        if invoice["currency_id"] != item["currency_id"]:
            return f"Currency {item['currency_id']} does not match the invoice currency {invoice['currency_id']}"
        if value != value.quantize(Decimal(1).scaleb(-EXPONENT.get(item["currency_id"], 2))):
            return f"'amount' has more decimals than {item['currency_id']} allows"
        return None

    def _create_payment(self, company_id: int, item: dict[str, Any]) -> dict[str, Any]:
        stamp = self.stamp()
        rootfi_id = self.next_rootfi_id
        self.next_rootfi_id += 1
        company = self.companies[company_id]
        platform_id = f"PMT-{company_id}-N{rootfi_id}"
        record = {
            "rootfi_id": rootfi_id,
            "rootfi_company_id": company_id,
            "rootfi_created_at": stamp,
            "rootfi_updated_at": stamp,
            "rootfi_deleted_at": None,
            "platform_id": platform_id,
            "platform_unique_id": f"{company.platform.lower()}-{platform_id}",
            "invoice_id": item["invoice_id"],
            "account_id": item.get("account_id"),
            "contact_id": item.get("contact_id"),
            "credit_note_id": None,
            "currency_id": item["currency_id"],
            "amount": float(item["amount"]) if isinstance(item["amount"], Decimal) else item["amount"],
            "payment_date": item["payment_date"],
            "payment_mode": item.get("payment_mode"),
            "document_number": item.get("document_number"),
            "memo": item.get("memo"),
            "currency_rate": item.get("currency_rate"),
            "updated_at": stamp,
            "custom_fields": [],
            "raw_data": {"platform": company.platform, "Id": platform_id},
        }
        record["data_hash"] = data_hash(record)
        self.records["invoice_payments"].append(record)
        if record["document_number"]:
            self.created_by_document[record["document_number"]] += 1
        return record
