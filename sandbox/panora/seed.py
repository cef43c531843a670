"""Seeded, realistic accounting data for the Panora sandbox.

The records are stored the way Panora stores them: money in integer minor units (zero values kept here;
the server drops them when it writes JSON), ISO timestamps, the server's own line-item field names.

What the seed covers, per connection: several currencies (one zero-decimal, one three-decimal), paid,
partially paid, open, overdue, voided and draft invoices, overpayments, payments without an invoice,
payments applied through line items (and through both `invoice_id` and line items at once), a payment
in another currency than its invoice, line items with tracking categories; customers and suppliers that the
invoices and payments name (one invoice names a contact the connection does not list), and bills (`ACCPAY`,
about one invoice in eight) from suppliers.

The contacts and who each invoice names are drawn from a generator of their own, after everything else: the
other records' ids, amounts and dates are what they were before contacts existed.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

SANDBOX_API_KEY = "sk_sandbox_7d1f6a40-52c4-4a5e-9a53-0f6a3c0f2b11"

# Minor-unit exponents for the currencies the sandbox uses; the sandbox has its own table on purpose
# (it must not share code with the client it serves).
CURRENCY_EXPONENT = {"USD": 2, "EUR": 2, "GBP": 2, "JPY": 0, "KWD": 3, "CAD": 2}


@dataclass(frozen=True)
class ConnectionSpec:
    """One linked accounting account in the sandbox."""

    alias: str
    provider: str
    currencies: tuple[str, ...]
    invoices: int
    payments: int


DEFAULT_CONNECTIONS: tuple[ConnectionSpec, ...] = (
    ConnectionSpec("acme-eu", "xero", ("EUR", "GBP"), invoices=60, payments=80),
    ConnectionSpec("acme-us", "quickbooks", ("USD", "CAD"), invoices=50, payments=70),
    ConnectionSpec("globex-jp", "netsuite", ("JPY", "KWD", "USD"), invoices=40, payments=50),
)

TRACKING_CATEGORIES = (
    ("Department", "Sales"),
    ("Department", "Engineering"),
    ("Department", "Marketing"),
    ("Region", "EMEA"),
    ("Region", "Americas"),
    ("Region", "APAC"),
)

PRODUCTS = (
    ("Consulting hours", 15_000),
    ("Software licence", 49_900),
    ("Support plan", 9_900),
    ("Training day", 120_000),
    ("Hardware kit", 32_500),
    ("Implementation fee", 250_000),
)

PAYMENT_TYPES = ("Bank transfer", "Credit Card", "Cheque", "ACH", "SEPA")

CUSTOMERS = (
    "Abernathy Logistics", "Brightwater Foods", "Cobalt Systems", "Dunmore & Sons", "Elmstead Clinics",
    "Fairhaven Retail", "Granite Peak Energy", "Harbourside Hotels", "Ironbridge Manufacturing",
    "Juniper Analytics", "Kestrel Aviation", "Larkspur Media",
)  # fmt: skip
SUPPLIERS = ("Northgate Office Supply", "Orion Cloud Hosting", "Pemberton Facilities", "Quayside Couriers")
BILL_SHARE = 8  # about one invoice in this many is a bill (ACCPAY) from a supplier


@dataclass
class SeedConnection:
    """The seeded records of one connection, in insertion order."""

    alias: str
    token: str
    provider: str
    tracking_categories: list[dict[str, Any]] = field(default_factory=list)
    invoices: list[dict[str, Any]] = field(default_factory=list)
    payments: list[dict[str, Any]] = field(default_factory=list)
    contacts: list[dict[str, Any]] = field(default_factory=list)


class _Ids:
    """Deterministic UUIDs and timestamps from one random generator."""

    def __init__(self, rng: random.Random, start: datetime) -> None:
        self.rng = rng
        self.clock = start

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def tick(self) -> str:
        self.clock += timedelta(seconds=self.rng.randint(1, 90))
        return iso(self.clock)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _scaled(minor_usd_like: int, currency: str) -> int:
    """Price in a currency's own minor units, roughly comparable in value across currencies."""
    exponent = CURRENCY_EXPONENT[currency]
    if currency == "JPY":
        return max(1, round(minor_usd_like * 1.5))  # 150 JPY per USD, 0 decimals: cents * 1.5
    if currency == "KWD":
        return max(1, round(minor_usd_like * 3.1))  # 0.31 KWD per USD, 3 decimals
    return minor_usd_like * 10 ** (exponent - 2)


