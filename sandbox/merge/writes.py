"""`POST /payments` and `POST /invoices` as the Merge sandbox answers them, with Merge's idempotency keys.

The body is `{"model": {...}}` (Merge's PaymentRequest, InvoiceRequest). What the stand-in answers to a payment:
- a body that is no JSON object, or has no `model` object, or a field of the wrong type: 400
  `{"errors": [...], "warnings": []}`, nothing created;
- a payment the accounting system behind Merge refuses (an `applied_to_lines` entry naming an invoice the
  linked account does not hold, or applying more than the invoice's balance): 201 `{model, warnings, errors}`
  with the errors and the model as asked, without an id; nothing created (a 201 is not a success at Merge);
- otherwise 201 with the created payment (a Merge id, `remote_id`, the invoice's balance and status follow), and
  a warning when the payment's currency is not its invoice's.
- an invoice: 400 as above for a malformed one; 201 with errors for a `number` the linked account already
  holds (the accounting system refuses a duplicate number); otherwise 201 with the created invoice (OPEN,
  its balance its total; line items with ids).
- `Idempotency-Key` (per account and path): the key with the same body within 24 h answers the stored
  answer again and creates nothing (a 201 with errors too); the key with another body (byte for byte) is
  refused with 400. A 400 is not stored.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sandbox.merge.seed import DECIMALS, money
from sandbox.merge.store import Store

IDEMPOTENCY_SECONDS = 24 * 3600.0
PAYMENT_TYPES = ("ACCOUNTS_RECEIVABLE", "ACCOUNTS_PAYABLE")
WRITABLE = ("payments", "invoices")


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


@dataclass(frozen=True)
class Write:
    """One POST the server received: for tests that check what a client sent."""

    account: str
    kind: str  # payments or invoices
    idempotency_key: str | None
    body: Any
    status: int


def problem(title: str, detail: str, kind: str, pointer: str | None = None) -> dict[str, Any]:
    """One of Merge's validation problems (ErrorValidationProblem / WarningValidationProblem)."""
    return {"source": {"pointer": pointer} if pointer else None, "title": title, "detail": detail,
            "problem_type": kind, "raw_error": None, "error_code": None, "block_merge_link": None}  # fmt: skip


def _refused(errors: list[dict[str, Any]], model: Any = None) -> dict[str, Any]:
    return {"model": model, "warnings": [], "errors": errors, "logs": None}


