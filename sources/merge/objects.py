"""Merge's payments, invoices, tracking categories and contacts, adapted into the unified model.

Merge's vocabulary is close to the unified one (Panora's), so most fields keep their names; what differs:

- Related objects (`contact`, `account`, `company`, `item`, `tracking_categories`, ...) arrive as a Merge id,
  or as the object itself when expanded: both are read as the id, into the unified `<name>_id` column
  (`company` fills `company_info_id`, as Panora names it).
- Money. Merge sends major units (`total_amount: 50`, `applied_amount: "25"`): JSON numbers for totals and
  balances, decimal text for applied amounts and rates. Its docs never name the unit, but every example
  reads as major units; the unified tables hold integer minor units, so each amount is converted with its
  currency's ISO 4217 exponent, exactly (an amount with more decimals than the currency has is rejected by
  field, never rounded). Since the unit is a reading of examples, not a documented fact, each amount as sent
  is kept beside the converted one, as `<field>_as_sent` text.
- Currencies Merge could not map pass through as the original text: a code that is no ISO 4217 currency is
  rejected by field whenever the record has one.
- Lines. An invoice's `line_items` and a payment's `applied_to_lines` (the applications, with
  `related_object_type` INVOICE, CREDIT_NOTE or JOURNAL_ENTRY) become the child line items; both are asked for
  expanded, and a list of bare ids (not expanded) is rejected by field rather than loaded as nothing.
- Deletions. A record with `remote_was_deleted: true` is loaded with `deleted_at` (Merge's `modified_at` of
  that version: when its copy saw the deletion).
- Kinds. `type` ACCOUNTS_RECEIVABLE / ACCOUNTS_PAYABLE is read into `kind` by the shared reader.
- Quantities may be fractional: `quantity` (whole numbers, as the others') only for whole ones, and
  `quantity_decimal` always the exact value.

Everything else Merge sends (`payment_url`, `applied_payments`, `inclusive_of_tax`, a field added tomorrow)
is kept under its own name as a column of its own. A value that cannot be read raises `RecordError` naming
Merge's field and, once known, the record's id.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sources.common.errors import RecordError
from sources.common.reading import values as c
from sources.common.tables.declared import DELETED_COLUMN
from sources.common.unified_model import unified_objects
from sources.merge.settings import PROVIDER, VOLATILE_FIELDS


class _Record:
    """One Merge object being rewritten: reads fields by Merge's names, remembers which were used, and says
    which record and field a bad value belongs to."""

    def __init__(self, raw: dict[str, Any], record_id: str | None) -> None:
        self.raw = raw
        self.record_id = record_id
        self.used: set[str] = set()

    def get(self, name: str) -> Any:
        self.used.add(name)
        return self.raw.get(name)

    def ref(self, name: str) -> str | None:
        """A related object's Merge id, whether it came as the id or expanded as the object."""
        return _ref(self.get(name), name)

    def refs(self, name: str) -> list[str]:
        """A list of related objects' ids; every entry must be one (an empty entry is no reference)."""
        values = self.get(name)
        if values is None:
            return []
        if not isinstance(values, list):
            raise RecordError(name, f"expected a list, got {type(values).__name__} {c.preview(values)}")
        out = []
        for position, value in enumerate(values):
            ref = _ref(value, f"{name}[{position}]")
            if ref is None:
                raise RecordError(f"{name}[{position}]", f"expected a Merge id, got {c.preview(value)}")
            out.append(ref)
        return out

    def rest(self, out: dict[str, Any]) -> dict[str, Any]:
        """`out` plus every field not used, under its own name (a unified name is never overwritten)."""
        for key, value in self.raw.items():
            if key not in self.used and key not in out:
                out[key] = value
        return out

    def common(self) -> dict[str, Any]:
        out = {name: self.get(name) for name in ("id", "remote_id", "created_at", "modified_at", "field_mappings")}
        deleted = self.get("remote_was_deleted")
        if deleted is not None and not isinstance(deleted, bool):
            raise RecordError("remote_was_deleted", f"expected true or false, got {c.preview(deleted)}")
        out[DELETED_COLUMN] = None
        if deleted:  # when Merge's copy saw the deletion
            out[DELETED_COLUMN] = self.raw.get("modified_at") or self.raw.get("created_at")
            if out[DELETED_COLUMN] is None:
                raise RecordError("remote_was_deleted", "a deleted record without modified_at says not when")
        out["remote_was_deleted"] = deleted
        if "remote_updated_at" in self.raw:
            out["remote_updated_at"] = self.get("remote_updated_at")
        if "remote_data" in self.raw:
            out["remote_data"] = self.get("remote_data")
        return out

    def money(self, out: dict[str, Any], currency: Any, fields: dict[str, str]) -> None:
        """Amounts in major units (`fields`: unified -> Merge name) -> minor units of `currency`; each amount as
        sent is kept as `<Merge name>_as_sent` text (the unit is Merge's examples' reading, not a documented one)."""
        exponent = c.currency_exponent(currency, "currency") if currency is not None else None
        for unified, name in fields.items():
            value = self.get(name)
            if value is None:
                continue
            if exponent is None:
                exponent = c.currency_exponent(currency, "currency")  # says the currency is missing
            out[unified] = c.major_to_minor(value, name, exponent)
            out[f"{name}_as_sent"] = str(value)


