"""Seeded accounting data for the Merge sandbox, in the shapes of Merge's Accounting API (v1).

Stored as Merge serves them: Merge UUIDs, ISO 8601 date-times (`2026-03-31T00:00:00Z`), money in major units
as JSON numbers (`total_amount`, `balance`, `unit_price`) and as decimal text where Merge types it so
(`applied_amount`, `exchange_rate`), related objects by id (the server expands them on request).

What the seed covers, per linked account: several currencies with 0, 2 and 3 decimals (USD, EUR, JPY, KWD);
paid, partially paid, open, draft and voided invoices; bills (`ACCOUNTS_PAYABLE`) from suppliers beside them;
payments applied to one invoice, to several at once, to a credit note, or to nothing; a payment in another
currency than its invoice; customers and suppliers the records name; tracking categories on invoices, lines
and payments.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

SANDBOX_API_KEY = "merge_sandbox_3f0c2b8e6a914d57b1e0c4a9d2f7e813"

# The sandbox's own table of decimals per currency (it shares no code with the client it serves).
DECIMALS = {"USD": 2, "EUR": 2, "JPY": 0, "KWD": 3}


@dataclass(frozen=True)
class AccountSpec:
    """One linked account (one company in one accounting system behind Merge)."""

    alias: str
    integration: str
    currencies: tuple[str, ...]
    invoices: int
    payments: int


DEFAULT_ACCOUNTS: tuple[AccountSpec, ...] = (
    AccountSpec("soylent-us", "quickbooks-online", ("USD", "EUR"), invoices=45, payments=50),
    AccountSpec("umbrella-kw", "xero", ("KWD", "EUR"), invoices=30, payments=35),
    AccountSpec("hooli-jp", "netsuite", ("JPY", "USD"), invoices=30, payments=30),
)

CUSTOMERS = ("Aldgate Partners", "Birchwood Labs", "Copperline Freight", "Delmar Studios", "Everly Health",
             "Foxglove Retail", "Greyhaven Capital", "Hollis & Tate")  # fmt: skip
SUPPLIERS = ("Ivory Tower Cloud", "Jetstream Couriers", "Keystone Facilities")
CATEGORIES = (("Department", ("Sales", "Services")), ("Region", ("North", "South")))
PRODUCTS = (("Advisory retainer", 1200), ("Platform seats", 49), ("Onboarding package", 850), ("Audit day", 1500))
BILL_SHARE = 6  # about one invoice in this many is a bill from a supplier


@dataclass
class SeedAccount:
    alias: str
    token: str
    integration: str
    company: str
    contacts: list[dict[str, Any]] = field(default_factory=list)
    tracking_categories: list[dict[str, Any]] = field(default_factory=list)
    invoices: list[dict[str, Any]] = field(default_factory=list)
    payments: list[dict[str, Any]] = field(default_factory=list)


def iso(moment: datetime) -> str:
    """Merge's date-times: UTC with a `Z`, microseconds when there are any."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def day(moment: datetime) -> str:
    """A date as Merge sends one: the day's midnight, UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT00:00:00Z")


def money(amount: Decimal, currency: str) -> float | int:
    """An amount in major units as a JSON number, with the currency's decimals."""
    value = amount.quantize(Decimal(1).scaleb(-DECIMALS[currency]))
    return int(value) if DECIMALS[currency] == 0 else float(value)


def decimal_text(amount: Decimal, currency: str) -> str:
    return str(amount.quantize(Decimal(1).scaleb(-DECIMALS[currency])))


class _Ids:
    def __init__(self, rng: random.Random, start: datetime) -> None:
        self.rng = rng
        self.clock = start

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def tick(self) -> datetime:
        self.clock += timedelta(seconds=self.rng.randint(5, 600))
        return self.clock


def seed_accounts(
    seed: int = 13, specs: tuple[AccountSpec, ...] = DEFAULT_ACCOUNTS, today: datetime | None = None
) -> list[SeedAccount]:
    """The sandbox's linked accounts with their records. Same seed, same data."""
    rng = random.Random(seed)
    today = today or datetime(2026, 11, 1, tzinfo=UTC)
    accounts = []
    for spec in specs:
        ids = _Ids(rng, today - timedelta(days=300))
        account = SeedAccount(spec.alias, f"acct_{ids.uuid().replace('-', '')}", spec.integration, ids.uuid())
        account.contacts = [_contact(ids, account, spec, n, name, True) for n, name in enumerate(CUSTOMERS)]
        account.contacts += [_contact(ids, account, spec, n, name, False) for n, name in enumerate(SUPPLIERS)]
        account.tracking_categories = _categories(ids, account)
        account.invoices = [_invoice(ids, account, spec, n, today) for n in range(spec.invoices)]
        account.payments = _payments(ids, account, spec, today)
        accounts.append(account)
    return accounts