def seed_connections(
    seed: int = 7,
    specs: tuple[ConnectionSpec, ...] = DEFAULT_CONNECTIONS,
    today: datetime | None = None,
) -> list[SeedConnection]:
    """Build the sandbox's connections with their records. Same seed, same data."""
    rng = random.Random(seed)
    today = today or datetime(2026, 11, 1, tzinfo=UTC)
    out: list[SeedConnection] = []
    for spec in specs:
        ids = _Ids(rng, today - timedelta(days=400))
        conn = SeedConnection(alias=spec.alias, token=ids.uuid(), provider=spec.provider)
        conn.tracking_categories = _tracking_categories(ids, spec)
        conn.invoices = [_invoice(ids, spec, conn, n, today) for n in range(spec.invoices)]
        conn.payments = _payments(ids, spec, conn, today)
        out.append(conn)
    for conn, spec in zip(out, specs, strict=True):
        _name_contacts(random.Random(f"{seed}-contacts-{spec.alias}"), spec, conn, today)
    return out


def _name_contacts(rng: random.Random, spec: ConnectionSpec, conn: SeedConnection, today: datetime) -> None:
    """The connection's customers and suppliers, and each invoice and payment naming one of them.

    A few customers hold most invoices (as debtors do); every BILL_SHARE-th invoice is a bill from a supplier;
    the last invoice names a contact the connection does not list; a payment names its invoice's contact, and
    one without an invoice a customer."""
    ids = _Ids(rng, today - timedelta(days=420))
    customers = [_contact(ids, spec, name, customer=True, currency=spec.currencies[0]) for name in CUSTOMERS]
    suppliers = [_contact(ids, spec, name, customer=False, currency=spec.currencies[0]) for name in SUPPLIERS]
    conn.contacts = customers + suppliers
    weights = [len(customers) - n for n in range(len(customers))]
    for n, invoice in enumerate(conn.invoices):
        if n % BILL_SHARE == BILL_SHARE - 1:
            invoice["type"] = "ACCPAY"
            invoice["contact_id"] = rng.choice(suppliers)["id"]
        else:
            invoice["contact_id"] = rng.choices(customers, weights)[0]["id"]
    conn.invoices[-1]["contact_id"] = ids.uuid()  # a contact the connection does not list
    by_invoice = {invoice["id"]: invoice["contact_id"] for invoice in conn.invoices}
    for payment in conn.payments:
        named = [payment["invoice_id"], *(line["related_object_id"] for line in payment["line_items"])]
        payment["contact_id"] = (
            next((by_invoice[i] for i in named if i in by_invoice), None) or (rng.choice(customers)["id"])
        )


def _contact(ids: _Ids, spec: ConnectionSpec, name: str, customer: bool, currency: str) -> dict[str, Any]:
    created = ids.tick()
    contact_id = ids.uuid()
    slug = name.lower().replace(" & ", "-").replace(" ", "-")
    return {
        "id": contact_id,
        "name": name,
        "is_supplier": not customer,
        "is_customer": customer,
        "email_address": f"accounts@{slug}.example",
        "tax_number": f"TX{ids.rng.randrange(10**8, 10**9)}",
        "status": "ACTIVE",
        "currency": currency,
        "remote_updated_at": created,
        "company_info_id": None,
        "field_mappings": {},
        "remote_id": f"{spec.provider}-ct-{contact_id[:8]}",
        "created_at": created,
        "modified_at": created,
    }