def _ref(value: Any, field: str) -> str | None:
    """A related object's Merge id: the id as sent, or the `id` of the object when it came expanded."""
    if isinstance(value, dict):
        if not isinstance(value.get("id"), str) or not value["id"].strip():
            raise RecordError(field, f"an expanded object without an id: {c.preview(value)}")
        value = value["id"]
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not value.strip():
        raise RecordError(field, f"expected a Merge id or an object with one, got {c.preview(value)}")
    return value


def _currency(record: _Record, name: str = "currency") -> str | None:
    """The record's currency; a code Merge could not map (it passes the text through) is rejected here."""
    value = record.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise RecordError(name, f"expected a currency code, got {c.preview(value)}")
    c.currency_exponent(value, name)
    return value


def _adapting(build: Callable[[_Record], dict[str, Any]]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def adapter(raw: dict[str, Any]) -> dict[str, Any]:
        record_id = raw.get("id")
        record = _Record(raw, record_id if isinstance(record_id, str) and record_id else None)
        try:
            return record.rest(build(record))
        except RecordError as exc:
            exc.record_id = record.record_id
            raise

    return adapter


def _nested(record: _Record, name: str) -> list[dict[str, Any]] | None:
    """An expanded list of objects (`line_items`, `applied_to_lines`); ids alone mean it was not expanded."""
    values = record.get(name)
    if values is None:
        return None
    if not isinstance(values, list):
        raise RecordError(name, f"expected a list, got {type(values).__name__} {c.preview(values)}")
    for position, value in enumerate(values):
        if not isinstance(value, dict):
            raise RecordError(f"{name}[{position}]", f"expected an expanded object, got {c.preview(value)}")
    return values


def _payment(record: _Record) -> dict[str, Any]:
    out = record.common()
    currency = _currency(record)
    out.update(
        transaction_date=record.get("transaction_date"),
        contact_id=record.ref("contact"),
        account_id=record.ref("account"),
        payment_method_id=record.ref("payment_method"),
        company_info_id=record.ref("company"),
        accounting_period_id=record.ref("accounting_period"),
        currency=currency,
        exchange_rate=record.get("exchange_rate"),
        type=record.get("type"),
        tracking_categories=record.refs("tracking_categories"),
    )
    record.money(out, currency, {"total_amount": "total_amount"})
    lines = _nested(record, "applied_to_lines")
    if lines is not None:
        out["line_items"] = [_application(record, line, index, currency) for index, line in enumerate(lines)]
    return out


def _application(payment: _Record, raw: dict[str, Any], index: int, currency: Any) -> dict[str, Any]:
    line = _Record(raw, payment.record_id)
    try:
        out = {name: line.get(name) for name in ("id", "remote_id", "created_at", "modified_at", "applied_date",
                                                  "related_object_type")}  # fmt: skip
        out["related_object_id"] = line.ref("related_object_id")
        line.money(out, currency, {"applied_amount": "applied_amount"})
        return line.rest(out)
    except RecordError as exc:
        raise RecordError(f"applied_to_lines[{index}].{exc.field}", exc.message) from None


def _invoice(record: _Record) -> dict[str, Any]:
    out = record.common()
    currency = _currency(record)
    out.update(
        type=record.get("type"),
        number=record.get("number"),
        status=record.get("status"),
        issue_date=record.get("issue_date"),
        due_date=record.get("due_date"),
        paid_on_date=record.get("paid_on_date"),
        memo=record.get("memo"),
        currency=currency,
        exchange_rate=record.get("exchange_rate"),
        contact_id=record.ref("contact"),
        company_info_id=record.ref("company"),
        employee_id=record.ref("employee"),
        payment_term_id=record.ref("payment_term"),
        accounting_period_id=record.ref("accounting_period"),
        tracking_categories=record.refs("tracking_categories"),
    )
    record.money(out, currency, {"sub_total": "sub_total", "total_tax_amount": "total_tax_amount",
                                 "total_discount": "total_discount", "total_amount": "total_amount",
                                 "balance": "balance"})  # fmt: skip
    lines = _nested(record, "line_items")
    if lines is not None:
        out["line_items"] = [_invoice_line(record, line, index, currency) for index, line in enumerate(lines)]
    return out


def _invoice_line(invoice: _Record, raw: dict[str, Any], index: int, currency: Any) -> dict[str, Any]:
    line = _Record(raw, invoice.record_id)
    try:
        own = _currency(line)
        out: dict[str, Any] = {name: line.get(name) for name in ("id", "remote_id", "created_at", "modified_at",
                                                                 "description", "exchange_rate")}  # fmt: skip
        out.update(
            currency=own or currency,
            item_id=line.ref("item"),
            account_id=line.ref("account"),
            contact_id=line.ref("contact"),
            employee_id=line.ref("employee"),
            project_id=line.ref("project"),
            tax_rate_id=line.ref("tax_rate"),
            company_info_id=line.ref("company"),
            tracking_category_id=line.ref("tracking_category"),
            tracking_categories=line.refs("tracking_categories"),
        )
        out.update(c.quantity(line.get("quantity")))
        line.money(out, own or currency, {"unit_price": "unit_price", "total_amount": "total_amount"})
        deleted = line.get("remote_was_deleted")
        if deleted is not None:
            out["remote_was_deleted"] = deleted
        return line.rest(out)
    except RecordError as exc:
        raise RecordError(f"line_items[{index}].{exc.field}", exc.message) from None


def _tracking_category(record: _Record) -> dict[str, Any]:
    out = record.common()
    out.update(
        name=record.get("name"),
        status=record.get("status"),
        category_type=record.get("category_type"),
        parent_category=record.ref("parent_category"),
        company_info_id=record.ref("company"),
    )
    return out


def _contact(record: _Record) -> dict[str, Any]:
    out = record.common()
    out.update(
        name=record.get("name"),
        is_customer=record.get("is_customer"),
        is_supplier=record.get("is_supplier"),
        email_address=record.get("email_address"),
        tax_number=record.get("tax_number"),
        status=record.get("status"),
        currency=_currency(record),
        company_info_id=record.ref("company"),
    )
    return out


# unified field -> Merge's, where the adapter renames one (an error then names Merge's field)
_RENAMED = {DELETED_COLUMN: "remote_was_deleted", "company_info_id": "company", "contact_id": "contact",
            "account_id": "account", "accounting_period_id": "accounting_period"}  # fmt: skip
SOURCE_NAMES = {
    "payments": {"": {**_RENAMED, "line_items": "applied_to_lines"}, "line_items": {}},
    "invoices": {"": _RENAMED, "line_items": {"item_id": "item", "account_id": "account"}},
    "tracking_categories": {"": _RENAMED},
    "contacts": {"": _RENAMED},
}

OBJECTS = unified_objects(
    PROVIDER,
    VOLATILE_FIELDS,
    {
        "payments": _adapting(_payment),
        "invoices": _adapting(_invoice),
        "tracking_categories": _adapting(_tracking_category),
        "contacts": _adapting(_contact),
    },
    SOURCE_NAMES,
)