def _common(ids: _Ids, remote_id: str) -> dict[str, Any]:
    created = iso(ids.tick())
    return {"id": ids.uuid(), "remote_id": remote_id, "created_at": created, "modified_at": created,
            "remote_was_deleted": False, "field_mappings": None, "remote_data": None}  # fmt: skip


def _contact(ids: _Ids, account: SeedAccount, spec: AccountSpec, n: int, name: str, customer: bool) -> dict[str, Any]:
    slug = name.lower().replace(" & ", "-").replace(" ", "-")
    record = _common(ids, f"{'C' if customer else 'S'}{n + 1:03d}")
    record.update(
        contact_url=None, name=name, is_supplier=not customer, is_customer=customer,
        email_address=f"ar@{slug}.example", tax_number=f"{spec.alias[:2].upper()}{ids.rng.randrange(10**7, 10**8)}",
        status="ACTIVE", currency=spec.currencies[0], remote_updated_at=record["created_at"], company=account.company,
        addresses=[], phone_numbers=[],
    )  # fmt: skip
    return record


def _categories(ids: _Ids, account: SeedAccount) -> list[dict[str, Any]]:
    out = []
    for kind, names in CATEGORIES:
        parent = _category_base(ids, f"TC-{kind}")
        parent.update(name=kind, status="ACTIVE", category_type="CLASS", parent_category=None,
                      company=account.company, tracking_category_url=None)  # fmt: skip
        out.append(parent)
        for name in names:
            child = _category_base(ids, f"TC-{kind}-{name}")
            child.update(name=name, status="ACTIVE", category_type="CLASS", parent_category=parent["id"],
                         company=account.company, tracking_category_url=None)  # fmt: skip
            out.append(child)
    return out


def _category_base(ids: _Ids, remote_id: str) -> dict[str, Any]:
    record = _common(ids, remote_id)
    record.pop("remote_data")  # Merge's tracking categories carry none
    return record


def _invoice(ids: _Ids, account: SeedAccount, spec: AccountSpec, n: int, today: datetime) -> dict[str, Any]:
    rng = ids.rng
    bill = n % BILL_SHARE == BILL_SHARE - 1
    currency = spec.currencies[0] if rng.random() < 0.7 else rng.choice(spec.currencies)
    issued = today - timedelta(days=rng.randint(5, 240))
    customers = [c for c in account.contacts if c["is_customer"]]
    suppliers = [c for c in account.contacts if c["is_supplier"]]
    leaves = [c for c in account.tracking_categories if c["parent_category"]]
    lines, total = [], Decimal(0)
    for index in range(rng.randint(1, 3)):
        description, base = rng.choice(PRODUCTS)
        price = _price(Decimal(base), currency, rng)
        quantity = rng.randint(1, 5)
        amount = price * quantity
        total += amount
        line = _common(ids, f"L{n + 1}-{index + 1}")
        for key in ("remote_data",):
            line.pop(key)
        line.update(
            description=description, unit_price=money(price, currency), quantity=quantity,
            total_amount=money(amount, currency), employee=None, project=None, contact=None, currency=currency,
            exchange_rate=None, item=ids.uuid(), account=ids.uuid(), tax_rate=None, tracking_category=None,
            tracking_categories=[rng.choice(leaves)["id"]], company=account.company, is_billable=False,
        )  # fmt: skip
        lines.append(line)
    record = _common(ids, f"{'BILL' if bill else 'INV'}-{n + 1:04d}")
    record.update(
        invoice_url=None,
        type="ACCOUNTS_PAYABLE" if bill else "ACCOUNTS_RECEIVABLE",
        contact=rng.choice(suppliers if bill else customers)["id"],
        number=f"{spec.alias[:3].upper()}-{'B' if bill else 'I'}{n + 1:04d}",
        issue_date=day(issued),
        due_date=day(issued + timedelta(days=30)),
        paid_on_date=None,
        memo=None,
        company=account.company,
        employee=None,
        currency=currency,
        exchange_rate="1.0" if currency == spec.currencies[0] else str(round(Decimal(rng.uniform(0.5, 1.5)), 6)),
        payment_term=None,
        total_discount=None,
        sub_total=money(total, currency),
        status="DRAFT" if n % 17 == 16 else ("VOID" if n % 13 == 12 else "OPEN"),
        total_tax_amount=money(Decimal(0), currency),
        total_amount=money(total, currency),
        balance=money(total, currency),
        remote_updated_at=record["created_at"],
        tracking_categories=[rng.choice(leaves)["id"]],
        accounting_period=None,
        purchase_orders=[],
        sales_orders=[],
        payments=[],
        applied_payments=[],
        line_items=lines,
        applied_credit_notes=[],
        applied_vendor_credits=[],
        inclusive_of_tax=False,
    )
    return record