def _tracking_categories(ids: _Ids, spec: ConnectionSpec) -> list[dict[str, Any]]:
    cats: list[dict[str, Any]] = []
    parents: dict[str, str] = {}
    for kind, name in TRACKING_CATEGORIES:
        if kind not in parents:
            parent_id = ids.uuid()
            parents[kind] = parent_id
            cats.append(_category(ids, spec, parent_id, kind, None))
        cats.append(_category(ids, spec, ids.uuid(), name, parents[kind]))
    return cats


def _category(ids: _Ids, spec: ConnectionSpec, cat_id: str, name: str, parent: str | None) -> dict[str, Any]:
    created = ids.tick()
    return {
        "id": cat_id,
        "name": name,
        "status": "ACTIVE",
        "category_type": "Department" if parent is None else "Option",
        "parent_category": parent,
        "remote_id": f"{spec.provider}-tc-{cat_id[:8]}",
        "field_mappings": {},
        "created_at": created,
        "modified_at": created,
    }


def _invoice(ids: _Ids, spec: ConnectionSpec, conn: SeedConnection, n: int, today: datetime) -> dict[str, Any]:
    rng = ids.rng
    currency = spec.currencies[n % len(spec.currencies)]
    issue = today - timedelta(days=rng.randint(0, 200))
    due = issue + timedelta(days=rng.choice((14, 30, 30, 45, 60)))
    leaf_categories = [c["id"] for c in conn.tracking_categories if c["parent_category"]]
    created = ids.tick()
    lines = []
    for _ in range(rng.randint(1, 4)):
        name, price = rng.choice(PRODUCTS)
        unit_price = _scaled(price, currency)
        quantity = rng.randint(1, 5)
        lines.append(
            {
                "id": ids.uuid(),
                "description": name,
                "unit_price": unit_price,
                "quantity": quantity,
                "total_amount": unit_price * quantity,
                "currency": currency,
                "exchange_rate": "1.0",
                "id_acc_item": ids.uuid(),
                "acc_tracking_categories": rng.sample(leaf_categories, rng.randint(0, 2)),
                "remote_id": f"{spec.provider}-li-{ids.uuid()[:8]}",
                "created_at": created,
                "modified_at": created,
            }
        )
    sub_total = sum(line["total_amount"] for line in lines)
    tax = 0 if rng.random() < 0.3 else sub_total // 5
    discount = 0 if rng.random() < 0.8 else sub_total // 10
    total = sub_total + tax - discount
    roll = rng.random()
    status = "OPEN"
    if roll < 0.06:
        status = "VOID"
    elif roll < 0.1:
        status = "DRAFT"
    inv_id = ids.uuid()
    return {
        "id": inv_id,
        "remote_id": f"{spec.provider}-inv-{n:05d}",
        "type": "ACCREC",
        "number": f"{spec.alias.upper()}-INV-{n + 1:05d}",
        "issue_date": iso(issue),
        "due_date": iso(due),
        "paid_on_date": None,
        "memo": rng.choice((None, "Thank you for your business", "Net 30", "Quarterly services")),
        "currency": currency,
        "exchange_rate": rng.choice(("1.0", "1.0843", "0.8571", "1.2")),
        "total_discount": discount,
        "sub_total": sub_total,
        "status": status,
        "total_tax_amount": tax,
        "total_amount": total,
        "balance": total,
        "contact_id": ids.uuid(),
        "accounting_period_id": None,
        "tracking_categories": rng.sample(leaf_categories, rng.randint(0, 2)),
        "line_items": lines,
        "field_mappings": {},
        "remote_updated_at": iso(issue),
        "created_at": created,
        "modified_at": created,
    }


