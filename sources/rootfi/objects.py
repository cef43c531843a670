"""Rootfi's invoices, invoice payments, tracking categories and contacts, adapted into the unified model.

Each Rootfi record is rewritten into the unified vocabulary (`sources/common/unified_model.py`) before it is
normalized, so both providers fill the same tables and columns with the same meaning:

- Keys. Rootfi records refer to each other by the accounting platform's id (a payment's `invoice_id` is
  the invoice's `platform_id`), and platform ids repeat across companies. So a Rootfi row's `id` is
  `rootfi:<company id>:<platform_id>`, and every reference (`invoice_id`, `contact_id`, `account_id`,
  `item_id`, tracking category ids, ...) is written the same way: the joins of the transforms work
  unchanged, and no Rootfi id can meet a Panora UUID or another company's id. `remote_id` is the
  `platform_id` as sent; `rootfi_id` (Rootfi's own number) is kept too.
- Money. Rootfi sends major units as JSON numbers (100.5); the unified tables hold integer minor units
  (Panora's unit). Each amount is converted with its currency's ISO 4217 exponent (JPY 0, EUR 2, KWD 3),
  exactly: an amount with more decimals than its currency has is rejected, never rounded. Line items take
  their invoice's currency.
- Quantities. Rootfi quantities may be fractional (1.5); `quantity` (whole numbers, as Panora's) is filled
  only for whole ones, and `quantity_decimal` always holds the exact value.
- Time. `rootfi_created_at` / `rootfi_updated_at` / `rootfi_deleted_at` fill `created_at` / `modified_at` /
  `deleted_at`; the platform's own `updated_at` fills `remote_updated_at`; `raw_data` fills `remote_data`.
- Everything else Rootfi sends (`payment_mode`, `document_number`, `custom_fields`, `data_hash`,
  `platform_unique_id`, a field added tomorrow) is kept under its own name as a column of its own.

A value that cannot be read raises `RecordError` naming Rootfi's field and, once known, the record's id.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sources.common.errors import RecordError
from sources.common.reading import values as c
from sources.common.tables.declared import DELETED_COLUMN
from sources.common.unified_model import unified_objects
from sources.rootfi.settings import PROVIDER, VOLATILE_FIELDS

# Rootfi field -> unified field, the same on every object kind
TIME_FIELDS = {
    "rootfi_created_at": "created_at",
    "rootfi_updated_at": "modified_at",
    "rootfi_deleted_at": DELETED_COLUMN,
    "updated_at": "remote_updated_at",
    "raw_data": "remote_data",
}


def record_key(company_id: Any, platform_id: Any) -> str:
    return f"{PROVIDER}:{company_id}:{platform_id}"


def platform_ref(key: Any, company_id: Any) -> str:
    """The platform id inside a warehouse key of this company (`record_key`'s inverse); any other value is
    taken to be a platform id already."""
    prefix = record_key(company_id, "")
    text = str(key)
    return text[len(prefix) :] if text.startswith(prefix) else text


class _Record:
    """One Rootfi record being rewritten: reads fields by Rootfi's names, tracks which were used, and
    says which record and field a bad value belongs to."""

    def __init__(self, raw: dict[str, Any], parent: _Record | None = None) -> None:
        self.raw = raw
        self.used: set[str] = set()
        if parent is not None:  # a line item: keyed by its invoice
            self.company, self.record_id = parent.company, parent.record_id
            return
        self.record_id: str | None = None
        company = raw.get("rootfi_company_id")
        platform_id = raw.get("platform_id")
        if company in (None, "") or isinstance(company, bool):
            raise RecordError("rootfi_company_id", "missing")
        if not isinstance(platform_id, str | int) or isinstance(platform_id, bool) or not str(platform_id).strip():
            raise RecordError("platform_id", "missing" if platform_id is None else f"not an id: {platform_id!r:.60}")
        self.company = company
        self.record_id = record_key(company, platform_id)
        self.used |= {"rootfi_company_id", "platform_id"}

    def get(self, *names: str) -> Any:
        """The first of `names` present (Rootfi's current name first, then older ones)."""
        self.used.update(names)
        for name in names:
            if self.raw.get(name) is not None:
                return self.raw[name]
        return None

    def ref(self, *names: str) -> str | None:
        value = self.get(*names)
        if value is None or value == "":
            return None
        if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
            raise RecordError(names[0], f"expected an id, got {type(value).__name__} {value!r:.60}")
        return record_key(self.company, value)

    def refs(self, name: str) -> list[str]:
        values = self.get(name)
        if values is None:
            return []
        if not isinstance(values, list):
            raise RecordError(name, f"expected a list of ids, got {values!r:.60}")
        for position, value in enumerate(values):
            if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
                raise RecordError(f"{name}[{position}]", f"expected an id, got {value!r:.60}")
        return [record_key(self.company, v) for v in values]

    def rest(self, out: dict[str, Any]) -> dict[str, Any]:
        """`out` plus every field not used, under its own name (a unified name is never overwritten)."""
        for key, value in self.raw.items():
            if key not in self.used and key not in out:
                out[key] = value
        return out

    def common(self) -> dict[str, Any]:
        out = {"id": self.record_id, "remote_id": str(self.raw["platform_id"])}
        for rootfi_name, unified in TIME_FIELDS.items():
            out[unified] = self.get(rootfi_name)
        return out


def _adapting(build: Callable[[_Record], dict[str, Any]]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def adapter(raw: dict[str, Any]) -> dict[str, Any]:
        record = _Record(raw)
        try:
            return record.rest(build(record))
        except RecordError as exc:
            exc.record_id = record.record_id
            raise

    return adapter


def _money(record: _Record, out: dict[str, Any], currency_field: str, fields: dict[str, Sequence[str]]) -> None:
    """Amounts in major units -> minor units of the record's currency (`fields`: unified -> Rootfi names)."""
    present = {unified: record.get(*names) for unified, names in fields.items()}
    if all(v is None for v in present.values()):
        return
    exponent = c.currency_exponent(record.get(currency_field), currency_field)
    for unified, value in present.items():
        out[unified] = c.major_to_minor(value, fields[unified][0], exponent)


# Rootfi's invoice statuses in the unified vocabulary (Panora's, which the models and push read): only the
# spelling of a voided invoice differs.
UNIFIED_INVOICE_STATUS = {"VOIDED": "VOID"}


def _invoice_status(value: Any) -> Any:
    if isinstance(value, str):
        return UNIFIED_INVOICE_STATUS.get(value.strip().upper(), value)
    return value  # the column's reader names what is wrong with it


def _invoice(record: _Record) -> dict[str, Any]:
    currency = record.get("currency_id")
    out = record.common()
    out.update(
        kind="receivable",  # Rootfi lists bills on another endpoint (`/accounting/bills`), not loaded here
        number=record.get("document_number"),
        status=_invoice_status(record.get("status")),
        issue_date=record.get("posted_date"),
        due_date=record.get("due_date"),
        memo=record.get("memo"),
        currency=currency,
        exchange_rate=record.get("currency_rate"),
        contact_id=record.ref("contact_id"),
    )
    _money(
        record,
        out,
        "currency_id",
        {
            "sub_total": ("sub_total",),
            "total_tax_amount": ("tax_amount",),
            "total_discount": ("total_discount",),
            "total_amount": ("total_amount",),
            "balance": ("amount_due",),
        },
    )
    lines = record.get("line_items")
    if lines is not None:
        if not isinstance(lines, list):
            raise RecordError("line_items", f"expected a list, got {type(lines).__name__}")
        out["line_items"] = [_line(record, line, index, currency) for index, line in enumerate(lines)]
    return out


def _line(invoice: _Record, raw: Any, index: int, currency: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise RecordError(f"line_items[{index}]", f"expected an object, got {raw!r:.60}")
    line = _Record(raw, parent=invoice)
    try:
        rootfi_id = line.get("rootfi_id")
        out: dict[str, Any] = {
            "id": c.text(rootfi_id, "rootfi_id"),
            "description": line.get("description"),
            "currency": currency,
            "item_id": line.ref("item_id"),
            "account_id": line.ref("account_id"),
            "tax_id": line.ref("tax_id"),
            "tracking_categories": line.refs("tracking_category_ids"),
        }
        out.update(c.quantity(line.get("quantity")))
        if any(line.raw.get(k) is not None for k in ("unit_amount", "total_amount", "sub_total", "tax_amount")):
            exponent = c.currency_exponent(currency, "currency_id")
            for unified, name in (
                ("unit_price", "unit_amount"),
                ("total_amount", "total_amount"),
                ("sub_total", "sub_total"),
                ("tax_amount", "tax_amount"),
                ("total_discount", "total_discount"),
            ):
                out[unified] = c.major_to_minor(line.get(name), name, exponent)
        return line.rest(out)
    except RecordError as exc:
        raise RecordError(f"line_items[{index}].{exc.field}", exc.message) from None


def _payment(record: _Record) -> dict[str, Any]:
    out = record.common()
    out.update(
        invoice_id=record.ref("invoice_id"),
        contact_id=record.ref("contact_id"),
        account_id=record.ref("account_id"),
        credit_note_id=record.ref("credit_note_id", "document_id"),
        currency=record.get("currency_id"),
        exchange_rate=record.get("currency_rate"),
        transaction_date=record.get("payment_date"),
        document_number=record.get("document_number", "reference"),
        memo=record.get("memo", "description"),
    )
    _money(record, out, "currency_id", {"total_amount": ("amount",)})
    return out


# Rootfi's `contact_type` -> (is_customer, is_supplier); a type not listed leaves both unknown
CONTACT_ROLES = {"CUSTOMER": (True, False), "VENDOR": (False, True), "SUPPLIER": (False, True), "BOTH": (True, True)}


def _contact(record: _Record) -> dict[str, Any]:
    out = record.common()
    kind = record.get("contact_type")
    if kind is not None and not isinstance(kind, str):
        raise RecordError("contact_type", f"expected text, got {type(kind).__name__} {c.preview(kind)}")
    is_customer, is_supplier = CONTACT_ROLES.get(kind.strip().upper() if kind else "", (None, None))
    out.update(
        name=record.get("name"),
        is_customer=is_customer,
        is_supplier=is_supplier,
        email_address=record.get("email"),
        tax_number=record.get("tax_number"),
        status=record.get("status"),
        currency=record.get("currency_id"),
    )
    if kind is not None:
        out["contact_type"] = kind  # Rootfi's own word, kept beside the two flags read from it
    return out


def _tracking_category(record: _Record) -> dict[str, Any]:
    out = record.common()
    out.update(name=record.get("name"), status=record.get("status"), parent_category=record.ref("parent_id"))
    return out


# unified field -> Rootfi's, where the adapter renames one (an error then names Rootfi's field)
_RECORD_NAMES = {unified: rootfi for rootfi, unified in TIME_FIELDS.items()} | {
    "id": "platform_id",
    "remote_id": "platform_id",
    "currency": "currency_id",
    "exchange_rate": "currency_rate",
}
SOURCE_NAMES = {
    "payments": {"": {**_RECORD_NAMES, "transaction_date": "payment_date", "total_amount": "amount"}},
    "invoices": {
        "": {
            **_RECORD_NAMES,
            "number": "document_number",
            "issue_date": "posted_date",
            "total_tax_amount": "tax_amount",
            "balance": "amount_due",
        },
        "line_items": {"id": "rootfi_id", "unit_price": "unit_amount", "tracking_categories": "tracking_category_ids"},
    },
    "tracking_categories": {"": {**_RECORD_NAMES, "parent_category": "parent_id"}},
    "contacts": {
        "": {**_RECORD_NAMES, "email_address": "email", "is_customer": "contact_type", "is_supplier": "contact_type"}
    },
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