def _price(base: Decimal, currency: str, rng: random.Random) -> Decimal:
    """A unit price near `base` dollars, in the currency's own decimals (KWD with three)."""
    rate = {"USD": Decimal(1), "EUR": Decimal("0.92"), "JPY": Decimal(150), "KWD": Decimal("0.307")}[currency]
    cents = Decimal(rng.randint(0, 99)) / 100
    return ((base + cents) * rate).quantize(Decimal(1).scaleb(-DECIMALS[currency]))


def _payments(ids: _Ids, account: SeedAccount, spec: AccountSpec, today: datetime) -> list[dict[str, Any]]:
    """Payments against the open receivables: in full, in part, across several invoices at once, in another
    currency, to a credit note, or applied to nothing; each invoice's balance and status follow."""
    rng = ids.rng
    open_ones = [i for i in account.invoices if i["type"] == "ACCOUNTS_RECEIVABLE" and i["status"] == "OPEN"]
    out = []
    for n in range(spec.payments):
        targets: list[dict[str, Any]] = []
        shape = n % 10
        if shape < 6 and open_ones:
            targets = [open_ones.pop(0)]
        elif shape < 8 and len(open_ones) >= 2:
            targets = [open_ones.pop(0), open_ones.pop(0)]
            if targets[0]["currency"] != targets[1]["currency"]:
                open_ones.insert(0, targets.pop())
        currency = targets[0]["currency"] if targets else spec.currencies[0]
        if shape == 8 and targets:
            currency = next((c for c in spec.currencies if c != currency), currency)  # another currency
        paid_on = today - timedelta(days=rng.randint(1, 120))
        lines, total = [], Decimal(0)
        for target in targets:
            balance = Decimal(str(target["balance"]))
            applied = balance if rng.random() < 0.65 else (balance / 2).quantize(
                Decimal(1).scaleb(-DECIMALS[target["currency"]]))  # fmt: skip
            line = _common(ids, f"PL{n + 1}-{len(lines) + 1}")
            for key in ("remote_was_deleted", "field_mappings", "remote_data"):
                line.pop(key)
            line.update(applied_amount=decimal_text(applied, currency), applied_date=day(paid_on),
                        related_object_id=target["id"], related_object_type="INVOICE")  # fmt: skip
            lines.append(line)
            total += applied
            if currency == target["currency"]:
                left = balance - applied
                target["balance"] = money(left, target["currency"])
                target["status"] = "PAID" if left == 0 else "PARTIALLY_PAID"
                if left == 0:
                    target["paid_on_date"] = day(paid_on)
        if not targets:
            total = _price(Decimal(rng.choice(PRODUCTS)[1]), currency, rng)
            if shape == 9:  # applied to a credit note, not an invoice
                line = _common(ids, f"PL{n + 1}-1")
                for key in ("remote_was_deleted", "field_mappings", "remote_data"):
                    line.pop(key)
                line.update(applied_amount=decimal_text(total, currency), applied_date=day(paid_on),
                            related_object_id=ids.uuid(), related_object_type="CREDIT_NOTE")  # fmt: skip
                lines.append(line)
        record = _common(ids, f"PMT-{n + 1:04d}")
        contact = next((t["contact"] for t in targets), None) or rng.choice(
            [c for c in account.contacts if c["is_customer"]])["id"]  # fmt: skip
        record.update(
            payment_url=None, transaction_date=day(paid_on), contact=contact, account=ids.uuid(),
            payment_method=None, currency=currency, exchange_rate="1.0", company=account.company,
            total_amount=money(total, currency), type="ACCOUNTS_RECEIVABLE",
            tracking_categories=[], accounting_period=None, applied_to_lines=lines,
            remote_updated_at=record["created_at"],
        )  # fmt: skip
        for target in targets:
            target["payments"].append(record["id"])
        out.append(record)
    return out