def _payments(ids: _Ids, spec: ConnectionSpec, conn: SeedConnection, today: datetime) -> list[dict[str, Any]]:
    """Payments against the connection's invoices, settling them to a mix of statuses."""
    rng = ids.rng
    payments: list[dict[str, Any]] = []
    # a quarter of the open invoices get no payment at all (unpaid, some overdue)
    payable = [inv for inv in conn.invoices if inv["status"] == "OPEN" and rng.random() < 0.75]
    leaf_categories = [c["id"] for c in conn.tracking_categories if c["parent_category"]]
    n = 0
    while len(payments) < spec.payments:
        style = rng.random()
        invoice = payable[n % len(payable)] if payable else None
        n += 1
        if invoice is None or style < 0.08:
            payments.append(
                _payment(
                    ids,
                    spec,
                    None,
                    _scaled(rng.randint(1_000, 90_000), spec.currencies[0]),
                    spec.currencies[0],
                    today,
                    leaf_categories,
                    applied_via="none",
                )
            )
            continue
        if invoice["balance"] <= 0 and style < 0.9:
            # already settled: a later payment on it is an overpayment, keep those rare
            continue
        if style < 0.55:
            amount = invoice["balance"]  # settles it
        elif style < 0.85:
            amount = max(1, invoice["balance"] // rng.choice((2, 3, 4)))  # partial payment
        else:
            amount = invoice["balance"] + max(1, invoice["total_amount"] // 10)  # overpayment
        currency = invoice["currency"]
        if style > 0.97 and len(spec.currencies) > 1:
            currency = next(c for c in spec.currencies if c != invoice["currency"])  # currency mismatch
        via = rng.choice(("invoice_id", "invoice_id", "line_items", "both"))
        payments.append(_payment(ids, spec, invoice, amount, currency, today, leaf_categories, applied_via=via))
        if style > 0.96 and len(payments) < spec.payments:
            # recorded twice: same invoice, amount and date under a new id (a likely duplicate)
            twin = _payment(ids, spec, invoice, amount, currency, today, leaf_categories, applied_via=via)
            twin["transaction_date"] = payments[-1]["transaction_date"]
            payments.append(twin)
        elif style < 0.1 and len(payments) < spec.payments:
            # applied to an invoice the accounting system no longer lists (not in the warehouse)
            orphan = _payment(ids, spec, None, max(1, amount // 2), currency, today, leaf_categories, "none")
            orphan["invoice_id"] = ids.uuid()
            payments.append(orphan)
        invoice["balance"] = invoice["balance"] - amount
        if invoice["balance"] <= 0:
            invoice["status"] = "PAID"
            invoice["paid_on_date"] = payments[-1]["transaction_date"]
        else:
            invoice["status"] = "PARTIALLY_PAID"
    for invoice in conn.invoices:
        invoice["balance"] = max(0, invoice["balance"]) if invoice["status"] != "VOID" else 0
    return payments


def _payment(
    ids: _Ids,
    spec: ConnectionSpec,
    invoice: dict[str, Any] | None,
    amount: int,
    currency: str,
    today: datetime,
    categories: list[str],
    applied_via: str,
) -> dict[str, Any]:
    rng = ids.rng
    created = ids.tick()
    when = today - timedelta(days=rng.randint(0, 150))
    pay_id = ids.uuid()
    lines: list[dict[str, Any]] = []
    if invoice is not None and applied_via in ("line_items", "both"):
        lines.append(
            {
                "id": ids.uuid(),
                "applied_amount": amount,
                "applied_date": iso(when),
                "related_object_id": invoice["id"],
                "related_object_type": "INVOICE",
                "remote_id": f"{spec.provider}-pl-{ids.uuid()[:8]}",
                "created_at": created,
                "modified_at": created,
            }
        )
    return {
        "id": pay_id,
        "remote_id": f"{spec.provider}-pay-{pay_id[:8]}",
        "invoice_id": invoice["id"] if invoice is not None and applied_via in ("invoice_id", "both") else None,
        "transaction_date": iso(when),
        "contact_id": invoice["contact_id"] if invoice else ids.uuid(),
        "account_id": ids.uuid(),
        "currency": currency,
        "exchange_rate": "1.0",
        "total_amount": amount,
        "type": rng.choice(PAYMENT_TYPES),
        "company_info_id": None,
        "accounting_period_id": None,
        "tracking_categories": rng.sample(categories, rng.randint(0, 1)),
        "line_items": lines,
        "field_mappings": {},
        "remote_updated_at": iso(when),
        "created_at": created,
        "modified_at": created,
    }
