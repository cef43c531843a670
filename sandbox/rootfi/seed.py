"""Seeded accounting data for the Rootfi sandbox, stored the way Rootfi serves it (as its documentation and
code describe it).

Money is in the currency's MAJOR units as JSON numbers (100.5), unlike Panora; records carry `rootfi_id`
(an integer, unique across companies), `rootfi_company_id`, `platform_id` (the accounting platform's id,
which other records use to refer to them: a payment's `invoice_id` is the invoice's `platform_id`),
`rootfi_created_at` / `rootfi_updated_at` / `rootfi_deleted_at`, `raw_data` and `data_hash`.

Per company: paid, partially paid, open, overdue, voided and draft invoices with line items (and their
tracking category ids), a zero-decimal currency, payments in full and in part, an overpayment, a payment
in another currency than its invoice, a likely duplicate and a payment on an invoice Rootfi does not have.
Many records share one `rootfi_updated_at` (a platform sync writes them in bulk), as the real API does.
Contacts (v3 `/accounting/contacts`: `name`, `contact_name`, `contact_type` CUSTOMER or VENDOR, `email`,
`tax_number`, `registration_number`, `status`, `currency_id`, `updated_at`) are the customers CUST-1 to
CUST-11 that invoices and payments name (CUST-12 is named but not listed) and a few vendors; they are made
after every other record, so those keep the ids and stamps they had before contacts existed.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

SANDBOX_API_KEY = "rootfi_sandbox_4b9e2c7a-1f3d-4e8b-a6c5-93d0e7f1a2b4"

# The sandbox's own exponent table (it shares no code with the client it serves).
EXPONENT = {"USD": 2, "EUR": 2, "GBP": 2, "JPY": 0, "CAD": 2}


@dataclass(frozen=True)
class CompanySpec:
    """One linked company in the sandbox: its alias for the pipeline's configuration, and its records."""

    alias: str
    company_id: int
    platform: str
    currencies: tuple[str, ...]
    invoices: int
    payments: int


DEFAULT_COMPANIES: tuple[CompanySpec, ...] = (
    CompanySpec("northwind-uk", 4101, "XERO", ("GBP", "EUR"), invoices=40, payments=50),
    CompanySpec("initech-us", 4102, "QUICKBOOKS", ("USD", "JPY"), invoices=30, payments=40),
)

PRODUCTS = (
    ("Consulting hours", Decimal("150.00")),
    ("Software licence", Decimal("499.00")),
    ("Support plan", Decimal("99.50")),
    ("Training day", Decimal("1200.00")),
    ("Implementation fee", Decimal("2500.00")),
)
CATEGORIES = (("Department", "Sales"), ("Department", "Engineering"), ("Region", "EMEA"), ("Region", "Americas"))
PAYMENT_MODES = ("BANK_TRANSFER", "CARD", "CHECK")
CUSTOMER_NAMES = (
    "Avalon Dental", "Birchwood Estates", "Calder Robotics", "Dovetail Joinery", "Everly Pharma",
    "Foxglove Studios", "Greyfriars Legal", "Hawthorn Bakeries", "Islington Tutors", "Jasper Freight",
    "Kingsley Opticians", "Linden Breweries",
)  # fmt: skip
UNLISTED_CUSTOMER = 12  # CUST-12 is named by invoices but Rootfi lists no such contact
VENDOR_NAMES = ("Marlow Stationers", "Nimbus Telecom", "Oakridge Cleaning")


@dataclass
class SeedCompany:
    alias: str
    company_id: int
    platform: str
    tracking_categories: list[dict[str, Any]] = field(default_factory=list)
    invoices: list[dict[str, Any]] = field(default_factory=list)
    invoice_payments: list[dict[str, Any]] = field(default_factory=list)
    contacts: list[dict[str, Any]] = field(default_factory=list)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def money(value: Decimal, currency: str) -> float | int:
    """A JSON number in major units, as Rootfi sends it (a whole JPY amount is an integer)."""
    value = value.quantize(Decimal(1).scaleb(-EXPONENT[currency]))
    return int(value) if EXPONENT[currency] == 0 else float(value)


