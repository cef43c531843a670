"""Creating payments and invoices through Merge: one `POST /payments` (`/invoices`) `{"model": {...}}` per
record, with an `Idempotency-Key`.

Merge's payments carry no field of the caller's own (no reference, no memo), so an external id cannot travel
inside the record (an invoice has its `number`, which push requires and checks). What makes a resend safe
instead is Merge's idempotency key: every send of a row carries the same key, derived from its kind,
connection and external id, and Merge answers a key it has seen (for 24 h) with the stored answer, never a
second record; a key it has seen with another body is refused (400), which says an earlier send may have
created the record, so the row is looked up (`OutcomeUnknown`). Idempotency is a beta Merge enables per
customer; where it is off, the header is ignored and the lookup alone stands between an unclear answer and a
resend. The engine looks the record up before any resend (a payment by content: the invoice it is applied
to, amount, currency, day, created after the first send; an invoice by its number), and this writer never
retries a POST itself (Merge's SDK retries them on 408/409/429/5xx by default; here the shared client is told
the request is not idempotent).

Merge answers 201 `{model, warnings, errors}`: a 201 with errors and no created record created nothing (the
accounting system refused it) and is a refusal; errors beside a created record, or errors of no known shape,
leave the outcome open (looked up); warnings go to the ledger beside the created record. What the answer
describes is handed to the engine (`Created`), which checks it against the row before it believes it.
"""

from __future__ import annotations

import json
import random
import threading
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sources.common.currencies import minor_unit_exponent
from sources.common.errors import ApiError, OutcomeUnknown, WriteRefused
from sources.common.http.client import RetryPolicy
from sources.common.reading import values as c
from sources.common.reading.values import server_moment
from sources.common.secrets import SECRETS, printable
from sources.common.writer import COMPARED, ChangesSince, Created, Job, Row, WriterOptions, calendar_day
from sources.merge.client import MergeClient
from sources.merge.settings import ACCOUNT_TOKEN_HEADER, ENDPOINTS, MAX_PAGE_SIZE

IDEMPOTENCY_HEADER = "Idempotency-Key"
# a fixed namespace: the key of a row is the same on every machine and in every run
KEY_NAMESPACE = uuid.UUID("6f1c1e4a-53b0-4c38-9d0e-8f0a1c2b3d4e")
LOOKUP_MARGIN = timedelta(minutes=5)  # Merge's `modified_at` of a created record may precede our clock a little
RECEIVABLE = "ACCOUNTS_RECEIVABLE"
# a queued row's `type` in Merge's words: the queue's spelling (Xero's ACCREC / ACCPAY) or Merge's own
TYPES = {"ACCREC": RECEIVABLE, "ACCPAY": "ACCOUNTS_PAYABLE", RECEIVABLE: RECEIVABLE,
         "ACCOUNTS_PAYABLE": "ACCOUNTS_PAYABLE"}  # fmt: skip

RESOURCES = {"payment": "payments", "invoice": "invoices"}


def _type_word(row: Mapping[str, Any]) -> str:
    return str(row.get("type") or RECEIVABLE).strip().upper()


def row_problem(kind: str, row: Mapping[str, Any]) -> str | None:
    """Why Merge cannot take a queued row as it is (the plan's reason), or None: a `type` that is none of the
    words Merge's is read from. Taking it for a receivable would book a bill's payment as a customer's."""
    if _type_word(row) not in TYPES:
        return f"type {printable(str(row.get('type')))!r} is none of {', '.join(TYPES)}"
    return None


def merge_type(row: Row) -> str:
    """The row's `type` as Merge spells it (ACCOUNTS_RECEIVABLE when it has none); the plan has refused
    any other word (`row_problem`)."""
    return TYPES[_type_word(row)]


def idempotency_key(row: Row, kind: str = "payment") -> str:
    """The key every send of `row` carries: a UUID derived from its kind, connection and external id (Merge
    recommends a UUID), so a resend, in this run or another, is the same request to Merge."""
    return str(uuid.uuid5(KEY_NAMESPACE, f"{kind}\x1f{row['connection']}\x1f{row['external_id']}"))


