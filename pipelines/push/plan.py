"""Which queued rows push may send: each row checked against the loaded data before anything leaves. The reasons
are the ledger's `rejected` errors and the plan's (`push_plan`); nothing here depends on the provider."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pipelines.settings import models_schema
from sources.common.currencies import CurrencyError, minor_unit_exponent

# statuses of loaded invoices that take no payment (the sources speak the unified vocabulary)
CLOSED_INVOICE_STATUSES = ("VOID", "DRAFT")

Invoices = dict[tuple[str, str], dict[str, Any]]


def loaded_invoices(con: Any, raw: str) -> Invoices:
    """(connection, invoice id) -> currency, status, open balance in minor units (from the models when built),
    deleted, number."""
    tables = {
        r[0] for r in con.execute("SELECT table_schema || '.' || table_name FROM information_schema.tables").fetchall()
    }
    if f"{raw}.invoices" not in tables:
        return {}
    settlement = f"{models_schema(raw)}.accounting__invoice_settlement"
    if settlement in tables:
        rows = con.execute(
            f"SELECT connection, invoice_id, currency, source_status, open_minor, FALSE, number FROM {settlement}"
        ).fetchall()
        deleted = con.execute(
            f"SELECT connection, id, number FROM {raw}.invoices WHERE deleted_at IS NOT NULL"
        ).fetchall()
        rows += [(c, i, None, None, None, True, n) for c, i, n in deleted]
    else:
        rows = con.execute(
            f"SELECT connection, id, upper(currency), upper(status), coalesce(balance, 0), deleted_at IS NOT NULL, "
            f"number FROM {raw}.invoices"
        ).fetchall()
    return {
        (c, i): {"currency": cur, "status": st, "open": open_, "deleted": d, "number": n}
        for c, i, cur, st, open_, d, n in rows
    }


def _queued_row_problem(row: dict[str, Any], accounts: Mapping[str, str]) -> str | None:
    """What every queued row needs, payment or invoice: an external id, a configured connection, a positive
    whole amount in minor units and an ISO 4217 currency that has a minor unit."""
    if not row.get("external_id"):
        return "external_id is missing"
    if not row.get("connection"):
        return "connection is missing"
    if row["connection"] not in accounts:
        return f"unknown connection {row['connection']!r} (configured: {', '.join(sorted(accounts))})"
    amount = row.get("total_amount")
    if amount is None or isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        return f"total_amount must be a positive whole number of minor units, got {amount!r}"
    try:
        minor_unit_exponent(row.get("currency"))
    except CurrencyError as exc:
        return f"currency: {exc}"
    return None


def validate_payment(
    row: dict[str, Any], accounts: Mapping[str, str], invoices: Invoices, committed: dict
) -> str | None:
    """The reason a queued payment must not be sent, or None. `committed` holds what earlier rows of this
    run already take from each invoice's open balance."""
    problem = _queued_row_problem(row, accounts)
    if problem:
        return problem
    amount = row["total_amount"]
    currency = row["currency"].upper()
    if not row.get("invoice_id"):
        return "invoice_id is missing"
    invoice = invoices.get((row["connection"], row["invoice_id"]))
    if invoice is None:
        return f"invoice {row['invoice_id']} is not among the loaded invoices of {row['connection']} (load first)"
    if invoice["deleted"]:
        return f"invoice {row['invoice_id']} was deleted upstream"
    if invoice["status"] in CLOSED_INVOICE_STATUSES:
        return f"invoice {row['invoice_id']} is {invoice['status'].lower()}"
    if invoice["currency"] != currency:
        return f"currency {currency} differs from the invoice's {invoice['currency']}"
    key = (row["connection"], row["invoice_id"])
    open_left = (invoice["open"] or 0) - committed.get(key, 0)
    if amount > open_left and not row.get("overpayment_intended"):
        return (
            f"total_amount {amount} exceeds the invoice's open balance {open_left} (minor units); "
            "set overpayment_intended to send it anyway"
        )
    committed[key] = committed.get(key, 0) + amount
    return None


def validate_invoice(
    row: dict[str, Any], accounts: Mapping[str, str], invoices: Invoices, committed: dict
) -> str | None:
    """The reason a queued invoice must not be sent, or None."""
    problem = _queued_row_problem(row, accounts)
    if problem:
        return problem
    if row.get("line_items"):
        try:
            lines = json.loads(row["line_items"])
        except (TypeError, ValueError):
            return "line_items is not valid JSON"
        if not isinstance(lines, list) or not all(isinstance(line, dict) for line in lines):
            return "line_items must be a JSON array of objects"
    number = row.get("number")
    if number and number in committed.setdefault(("numbers", row["connection"]), set()):
        return f"invoice number {number} is queued twice"
    if number and any(v.get("number") == number for (c, _), v in invoices.items() if c == row["connection"]):
        return f"an invoice numbered {number} is already loaded for {row['connection']}"
    if number:
        committed[("numbers", row["connection"])].add(number)
    return None


@dataclass(frozen=True)
class Kind:
    """One kind of record push creates: its queue, the loaded table that confirms it, and its checks."""

    name: str  # the ledger's `kind`, and what a provider says it `pushes`
    queue: str  # the outbound table
    loaded_table: str  # where a later load brings the created record in
    validate: Callable[[dict[str, Any], Mapping[str, str], Invoices, dict], str | None]


KINDS = (
    Kind("invoice", "outbound_invoices", "invoices", validate_invoice),
    Kind("payment", "outbound_payments", "payments", validate_payment),
)
