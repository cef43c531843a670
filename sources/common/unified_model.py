"""The unified accounting model: the tables every provider fills, and the record fields that fill them.

The vocabulary is Panora's (the first provider): its records are read as they come, and another provider
adapts each record into these field names first (`ObjectSpec.adapter`, see `sources/rootfi/objects.py`).
Rows say which provider they came from (`provider`); fields a provider has beyond these are kept as
columns of their own.

Field names follow Panora's running server; where its published spec names a field differently, both names
are read into one column (`item_id` / `id_acc_item`, `tracking_categories` / `acc_tracking_categories`).
The spec's `LineItem` (a financial-report item: name, value, type, parent_item, ...) is a generator
collision, but a server that sends that shape still loads: `name` fills `description` and the rest are
typed columns of their own. `value` is NOT mapped to an amount column: its unit is not documented.

Money fields are integer minor units of the record's currency (Panora's own unit; other providers convert
into it). An absent money field is NULL here: Panora drops zero amounts from its JSON, so NULL can mean 0
(the transforms decide, and say so).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import pyarrow as pa

from sources.common.reading import values as c
from sources.common.tables.declared import DECIMAL, DELETED_COLUMN, HASH_COLUMN, TIMESTAMP, TableSpec
from sources.common.tables.object_specs import Adapter, Field, IdListChild, ObjectChild, ObjectSpec

S, I64, I32 = pa.string(), pa.int64(), pa.int32()

# Columns every parent table starts and ends with.
KEY_COLUMNS = {"id": S, "connection": S, "provider": S, "remote_id": S}
TRAILING_COLUMNS = {
    "remote_updated_at": TIMESTAMP,
    "created_at": TIMESTAMP,
    "modified_at": TIMESTAMP,
    "remote_data": S,
    "field_mappings": S,
    HASH_COLUMN: S,
    DELETED_COLUMN: TIMESTAMP,
}
JSON_COLUMNS = frozenset({"remote_data", "field_mappings"})
TRAILING_FIELDS = (
    Field("remote_id", c.text),
    Field("remote_updated_at", c.timestamp),
    Field("created_at", c.timestamp),
    Field("modified_at", c.timestamp),
    Field("remote_data", c.json_text),
    Field("field_mappings", c.json_text),
    Field(DELETED_COLUMN, c.timestamp),  # set by providers that list deletions (Panora's records never have it)
)
# The financial-report item shape of the spec's `LineItem`.
REPORT_ITEM_COLUMNS = {
    "value": DECIMAL,
    "type": S,
    "parent_item": S,
    "remote_generated_at": TIMESTAMP,
    "company_info_id": S,
}
REPORT_ITEM_FIELDS = (
    Field("value", c.decimal),
    Field("type", c.text),
    Field("parent_item", c.text),
    Field("remote_generated_at", c.timestamp),
    Field("company_info_id", c.text),
)
LINE_TRAILING_COLUMNS = {"remote_id": S, "created_at": TIMESTAMP, "modified_at": TIMESTAMP}
LINE_TRAILING_FIELDS = (
    Field("remote_id", c.text),
    Field("created_at", c.timestamp),
    Field("modified_at", c.timestamp),
)


def _parent_table(name: str, columns: dict[str, pa.DataType]) -> TableSpec:
    """A record's own table: keyed by `id`, with the key and trailing columns every Panora object has."""
    return TableSpec(
        name,
        {**KEY_COLUMNS, **columns, **TRAILING_COLUMNS},
        json_columns=JSON_COLUMNS,
        primary_key=("id",),
    )


def _line_table(name: str, parent_key: str, columns: dict[str, pa.DataType]) -> TableSpec:
    """A record's line items, keyed by the parent's id and the line's position."""
    return TableSpec(
        name,
        {parent_key: S, "line_index": I32, "connection": S, **columns, **REPORT_ITEM_COLUMNS, **LINE_TRAILING_COLUMNS},
        primary_key=(parent_key, "line_index"),
        merge_key=(parent_key,),
    )