def _major(minor: int, currency: str) -> Decimal:
    return Decimal(int(minor)).scaleb(-minor_unit_exponent(currency))


def payment_model(row: Row) -> dict[str, Any]:
    """Merge's PaymentRequest for a queued row: the amount in major units, exact (a JSON number from a Decimal,
    never a float), applied whole to the row's invoice as one `applied_to_lines` entry (how Merge says which
    invoice a payment pays), the queued calendar day at midnight UTC; the same body for every send."""
    currency = str(row["currency"]).upper()
    amount = _major(row["total_amount"], currency)
    model: dict[str, Any] = {"currency": currency, "total_amount": amount}
    day = calendar_day(row.get("transaction_date"))
    when = None if day is None else f"{day.isoformat()}T00:00:00Z"
    if when is not None:
        model["transaction_date"] = when
    model["type"] = merge_type(row)
    for column, field in (("contact_id", "contact"), ("account_id", "account")):
        if row.get(column):
            model[field] = str(row[column])
    if row.get("exchange_rate") is not None:
        model["exchange_rate"] = str(row["exchange_rate"])
    if row.get("tracking_categories"):
        model["tracking_categories"] = [t.strip() for t in str(row["tracking_categories"]).split(",") if t.strip()]
    line: dict[str, Any] = {"applied_amount": str(amount), "related_object_id": str(row["invoice_id"]),
                            "related_object_type": "INVOICE"}  # fmt: skip
    if when is not None:
        line["applied_date"] = when
    model["applied_to_lines"] = [line]
    return model


def invoice_model(row: Row) -> dict[str, Any]:
    """Merge's InvoiceRequest for a queued row: amounts in major units, exact; the queue's line items (the
    unified model's shape, as `invoices__line_items` holds them: `unit_price` and `total_amount` in minor
    units, `item_id`, `account_id`) in Merge's terms; `type` ACCREC / ACCPAY (or Merge's own spelling) as
    ACCOUNTS_RECEIVABLE / ACCOUNTS_PAYABLE; days at midnight UTC. The same body for every send."""
    currency = str(row["currency"]).upper()
    model: dict[str, Any] = {
        "type": merge_type(row),
        "number": str(row["number"]),
        "currency": currency,
        "total_amount": _major(row["total_amount"], currency),
    }
    for column in ("sub_total", "total_tax_amount"):
        if row.get(column) is not None:
            model[column] = _major(row[column], currency)
    for column in ("issue_date", "due_date"):
        day = calendar_day(row.get(column))
        if day is not None:
            model[column] = f"{day.isoformat()}T00:00:00Z"
    for column, field in (("contact_id", "contact"), ("memo", "memo"), ("exchange_rate", "exchange_rate")):
        if row.get(column) is not None:
            model[field] = str(row[column])
    if row.get("tracking_categories"):
        model["tracking_categories"] = [t.strip() for t in str(row["tracking_categories"]).split(",") if t.strip()]
    lines = json.loads(row["line_items"]) if row.get("line_items") else []
    model["line_items"] = [_invoice_line(line, currency) for line in lines if isinstance(line, dict)]
    return model