def data_hash(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if not k.startswith("rootfi_") and k != "data_hash"}
    return hashlib.md5(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


class _Clock:
    """Rootfi ids and sync timestamps: records of one sync share their `rootfi_updated_at`."""

    def __init__(self, start: datetime) -> None:
        self.moment = start
        self.next_id = 70_000

    def rootfi_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def sync(self) -> str:
        self.moment += timedelta(minutes=37)
        return iso(self.moment)


def seed_companies(
    seed: int = 11, specs: tuple[CompanySpec, ...] = DEFAULT_COMPANIES, today: datetime | None = None
) -> list[SeedCompany]:
    """The sandbox's companies and their records. Same seed, same data."""
    rng = random.Random(seed)
    today = today or datetime(2026, 11, 1, tzinfo=UTC)
    clock = _Clock(today - timedelta(days=30))
    out = []
    for spec in specs:
        company = SeedCompany(spec.alias, spec.company_id, spec.platform)
        stamp = clock.sync()
        for number, (parent, name) in enumerate(CATEGORIES):
            company.tracking_categories.append(
                _record(
                    clock,
                    spec,
                    f"TC-{number + 1}",
                    stamp,
                    {"name": f"{parent}: {name}", "status": "ACTIVE", "parent_id": None},
                )
            )
        for n in range(spec.invoices):
            if n % 10 == 0:
                stamp = clock.sync()
            company.invoices.append(_invoice(rng, clock, spec, n, stamp, today))
        stamp = clock.sync()
        company.invoice_payments = _payments(rng, clock, spec, company.invoices, stamp)
        out.append(company)
    for company, spec in zip(out, specs, strict=True):
        company.contacts = _contacts(clock, spec)
    return out


def _contacts(clock: _Clock, spec: CompanySpec) -> list[dict[str, Any]]:
    stamp = clock.sync()
    roles = [("CUST", n, name, "CUSTOMER") for n, name in enumerate(CUSTOMER_NAMES, 1) if n != UNLISTED_CUSTOMER]
    roles += [("VEND", n, name, "VENDOR") for n, name in enumerate(VENDOR_NAMES, 1)]
    contacts = []
    for prefix, n, name, contact_type in roles:
        slug = name.lower().replace(" ", "-")
        body = {
            "name": name,
            "contact_name": f"Accounts, {name}",
            "contact_type": contact_type,
            "email": f"accounts@{slug}.example",
            "tax_number": f"GB{spec.company_id}{n:03d}",
            "registration_number": None,
            "status": "ACTIVE",
            "currency_id": spec.currencies[0],
            "updated_at": stamp,
        }
        contacts.append(_record(clock, spec, f"{prefix}-{n}", stamp, body))
    return contacts


def _record(clock: _Clock, spec: CompanySpec, platform_id: str, stamp: str, body: dict[str, Any]) -> dict[str, Any]:
    record = {
        "rootfi_id": clock.rootfi_id(),
        "rootfi_company_id": spec.company_id,
        "rootfi_created_at": stamp,
        "rootfi_updated_at": stamp,
        "rootfi_deleted_at": None,
        "platform_id": platform_id,
        "platform_unique_id": f"{spec.platform.lower()}-{platform_id}",
        **body,
        "raw_data": {"platform": spec.platform, "Id": platform_id},
    }
    record["data_hash"] = data_hash(record)
    return record


def _invoice(rng: random.Random, clock: _Clock, spec: CompanySpec, n: int, stamp: str, today: datetime) -> dict:
    currency = spec.currencies[n % len(spec.currencies)]
    posted = today - timedelta(days=rng.randint(5, 150))
    lines = []
    sub_total = Decimal(0)
    for index in range(rng.randint(1, 3)):
        product = rng.randrange(len(PRODUCTS))
        name, price = PRODUCTS[product]
        if currency == "JPY":
            price = price * 150
        quantity = Decimal(rng.choice(("1", "2", "3", "1.5")))
        total = (price * quantity).quantize(Decimal(1).scaleb(-EXPONENT[currency]))
        sub_total += total
        lines.append(
            {
                "rootfi_id": clock.rootfi_id(),
                "item_id": f"ITEM-{product + 1}",
                "account_id": "ACC-200",
                "tax_id": None,
                "description": name,
                "quantity": float(quantity),
                "unit_amount": money(price, currency),
                "sub_total": money(total, currency),
                "tax_amount": 0,
                "total_discount": 0,
                "total_amount": money(total, currency),
                "tracking_category_ids": [f"TC-{1 + (n + index) % len(CATEGORIES)}"] if index == 0 else [],
            }
        )
    tax = (sub_total * Decimal("0.2")).quantize(Decimal(1).scaleb(-EXPONENT[currency]))
    total = sub_total + tax
    kind = n % 8
    status, due = "AUTHORISED", total
    if kind in (0, 1, 2):
        status, due = "PAID", Decimal(0)
    elif kind == 3:
        status, due = "PARTIALLY_PAID", (total / 2).quantize(Decimal(1).scaleb(-EXPONENT[currency]))
    elif kind == 6 and n % 16 == 6:
        status, due = "VOIDED", Decimal(0)
    elif kind == 7 and n % 16 == 15:
        status = "DRAFT"
    body = {
        "document_number": f"{spec.alias[:2].upper()}-{1000 + n}",
        "contact_id": f"CUST-{rng.randint(1, 12)}",
        "currency_id": currency,
        "currency_rate": 1 if currency == spec.currencies[0] else round(rng.uniform(0.5, 1.5), 6),
        "posted_date": iso(posted),
        "due_date": iso(posted + timedelta(days=30)),
        "status": status,
        "sub_total": money(sub_total, currency),
        "tax_amount": money(tax, currency),
        "total_discount": 0,
        "total_amount": money(total, currency),
        "amount_due": money(due, currency),
        "memo": f"Invoice {n} for {spec.alias}",
        "updated_at": iso(posted + timedelta(days=1)),
        "line_items": lines,
    }
    return _record(clock, spec, f"INV-{spec.company_id}-{n:04d}", stamp, body)


def _payments(
    rng: random.Random, clock: _Clock, spec: CompanySpec, invoices: list[dict], stamp: str
) -> list[dict[str, Any]]:
    """Payments that settle what each invoice's status says, plus the exceptions the reports look for."""
    out: list[dict[str, Any]] = []
    customer_of = {invoice["platform_id"]: invoice["contact_id"] for invoice in invoices}

    def pay(invoice_id: str | None, currency: str, amount: float | int, when: str, **extra: Any) -> None:
        nonlocal stamp
        if out and len(out) % 10 == 0:
            stamp = clock.sync()
        drawn = f"CUST-{rng.randint(1, 12)}"  # drawn even when the invoice names the payer: the data stays as seeded
        body = {
            "invoice_id": invoice_id,
            "account_id": "ACC-090",
            "contact_id": customer_of.get(invoice_id or "", drawn),
            "credit_note_id": None,
            "currency_id": currency,
            "amount": amount,
            "payment_date": when,
            "payment_mode": rng.choice(PAYMENT_MODES),
            "document_number": f"RCPT-{spec.company_id}-{len(out):04d}",
            "memo": None,
            "currency_rate": "1.0",
            "updated_at": when,
            "custom_fields": [],
            **extra,
        }
        out.append(_record(clock, spec, f"PMT-{spec.company_id}-{len(out):04d}", stamp, body))

    for invoice in invoices:
        currency = invoice["currency_id"]
        total = Decimal(str(invoice["total_amount"]))
        due = Decimal(str(invoice["amount_due"]))
        paid = total - due
        if invoice["status"] in ("PAID", "PARTIALLY_PAID") and paid > 0:
            pay(invoice["platform_id"], currency, money(paid, currency), invoice["due_date"])
        if len(out) >= spec.payments - 4:
            break
    first = invoices[0]
    # an overpayment on an open invoice, a payment in another currency, a likely duplicate, an orphan
    open_invoice = next(i for i in invoices if i["status"] == "AUTHORISED")
    over = Decimal(str(open_invoice["total_amount"])) + Decimal(10)
    pay(open_invoice["platform_id"], open_invoice["currency_id"], money(over, open_invoice["currency_id"]),
        open_invoice["due_date"])  # fmt: skip
    other = next(c for c in spec.currencies if c != first["currency_id"])
    pay(first["platform_id"], other, money(Decimal("12.00") * (150 if other == "JPY" else 1), other), first["due_date"])
    dup = out[1]
    pay(dup["invoice_id"], dup["currency_id"], dup["amount"], dup["payment_date"])
    pay(f"INV-{spec.company_id}-9999", first["currency_id"], money(Decimal("75.25"), first["currency_id"]),
        first["due_date"])  # fmt: skip
    return out
