"""Creating payments and invoices through Panora: one `POST /accounting/<resource>` per record, found again by
the `external_id` push puts into its `field_mappings`, else by its content.

Panora's POST has no idempotency key and answers with the created record. Its list endpoints are in
insertion order, so the record index of a connection is read once and then continued from its last row.

What an answer or a listed record says is handed to the engine as it is (`Created`: the external id it
carries, its content in the queue's terms, when it was created), which checks it against the row before it
believes it: a 201 that describes another record is not this row's.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sources.common.errors import ApiError, OutcomeUnknown
from sources.common.reading.values import server_moment
from sources.common.writer import Created, Job, Row, WriterOptions, calendar_day
from sources.panora.client import PanoraClient
from sources.panora.settings import ENDPOINTS

EXTERNAL_ID_FIELD = "external_id"  # the key under field_mappings that names a pushed record
RESOURCES = {"payment": "payments", "invoice": "invoices"}


def _body(row: Row, fields: dict[str, Any], texts: Sequence[str], dates: Sequence[str]) -> dict[str, Any]:
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


def payment_body(row: Row) -> dict[str, Any]:
    """Panora's payment input for a queued row."""
    return _body(row, {"invoice_id": row["invoice_id"]}, ("contact_id", "account_id", "exchange_rate", "type"),
                 dates=("transaction_date",))  # fmt: skip


def invoice_body(row: Row) -> dict[str, Any]:
    """Panora's invoice input for a queued row."""
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


def _not_before(record: dict[str, Any], moment: datetime | None) -> bool:
    """Whether a record may have been created by a send at or after `moment` (by its `created_at`; a record
    that does not say may)."""
    created = server_moment(record.get("created_at"), naive_is_utc=False)
    return moment is None or created is None or created >= moment


BODIES: dict[str, Callable[[Row], dict[str, Any]]] = {"payment": payment_body, "invoice": invoice_body}
SAME_CONTENT = {"payment": _same_payment, "invoice": _same_invoice}


class RecordIndex:
    """What Panora lists of one resource for one connection, read incrementally: new records are appended at
    the end of the insertion-ordered list, so a refresh continues from the last row it saw."""

    def __init__(self, client: PanoraClient, resource: str, token: str, page_size: int) -> None:
        self.client = client
        self.resource = resource
        self.token = token
        self.page_size = page_size
        self.by_external_id: dict[str, dict[str, Any]] = {}
        self.records: list[dict[str, Any]] = []
        self.last_id: str | None = None
        self.lock = threading.Lock()

    def refresh(self) -> None:
        with self.lock:
            for page in self.client.pages(self.resource, self.token, self.page_size, start_after=self.last_id):
                for record in page:
                    if not isinstance(record, dict) or not isinstance(record.get("id"), str):
                        continue
                    self.records.append(record)
                    self.last_id = record["id"]
                    mappings = record.get("field_mappings")
                    if isinstance(mappings, dict) and mappings.get(EXTERNAL_ID_FIELD):
                        self.by_external_id[str(mappings[EXTERNAL_ID_FIELD])] = record


def _external_id(record: dict[str, Any]) -> str | None:
    mappings = record.get("field_mappings")
    if isinstance(mappings, dict) and mappings.get(EXTERNAL_ID_FIELD) is not None:
        return str(mappings[EXTERNAL_ID_FIELD])
    return None


def _content(kind: str, record: dict[str, Any]) -> dict[str, Any]:
    """A record in the queue's terms: what push can compare with the row it sent."""
    currency = record.get("currency")
    content: dict[str, Any] = {
        "total_amount": record.get("total_amount", 0),  # Panora leaves a zero amount out
        "currency": str(currency).upper() if currency is not None else None,
    }
    if kind == "payment":
        content["invoice_id"] = record.get("invoice_id")
    elif record.get("number") is not None:
        content["number"] = record.get("number")
    return content


def _created(kind: str, record: dict[str, Any]) -> Created:
    remote_id = record.get("remote_id")
    return Created(
        record_id=record["id"],
        remote_id=None if remote_id is None else str(remote_id),
        external_id=_external_id(record),
        content=_content(kind, record),
        created_at=server_moment(record.get("created_at"), naive_is_utc=False),
    )


class PanoraWriter:
    """Creates one record per request (the engine sends rows side by side)."""

    batch_size = 1
    runs_in_background = False  # a request without an answer may still be running, an answered one is done

    def __init__(self, api_key: str, base_url: str, options: WriterOptions) -> None:
        self.client = PanoraClient(api_key, base_url, policy=options.policy,
                                   stats=options.stats)  # fmt: skip
        self.page_size = options.page_size
        self.indexes: dict[tuple[str, str], RecordIndex] = {}
        self.lock = threading.Lock()

    def send(self, kind: str, account: str, rows: Sequence[Row]) -> dict[str, Created] | Job:
        (row,) = rows
        resource = RESOURCES[kind]
        created = self.client.create(resource, BODIES[kind](row), account)
        if not isinstance(created, dict) or not isinstance(created.get("id"), str) or not created["id"]:
            # a 2xx without the created record: it was created, but which record is it?
            raise OutcomeUnknown("POST", ENDPOINTS[resource], 201,
                                 f"the answer holds no created record ({type(created).__name__})")  # fmt: skip
        return {row["external_id"]: _created(kind, created)}

    def job(self, account: str, job_id: str) -> Job:
        raise ApiError("GET", job_id, 404, "Panora creates records at once; it runs no write jobs")

    def _index(self, kind: str, account: str) -> RecordIndex:
        with self.lock:
            key = (kind, account)
            if key not in self.indexes:
                self.indexes[key] = RecordIndex(self.client, RESOURCES[kind], account, self.page_size)
            return self.indexes[key]

    def refresh(self, kind: str, account: str, since: datetime) -> None:
        self._index(kind, account).refresh()  # the whole list: Panora filters nothing by time

    def find(
        self, kind: str, account: str, row: Row, claimed: set[str], not_before: datetime | None = None
    ) -> Created | None:
        index = self._index(kind, account)
        found = index.by_external_id.get(row["external_id"])
        if found is None:  # by content: only a record that carries no external id and could be this row's
            body = BODIES[kind](row)
            same = SAME_CONTENT[kind]
            found = next((r for r in index.records if r["id"] not in claimed and _external_id(r) is None
                          and _not_before(r, not_before) and same(r, body)), None)  # fmt: skip
        return None if found is None else _created(kind, found)

    def backoff(self, send: int) -> float:
        return self.client.http.policy.backoff(send, self.client.http.rng)

    def close(self) -> None:
        self.client.close()