def _amount(value: Any, currency: str | None, pointer: str) -> tuple[Decimal | None, dict[str, Any] | None]:
    """A money value (a JSON number or decimal text) as an exact Decimal with at most the currency's decimals."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None, problem("Invalid Field", f"{pointer} must be a number", "INVALID_FIELD", pointer)
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None, problem("Invalid Field", f"{pointer} must be a number", "INVALID_FIELD", pointer)
    places = DECIMALS.get(currency or "", 2)
    if amount != amount.quantize(Decimal(1).scaleb(-places)) or not amount.is_finite():
        return None, problem("Invalid Field", f"{pointer} has more than {places} decimals", "INVALID_FIELD", pointer)
    return amount, None


def _moment(value: Any) -> bool:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).tzinfo is not None
    except ValueError:
        return False


def _malformed(model: dict[str, Any]) -> list[dict[str, Any]]:
    """What makes Merge answer 400: types and required fields."""
    errors = []
    currency = model.get("currency")
    if not isinstance(currency, str) or currency not in DECIMALS:
        errors.append(problem("Invalid Field", "currency must be a supported ISO 4217 code", "INVALID_FIELD",
                              "/model/currency"))  # fmt: skip
    if model.get("total_amount") is None:
        errors.append(problem("Missing Required Field", "total_amount is required", "MISSING_REQUIRED_FIELD",
                              "/model/total_amount"))  # fmt: skip
    for name in ("transaction_date",):
        if model.get(name) is not None and not _moment(model[name]):
            errors.append(problem("Invalid Field", f"{name} must be an ISO 8601 date-time", "INVALID_FIELD",
                                  f"/model/{name}"))  # fmt: skip
    if model.get("type") is not None and model["type"] not in PAYMENT_TYPES:
        errors.append(problem("Invalid Field", f"type must be one of {PAYMENT_TYPES}", "INVALID_FIELD", "/model/type"))
    lines = model.get("applied_to_lines")
    if lines is not None and (not isinstance(lines, list) or not all(isinstance(x, dict) for x in lines)):
        errors.append(problem("Invalid Field", "applied_to_lines must be a list of objects", "INVALID_FIELD",
                              "/model/applied_to_lines"))  # fmt: skip
    return errors


class Writes:
    """The write side of one sandbox: creates payments and invoices in its store, remembers idempotency keys."""

    def __init__(self, store: Store) -> None:
        self.store = store
        # (account, kind, key) -> (body, answer, when)
        self.keys: dict[tuple[str, str, str], tuple[str, Answer, float]] = {}
        self.received: list[Write] = []

    def post(self, token: str, kind: str, key: str | None, raw: bytes) -> Answer:
        """The answer to one POST to `kind` (payments or invoices); the write, when there is one, is applied
        before this returns."""
        with self.store.lock:
            answer = self._post(token, kind, key, raw)
            try:
                body: Any = json.loads(raw or b"null")
            except ValueError:
                body = raw.decode("utf-8", "replace")
            self.received.append(Write(token, kind, key, body, answer.status))
            return answer

    def _post(self, token: str, kind: str, key: str | None, raw: bytes) -> Answer:
        # the body as sent, byte for byte: a resend that differs in key order or number formatting is another body
        canonical = raw.decode("utf-8", "replace")
        if key is not None:
            seen = self.keys.get((token, kind, key))
            if seen is not None and time.monotonic() - seen[2] < IDEMPOTENCY_SECONDS:
                if seen[0] != canonical:
                    return Answer(400, _refused([problem(
                        "Idempotency Key Reused", "this Idempotency-Key was used with a different request body",
                        "IDEMPOTENCY_KEY_REUSED")]))  # fmt: skip
                return copy.deepcopy(seen[1])
        model, refused = _model(raw)
        if refused is not None:
            answer = refused
        elif kind == "invoices":
            answer = self._create_invoice(token, model)
        else:
            answer = self._create(token, model)
        if key is not None and answer.status == 201:  # the stored response, a refusal inside a 201 too
            self.keys[(token, kind, key)] = (canonical, copy.deepcopy(answer), time.monotonic())
        return answer

    def _create(self, token: str, model: dict[str, Any]) -> Answer:
        malformed = _malformed(model)
        if malformed:
            return Answer(400, _refused(malformed))
        currency = model["currency"]
        total, bad = _amount(model["total_amount"], currency, "/model/total_amount")
        if bad is not None:
            return Answer(400, _refused([bad]))
        applied: list[tuple[dict[str, Any], dict[str, Any] | None, Decimal]] = []
        errors: list[dict[str, Any]] = []
        warnings: list[dict[str, Any]] = []
        for position, line in enumerate(model.get("applied_to_lines") or []):
            pointer = f"/model/applied_to_lines/{position}"
            amount, bad = _amount(line.get("applied_amount"), currency, f"{pointer}/applied_amount")
            if bad is not None:
                return Answer(400, _refused([bad]))
            assert amount is not None
            invoice = None
            if line.get("related_object_type") == "INVOICE":
                invoice = next((i for i in self.store.records[token]["invoices"]
                                if i["id"] == line.get("related_object_id") and not i.get("remote_was_deleted")),
                               None)  # fmt: skip
                if invoice is None:
                    errors.append(problem("Invalid Field", "the invoice does not exist in the accounting system",
                                          "INVALID_FIELD", f"{pointer}/related_object_id"))  # fmt: skip
                    continue
                if invoice["currency"] != currency:
                    warnings.append(problem("Currency Mismatch", "the payment's currency is not the invoice's",
                                            "CURRENCY_MISMATCH", f"{pointer}"))  # fmt: skip
                elif amount > Decimal(str(invoice["balance"])):
                    errors.append(problem("Invalid Field", "the amount applied is more than the invoice's balance",
                                          "INVALID_FIELD", f"{pointer}/applied_amount"))  # fmt: skip
                    continue
            applied.append((line, invoice, amount))
        if errors:
            return Answer(201, _refused(errors, model=copy.deepcopy(model)))
        return Answer(201, {"model": self._stored(token, model, total, applied), "warnings": warnings,
                            "errors": [], "logs": None})  # fmt: skip

    def _create_invoice(self, token: str, model: dict[str, Any]) -> Answer:
        malformed = _malformed({k: v for k, v in model.items() if k not in ("type", "applied_to_lines")})
        if model.get("type") is not None and model["type"] not in PAYMENT_TYPES:  # an invoice's kinds are the same
            malformed.append(problem("Invalid Field", f"type must be one of {PAYMENT_TYPES}", "INVALID_FIELD",
                                     "/model/type"))  # fmt: skip
        for name in ("issue_date", "due_date"):
            if model.get(name) is not None and not _moment(model[name]):
                malformed.append(problem("Invalid Field", f"{name} must be an ISO 8601 date-time", "INVALID_FIELD",
                                         f"/model/{name}"))  # fmt: skip
        lines = model.get("line_items")
        if lines is not None and (not isinstance(lines, list) or not all(isinstance(x, dict) for x in lines)):
            malformed.append(problem("Invalid Field", "line_items must be a list of objects", "INVALID_FIELD",
                                     "/model/line_items"))  # fmt: skip
        if malformed:
            return Answer(400, _refused(malformed))
        currency = model["currency"]
        amounts: dict[str, Decimal | None] = {}
        for name in ("total_amount", "sub_total", "total_tax_amount"):
            if model.get(name) is not None:
                amounts[name], bad = _amount(model[name], currency, f"/model/{name}")
                if bad is not None:
                    return Answer(400, _refused([bad]))
        stamp = self.store.stamp()
        stored_lines = []
        for position, line in enumerate(lines or []):
            line_amounts = {}
            for name in ("unit_price", "total_amount"):
                if line.get(name) is not None:
                    line_amounts[name], bad = _amount(line[name], currency, f"/model/line_items/{position}/{name}")
                    if bad is not None:
                        return Answer(400, _refused([bad]))
            stored_lines.append({
                "id": str(uuid.uuid4()), "remote_id": None, "created_at": stamp, "modified_at": stamp,
                "description": line.get("description"), "quantity": line.get("quantity"), "employee": None,
                "project": None, "contact": None, "currency": currency, "exchange_rate": None,
                "item": line.get("item"), "account": line.get("account"), "tax_rate": None,
                "tracking_category": None, "tracking_categories": list(line.get("tracking_categories") or []),
                "company": None, "is_billable": False, "remote_was_deleted": False, "field_mappings": None,
                **{k: money(v, currency) for k, v in line_amounts.items() if v is not None},
            })  # fmt: skip
        invoices = self.store.records[token]["invoices"]
        if model.get("number") and any(i.get("number") == model["number"] for i in invoices):
            duplicate = problem("Invalid Field", "an invoice with this number exists", "INVALID_FIELD", "/model/number")
            return Answer(201, _refused([duplicate], model=copy.deepcopy(model)))
        self.store.created["invoices"] += 1
        total = amounts.get("total_amount") or Decimal(0)
        record = {
            "id": str(uuid.uuid4()), "remote_id": f"INV-NEW-{self.store.created['invoices']:04d}", "created_at": stamp,
            "modified_at": stamp, "remote_was_deleted": False, "field_mappings": None, "remote_data": None,
            "invoice_url": None, "type": model.get("type") or "ACCOUNTS_RECEIVABLE", "contact": model.get("contact"),
            "number": model.get("number"), "issue_date": model.get("issue_date") or _today(),
            "due_date": model.get("due_date"), "paid_on_date": None, "memo": model.get("memo"), "company": None,
            "employee": None, "currency": currency, "exchange_rate": model.get("exchange_rate"),
            "payment_term": None, "total_discount": None,
            "sub_total": money(amounts.get("sub_total") or total, currency), "status": "OPEN",
            "total_tax_amount": money(amounts.get("total_tax_amount") or Decimal(0), currency),
            "total_amount": money(total, currency), "balance": money(total, currency),
            "remote_updated_at": stamp, "tracking_categories": list(model.get("tracking_categories") or []),
            "accounting_period": None, "purchase_orders": [], "sales_orders": [], "payments": [],
            "applied_payments": [], "line_items": stored_lines, "applied_credit_notes": [],
            "applied_vendor_credits": [], "inclusive_of_tax": False,
        }  # fmt: skip
        invoices.append(record)
        return Answer(201, {"model": copy.deepcopy(record), "warnings": [], "errors": [], "logs": None})

    def _stored(self, token: str, model: dict[str, Any], total: Decimal | None,
                applied: list[tuple[dict[str, Any], dict[str, Any] | None, Decimal]]) -> dict[str, Any]:  # fmt: skip
        store = self.store
        currency = model["currency"]
        stamp = store.stamp()
        lines = []
        for n, (line, invoice, amount) in enumerate(applied):
            lines.append({"id": str(uuid.uuid4()), "remote_id": f"PL-{store.created['payments'] + 1}-{n + 1}",
                          "created_at": stamp, "modified_at": stamp, "applied_amount": str(amount),
                          "applied_date": line.get("applied_date"), "related_object_id": line.get("related_object_id"),
                          "related_object_type": line.get("related_object_type")})  # fmt: skip
            if invoice is not None and invoice["currency"] == currency:
                left = Decimal(str(invoice["balance"])) - amount
                invoice["balance"] = money(left, invoice["currency"])
                invoice["status"] = "PAID" if left == 0 else "PARTIALLY_PAID"
                invoice["modified_at"] = stamp
        store.created["payments"] += 1
        record = {
            "id": str(uuid.uuid4()), "remote_id": f"PMT-NEW-{store.created['payments']:04d}", "created_at": stamp,
            "modified_at": stamp, "remote_was_deleted": False, "field_mappings": None, "remote_data": None,
            "payment_url": None, "transaction_date": model.get("transaction_date") or _today(),
            "contact": model.get("contact"), "account": model.get("account"), "payment_method": None,
            "currency": currency, "exchange_rate": model.get("exchange_rate"), "company": None,
            "total_amount": money(total or Decimal(0), currency), "type": model.get("type") or "ACCOUNTS_RECEIVABLE",
            "tracking_categories": list(model.get("tracking_categories") or []), "accounting_period": None,
            "applied_to_lines": lines, "remote_updated_at": stamp,
        }  # fmt: skip
        store.records[token]["payments"].append(record)
        for _, invoice, _ in applied:
            if invoice is not None:
                invoice.setdefault("payments", []).append(record["id"])
        return copy.deepcopy(record)


def _model(raw: bytes) -> tuple[dict[str, Any], Answer | None]:
    """The `model` of a POST body, or the 400 that refuses the body."""
    try:
        body = json.loads(raw or b"null")
    except ValueError:
        return {}, Answer(400, _refused([problem("Malformed Request", "the body is not JSON", "MALFORMED_REQUEST")]))
    model = body.get("model") if isinstance(body, dict) else None
    if not isinstance(model, dict):
        return {}, Answer(400, _refused([problem("Missing Required Field", "the body needs a `model` object",
                                                 "MISSING_REQUIRED_FIELD", "/model")]))  # fmt: skip
    return model, None


def _today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT00:00:00Z")