def _tracking_table(name: str, parent_key: str, with_line: bool = False) -> TableSpec:
    columns = {parent_key: S}
    if with_line:
        columns["line_index"] = I32
    columns.update({"position": I32, "connection": S, "tracking_category_id": S})
    key = (parent_key, "line_index", "position") if with_line else (parent_key, "position")
    return TableSpec(name, columns, primary_key=key, merge_key=(parent_key,))


# -- payments ----------------------------------------------------------------------------------------
PAYMENTS = _parent_table(
    "payments",
    {
        "invoice_id": S,
        "transaction_date": TIMESTAMP,
        "contact_id": S,
        "account_id": S,
        "currency": S,
        "exchange_rate": DECIMAL,
        "total_amount": I64,
        "type": S,
        "company_info_id": S,
        "accounting_period_id": S,
    },
)
PAYMENTS_LINE_ITEMS = _line_table(
    "payments__line_items",
    "payment_id",
    {
        "id": S,
        "applied_amount": I64,
        "applied_date": TIMESTAMP,
        "related_object_id": S,
        "related_object_type": S,
        "description": S,
    },
)
PAYMENTS_TRACKING_CATEGORIES = _tracking_table("payments__tracking_categories", "payment_id")

PAYMENT = ObjectSpec(
    resource="payments",
    parent=PAYMENTS,
    foreign_key="payment_id",
    fields=(
        Field("invoice_id", c.text),
        Field("transaction_date", c.timestamp),
        Field("contact_id", c.text),
        Field("account_id", c.text),
        Field("currency", c.text),
        Field("exchange_rate", c.decimal),
        Field("total_amount", c.minor_units),
        Field("type", c.text),
        Field("company_info_id", c.text),
        Field("accounting_period_id", c.text),
        *TRAILING_FIELDS,
    ),
    id_lists=(IdListChild(PAYMENTS_TRACKING_CATEGORIES, ("tracking_categories",)),),
    objects=(
        ObjectChild(
            PAYMENTS_LINE_ITEMS,
            ("line_items",),
            fields=(
                Field("id", c.text),
                Field("applied_amount", c.minor_units),
                Field("applied_date", c.timestamp),
                Field("related_object_id", c.text),
                Field("related_object_type", c.text),
                Field("description", c.text, ("description", "name")),
                *REPORT_ITEM_FIELDS,
                *LINE_TRAILING_FIELDS,
            ),
        ),
    ),
)

# -- invoices ----------------------------------------------------------------------------------------
INVOICES = _parent_table(
    "invoices",
    {
        "number": S,
        "type": S,
        "kind": S,
        "status": S,
        "issue_date": TIMESTAMP,
        "due_date": TIMESTAMP,
        "paid_on_date": TIMESTAMP,
        "memo": S,
        "currency": S,
        "exchange_rate": DECIMAL,
        "sub_total": I64,
        "total_tax_amount": I64,
        "total_discount": I64,
        "total_amount": I64,
        "balance": I64,
        "contact_id": S,
        "accounting_period_id": S,
    },
)
INVOICES_LINE_ITEMS = _line_table(
    "invoices__line_items",
    "invoice_id",
    {
        "id": S,
        "description": S,
        "unit_price": I64,
        "quantity": I64,
        "total_amount": I64,
        "currency": S,
        "exchange_rate": DECIMAL,
        "item_id": S,
    },
)
INVOICES_TRACKING_CATEGORIES = _tracking_table("invoices__tracking_categories", "invoice_id")
INVOICES_LINE_ITEMS_TRACKING_CATEGORIES = _tracking_table(
    "invoices__line_items__tracking_categories", "invoice_id", with_line=True
)

