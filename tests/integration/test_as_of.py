"""The books as of a date: invoices and payments dated after it, loaded later, leave its figures as they were."""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

from pipelines.transform import transform_database
from tests.support import DATASET, Warehouse

AS_OF = date(2026, 11, 15)  # after every seeded record (the sandbox's records end on 2026-11-01)
LATER = "2026-11-20T10:00:00.000Z"
MODELS = f"{DATASET}_reconciliation"

# what a finance person reads, model by model: the columns compared
FIGURES = {
    "accounting__reconciliation_summary": "*",
    "accounting__receivables_aging": "*",
    "accounting__receivables_aging_by_customer": "*",
    "accounting__top_debtors": "*",
    "accounting__balance_mismatches": "*",
    "accounting__overpaid_invoices": "*",
    "accounting__awaiting_sync": "*",
    "accounting__duplicate_payments": "*",
    "accounting__currency_mismatches": "*",
    "accounting__unapplied_payments": "payment_id, reason, total_amount, missing_invoice_ids, candidate_invoices",
    "accounting__invoice_settlement": "invoice_id, status, applied_amount, expected_balance, reported_balance, "
    "open_amount",
}


def figures(warehouse: Warehouse) -> dict[str, list[tuple[Any, ...]]]:
    return {
        model: sorted(warehouse.query(f"SELECT {columns} FROM {MODELS}.{model}"), key=repr)
        for model, columns in FIGURES.items()
    }


def later_payment(template: dict[str, Any], invoice: dict[str, Any], amount: int) -> dict[str, Any]:
    payment = copy.deepcopy(template)
    for key in ("id", "created_at", "modified_at"):
        payment.pop(key)
    payment.update(
        invoice_id=invoice["id"], total_amount=amount, currency=invoice["currency"], transaction_date=LATER,
        contact_id=invoice["contact_id"], line_items=[], remote_id=None,
    )  # fmt: skip
    return payment


def test_an_earlier_as_of_date_gives_the_figures_that_day_gave(warehouse: Warehouse, sandbox) -> None:
    """Load and build as of a day; then upstream, after that day, a new invoice is issued, one invoice is paid
    in full (its balance drops to 0, which Panora leaves out, and it is PAID) and another in part. A second load
    built as of the same day gives exactly the first build's figures; built as of a later day, the new records
    count."""
    first = warehouse.load(transform=True, as_of=AS_OF)
    assert first.models and first.models_error is None
    before = figures(warehouse)

    store = sandbox.store
    invoices = store.all("acme-eu", "invoices")
    open_receivables = [
        i for i in invoices if i["type"] == "ACCREC" and i["status"] == "OPEN" and i["balance"] == i["total_amount"]
    ]
    paid, part = open_receivables[:2]
    template = store.all("acme-eu", "payments")[0]
    store.insert("acme-eu", "payments", later_payment(template, paid, paid["balance"]))
    store.update("acme-eu", "invoices", paid["id"], balance=0, status="PAID", paid_on_date=LATER)
    store.insert("acme-eu", "payments", later_payment(template, part, part["balance"] // 2))
    store.update("acme-eu", "invoices", part["id"], balance=part["balance"] - part["balance"] // 2,
                 status="PARTIALLY_PAID")  # fmt: skip
    new = copy.deepcopy(paid)
    for key in ("id", "created_at", "modified_at"):
        new.pop(key)
    new.update(number="ACME-EU-INV-LATER", issue_date=LATER, due_date=LATER, remote_id=None)
    new_id = store.insert("acme-eu", "invoices", new)["id"]

    summary = warehouse.load(transform=True, as_of=AS_OF)
    assert summary.models and summary.models_error is None and summary.rows_per_table["payments"] == 2
    after = figures(warehouse)
    for model in FIGURES:
        assert after[model] == before[model], model
    rebuilt = warehouse.query(
        f"SELECT invoice_id FROM {MODELS}.accounting__invoice_settlement WHERE balance_rebuilt ORDER BY 1"
    )
    assert rebuilt == sorted([(paid["id"],), (part["id"],)])

    later = transform_database(str(warehouse.path), DATASET, as_of=date(2026, 11, 30))
    assert later.error is None
    statuses = dict(
        warehouse.query(
            f"SELECT invoice_id, status FROM {MODELS}.accounting__invoice_settlement WHERE invoice_id IN (?, ?, ?)",
            paid["id"], part["id"], new_id,
        )
    )  # fmt: skip
    assert statuses == {paid["id"]: "settled", part["id"]: "partially_paid", new_id: "unpaid"}