def _invoice_line(line: Mapping[str, Any], currency: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("unit_price", "total_amount"):
        if line.get(name) is not None:
            out[name] = _major(line[name], currency)
    if line.get("quantity") is not None:
        out["quantity"] = line["quantity"]
    for name, field in (("description", "description"), ("item_id", "item"), ("account_id", "account")):
        if line.get(name) is not None:
            out[field] = str(line[name])
    if line.get("tracking_categories"):
        out["tracking_categories"] = [str(t) for t in line["tracking_categories"]]
    return out


MODELS = {"payment": payment_model, "invoice": invoice_model}


def _problems(answer: Mapping[str, Any], name: str) -> list[str]:
    """A 201's `errors` or `warnings` as text (`title: detail`), masked; a malformed entry as itself."""
    entries = answer.get(name)
    if entries is None:
        return []
    if not isinstance(entries, list):
        return [f"{name} is not a list: {c.preview(entries)}"]
    out = []
    for entry in entries:
        if isinstance(entry, dict):
            text = ": ".join(str(entry[k]) for k in ("title", "detail") if entry.get(k) is not None)
            out.append(text or c.preview(entry))
        else:
            out.append(c.preview(entry))
    return [printable(SECRETS.redact(text))[:300] for text in out]


def _ref(value: Any) -> str | None:
    """A related object's id, whether sent as the id or expanded."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _applied_invoice(record: Mapping[str, Any]) -> str | None:
    """The invoice a payment is applied to, when it is applied to exactly one (as push creates them)."""
    lines = record.get("applied_to_lines")
    if not isinstance(lines, list):
        return None
    invoices = {
        _ref(line.get("related_object_id"))
        for line in lines
        if isinstance(line, dict) and str(line.get("related_object_type") or "").upper() == "INVOICE"
    }
    return invoices.pop() if len(invoices) == 1 else None


def _content(record: Mapping[str, Any], kind: str = "payment") -> dict[str, Any]:
    """A Merge payment or invoice in the queue's terms: a payment's invoice or an invoice's number, the amount
    in minor units (None where it does not read exactly), the currency."""
    currency = record.get("currency")
    try:
        exponent = minor_unit_exponent(currency)
        total = c.major_to_minor(record.get("total_amount"), "total_amount", exponent)
    except (ValueError, TypeError):  # RecordError is a ValueError
        total = None
    content = {
        **({"invoice_id": _applied_invoice(record)} if kind == "payment" else {"number": record.get("number")}),
        "total_amount": total,
        "currency": str(currency).upper() if isinstance(currency, str) else None,
    }
    return {k: v for k, v in content.items() if v is not None}


def _created(record: Mapping[str, Any], kind: str, warnings: Sequence[str] = ()) -> Created:
    remote_id = record.get("remote_id")
    return Created(
        record_id=record["id"],
        remote_id=None if remote_id is None else str(remote_id),
        content=_content(record, kind),
        created_at=server_moment(record.get("created_at")),
        warnings=tuple(warnings),
    )


def _same_day(record: Mapping[str, Any], row: Row) -> bool:
    day = calendar_day(row.get("transaction_date"))
    return day is None or str(record.get("transaction_date") or "")[:10] == day.isoformat()


class _Lookup:
    """One linked account's payments (or invoices) by Merge id, read from a moment on and refreshed from the
    newest change seen (less a margin: `modified_after` is strict)."""

    def __init__(self, client: MergeClient, resource: str, page_size: int) -> None:
        self.records: dict[str, dict[str, Any]] = {}  # the latest version of each
        self.lock = threading.Lock()
        self.changes = ChangesSince(
            lambda since: client.pages(resource, page_size, modified_after=since),
            self._keep,
            lambda record: server_moment(record.get("modified_at")) if isinstance(record, dict) else None,
            margin=LOOKUP_MARGIN,
            overlap=LOOKUP_MARGIN,
        )

    def _keep(self, record: Any) -> None:
        if isinstance(record, dict) and isinstance(record.get("id"), str) and record["id"]:
            with self.lock:
                self.records[record["id"]] = record

    def refresh(self, since: datetime) -> None:
        self.changes.refresh(since)


class MergeWriter:
    """Creates one record per request (the engine sends rows side by side, within each account's budget)."""

    batch_size = 1
    runs_in_background = False  # Merge writes synchronously unless asked to run async, which push never does

    def __init__(self, api_key: str, base_url: str, options: WriterOptions) -> None:
        self.api_key = api_key
        self.base_url = base_url
        self.options = options
        self.clients: dict[str, MergeClient] = {}
        self.lookups: dict[tuple[str, str], _Lookup] = {}  # (kind, account) -> what Merge lists
        self.lock = threading.RLock()  # `_lookup` makes its client under it
        self.rng = random.Random()

    def _client(self, account: str) -> MergeClient:
        with self.lock:
            if account not in self.clients:
                self.clients[account] = MergeClient(self.api_key, account, self.base_url,
                                                    policy=self.options.policy, stats=self.options.stats)  # fmt: skip
            return self.clients[account]

    def send(self, kind: str, account: str, rows: Sequence[Row]) -> dict[str, Created] | Job:
        (row,) = rows
        path = ENDPOINTS[RESOURCES[kind]]
        try:
            answer = self._client(account).http.request_json(
                "POST",
                path,
                json_body={"model": MODELS[kind](row)},
                headers={ACCOUNT_TOKEN_HEADER: account, IDEMPOTENCY_HEADER: idempotency_key(row, kind)},
                idempotent=False,  # never retried by the client: the engine looks it up first
            )
        except ApiError as exc:
            if exc.status == 400 and "idempotency" in exc.message.lower():
                # Merge has this row's key with another body: an earlier send of it may have created the record
                reason = f"Merge has this row's key with another body (a send may have created it): {exc.message}"
                raise OutcomeUnknown("POST", path, 400, reason) from None
            raise
        if not isinstance(answer, dict):
            raise OutcomeUnknown("POST", path, 201, f"the answer is not an object ({type(answer).__name__})")
        model = answer.get("model")
        has_id = isinstance(model, dict) and isinstance(model.get("id"), str) and bool(model["id"])
        errors = answer.get("errors")
        if errors is not None and not isinstance(errors, list):
            raise OutcomeUnknown("POST", path, 201, f"the answer's errors are no list: {c.preview(errors)}")
        if errors:
            if has_id:  # errors beside a created record: which is true, a lookup tells
                raise OutcomeUnknown("POST", path, 201, "Merge answered with errors and a created record: "
                                     + "; ".join(_problems(answer, "errors")))  # fmt: skip
            # the accounting system refused the write: Merge created nothing
            raise WriteRefused(
                "POST", path, 201, "Merge answered with errors: " + "; ".join(_problems(answer, "errors"))
            )
        if not has_id:
            raise OutcomeUnknown("POST", path, 201, f"the answer holds no created {kind} with an id")
        created = _created(model, kind, _problems(answer, "warnings"))  # type: ignore[arg-type]
        # the engine checks what both the row and the answer say; what a 201 leaves unread (a payment's invoice
        # comes from its one INVOICE line in `applied_to_lines`) cannot be checked, so a lookup reads it
        unread = [name for name in COMPARED[kind] if name not in created.content]
        if unread:
            raise OutcomeUnknown("POST", path, 201, f"the answer does not say the created {kind}'s "
                                 + ", ".join(unread))  # fmt: skip
        return {row["external_id"]: created}

    def job(self, account: str, job_id: str) -> Job:
        raise ApiError("GET", job_id, 404, "Merge writes payments synchronously; push runs no write jobs there")

    def _lookup(self, kind: str, account: str) -> _Lookup:
        with self.lock:
            if (kind, account) not in self.lookups:
                # Merge refuses a page_size above its maximum; the job's default for lookups is larger
                page_size = min(self.options.page_size, MAX_PAGE_SIZE)
                self.lookups[kind, account] = _Lookup(self._client(account), RESOURCES[kind], page_size)
            return self.lookups[kind, account]

    def refresh(self, kind: str, account: str, since: datetime) -> None:
        self._lookup(kind, account).refresh(since)

    def find(
        self, kind: str, account: str, row: Row, claimed: set[str], not_before: datetime | None = None
    ) -> Created | None:
        # by content: a Merge record carries no external id (see the module text); an invoice's number is in it
        key = {"invoice_id": row.get("invoice_id")} if kind == "payment" else {"number": row.get("number")}
        wanted = {**key, "total_amount": int(row["total_amount"]), "currency": str(row["currency"]).upper()}
        lookup = self._lookup(kind, account)
        with lookup.lock:
            records = list(lookup.records.values())
        for record in sorted(records, key=lambda r: (str(r.get("created_at")), r["id"])):
            if record["id"] in claimed or record.get("remote_was_deleted"):
                continue
            created = server_moment(record.get("created_at"))
            if not_before is not None and created is not None and created < not_before:
                continue
            if _content(record, kind) == wanted and (kind == "invoice" or _same_day(record, row)):
                return _created(record, kind)
        return None

    def backoff(self, send: int) -> float:
        return (self.options.policy or RetryPolicy()).backoff(send, self.rng)

    def close(self) -> None:
        with self.lock:
            for client in self.clients.values():
                client.close()
            self.clients.clear()