INVOICE = ObjectSpec(
    resource="invoices",
    parent=INVOICES,
    foreign_key="invoice_id",
    fields=(
        Field("number", c.text),
        Field("type", c.text),
        # the side of the ledger, from the provider's own word (`type`): `receivable`, `payable` (a bill)
        Field("kind", c.invoice_kind, ("kind", "type")),
        Field("status", c.text),
        Field("issue_date", c.timestamp),
        Field("due_date", c.timestamp),
        Field("paid_on_date", c.timestamp),
        Field("memo", c.text),
        Field("currency", c.text),
        Field("exchange_rate", c.decimal),
        Field("sub_total", c.minor_units),
        Field("total_tax_amount", c.minor_units),
        Field("total_discount", c.minor_units),
        Field("total_amount", c.minor_units),
        Field("balance", c.minor_units),
        Field("contact_id", c.text),
        Field("accounting_period_id", c.text),
        *TRAILING_FIELDS,
    ),
    id_lists=(IdListChild(INVOICES_TRACKING_CATEGORIES, ("tracking_categories",)),),
    objects=(
        ObjectChild(
            INVOICES_LINE_ITEMS,
            ("line_items",),
            fields=(
                Field("id", c.text),
                Field("description", c.text, ("description", "name")),
                Field("unit_price", c.minor_units),
                Field("quantity", c.minor_units),
                Field("total_amount", c.minor_units),
                Field("currency", c.text),
                Field("exchange_rate", c.decimal),
                Field("item_id", c.text, ("item_id", "id_acc_item")),
                *REPORT_ITEM_FIELDS,
                *LINE_TRAILING_FIELDS,
            ),
            id_lists=(
                IdListChild(
                    INVOICES_LINE_ITEMS_TRACKING_CATEGORIES,
                    ("tracking_categories", "acc_tracking_categories"),
                ),
            ),
        ),
    ),
)

# -- tracking categories -----------------------------------------------------------------------------
TRACKING_CATEGORIES = _parent_table(
    "tracking_categories", {"name": S, "status": S, "category_type": S, "parent_category": S}
)
TRACKING_CATEGORY = ObjectSpec(
    resource="tracking_categories",
    parent=TRACKING_CATEGORIES,
    foreign_key="tracking_category_id",
    fields=(
        Field("name", c.text),
        Field("status", c.text),
        Field("category_type", c.text),
        Field("parent_category", c.text),
        *TRAILING_FIELDS,
    ),
)


# -- contacts ----------------------------------------------------------------------------------------
# The customers and suppliers invoices and payments name by `contact_id`.
CONTACTS = _parent_table(
    "contacts",
    {
        "name": S,
        "is_customer": pa.bool_(),
        "is_supplier": pa.bool_(),
        "email_address": S,
        "tax_number": S,
        "status": S,
        "currency": S,
        "company_info_id": S,
    },
)
CONTACT = ObjectSpec(
    resource="contacts",
    parent=CONTACTS,
    foreign_key="contact_id",
    fields=(
        Field("name", c.text),
        Field("is_customer", c.boolean),
        Field("is_supplier", c.boolean),
        Field("email_address", c.text),
        Field("tax_number", c.text),
        Field("status", c.text),
        Field("currency", c.text),
        Field("company_info_id", c.text),
        *TRAILING_FIELDS,
    ),
)


def unified_objects(
    provider: str,
    volatile: frozenset[str] = frozenset(),
    adapters: Mapping[str, Adapter] | None = None,
    source_names: Mapping[str, Mapping[str, Mapping[str, str]]] | None = None,
) -> dict[str, ObjectSpec]:
    """The object kinds (`payments`, `invoices`, `tracking_categories`, `contacts`) as one provider fills them: its
    name on every row, the fields its server rewrites without a change (`volatile`, left out of the content
    hash), and per kind the adapter that turns its records into this vocabulary (none for Panora) with the
    provider's names of the fields it renames (`ObjectSpec.source_names`, for errors)."""
    adapters = adapters or {}
    source_names = source_names or {}
    return {
        spec.resource: replace(
            spec,
            volatile=volatile,
            row_defaults={"provider": provider},
            adapter=adapters.get(spec.resource),
            source_names=source_names.get(spec.resource, {}),
        )
        for spec in (PAYMENT, INVOICE, TRACKING_CATEGORY, CONTACT)
    }
