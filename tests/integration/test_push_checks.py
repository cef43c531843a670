"""Push checks what a server says before it believes it: a 201 that describes another record, a record another
row has or the warehouse held before the send, a lookup's record that carries another external id, and a
loaded record that is not what was sent (over HTTP to the Panora sandbox)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import duckdb
import pytest

from sandbox.panora import Fault
from tests.support import DATASET, created_in_api, ledger, open_invoices, push, queue


@pytest.fixture
def loaded(warehouse, loaded_warehouses):
    return loaded_warehouses.copy_into(warehouse, "panora")


def _row(external_id: str, connection: str, invoice_id: str, currency: str, amount: int = 100) -> dict:
    return {"external_id": external_id, "connection": connection, "invoice_id": invoice_id, "currency": currency,
            "total_amount": amount, "transaction_date": "2026-11-20"}  # fmt: skip


def _answer_with(sandbox, record: dict, times: int = 1) -> None:
    """The next POST of a payment is answered 201 with `record`, and not applied (a gateway's cached answer)."""
    body = json.dumps(record)
    sandbox.inject(Fault("body", status=201, method="POST", path="/accounting/payments", body=body, times=times))


def test_a_201_describing_another_invoices_payment_is_never_booked_as_created(loaded, sandbox):
    (connection, invoice_id, currency, _), *_ = open_invoices(loaded, 1)
    other = next(p for p in sandbox.store.all(connection, "payments") if p.get("invoice_id") != invoice_id)
    queue(loaded, [_row("bank-1", connection, invoice_id, currency)])
    _answer_with(sandbox, other)
    summary = push(loaded)
    assert summary.outcomes == {"created": 1}  # looked up, not found, sent again: created for real
    _, record_id, _ = ledger(loaded)["bank-1"]
    assert record_id != other["id"]
    assert created_in_api(sandbox, "bank-1") == 1
    attempts = loaded.query(f"SELECT status, message FROM {DATASET}.push_attempts WHERE external_id = 'bank-1' "
                            "ORDER BY happened_at")  # fmt: skip
    assert any(s == "unknown" and "describes another record" in (e or "") for s, e in attempts)


def test_a_201_naming_another_rows_record_or_one_loaded_before_is_not_claimed(loaded, sandbox):
    (connection, invoice_id, currency, _), *_ = open_invoices(loaded, 1)
    queue(loaded, [_row("first", connection, invoice_id, currency)])
    assert push(loaded).outcomes == {"created": 1}
    first_id = ledger(loaded)["first"][1]
    mine = next(p for p in sandbox.store.all(connection, "payments") if p["id"] == first_id)
    # the same content, without the external id (a gateway that strips field_mappings): only the claim tells
    queue(loaded, [_row("second", connection, invoice_id, currency)])
    _answer_with(sandbox, {k: v for k, v in mine.items() if k != "field_mappings"})
    assert push(loaded).outcomes == {"created": 1}
    assert ledger(loaded)["second"][1] not in (None, first_id)
    # a payment the warehouse held before this row was sent, with the row's content
    stored = next(p for p in sandbox.store.all(connection, "payments") if p.get("invoice_id") and p.get("total_amount"))
    stored_date = str(stored.get("transaction_date") or "")[:10] or "2026-11-20"
    row = _row("third", connection, stored["invoice_id"], str(stored["currency"]), stored["total_amount"])
    queue(loaded, [{**row, "transaction_date": stored_date, "overpayment_intended": True}])
    _answer_with(sandbox, {k: v for k, v in stored.items() if k != "field_mappings"})
    assert push(loaded).outcomes == {"created": 1}
    assert ledger(loaded)["third"][1] != stored["id"]
    assert created_in_api(sandbox, "third") == 1


def _stopped_after_intent(loaded, external_id: str, connection: str) -> None:
    """The ledger as a push killed after writing its intent leaves it."""
    now = datetime.now(UTC)
    with duckdb.connect(str(loaded.path)) as con:
        con.execute(
            f"INSERT INTO {DATASET}.push_log (external_id, kind, connection, status, attempts, first_attempt_at, "
            "last_attempt_at, updated_at) VALUES (?, 'payment', ?, 'pending', 1, ?, ?, ?)",
            [external_id, connection, now - timedelta(seconds=5), now - timedelta(seconds=5), now],
        )


def test_a_lookup_never_takes_a_record_marked_with_another_external_id(loaded, sandbox):
    (connection, invoice_id, currency, _), *_ = open_invoices(loaded, 1)
    queue(loaded, [_row("crashed", connection, invoice_id, currency)])
    _stopped_after_intent(loaded, "crashed", connection)
    # what another system created meanwhile, with the same content, marked with its own external id
    theirs = sandbox.store.insert(connection, "payments", {
        "invoice_id": invoice_id, "total_amount": 100, "currency": currency,
        "transaction_date": "2026-11-20T00:00:00Z", "field_mappings": {"external_id": "someone-else"},
        "line_items": [], "tracking_categories": [],
    })  # fmt: skip
    assert push(loaded).outcomes == {"created": 1}  # not found: sent (resend_unknown_after is 0 here)
    assert ledger(loaded)["crashed"][1] != theirs["id"]
    assert created_in_api(sandbox, "crashed") == 1


def test_a_record_with_the_rows_external_id_that_differs_is_never_taken_nor_sent_past(loaded, sandbox):
    (connection, invoice_id, currency, _), *_ = open_invoices(loaded, 1)
    queue(loaded, [_row("changed", connection, invoice_id, currency)])
    _stopped_after_intent(loaded, "changed", connection)
    sandbox.store.insert(connection, "payments", {
        "invoice_id": invoice_id, "total_amount": 999, "currency": currency,
        "transaction_date": "2026-11-20T00:00:00Z", "field_mappings": {"external_id": "changed"},
        "line_items": [], "tracking_categories": [],
    })  # fmt: skip
    summary = push(loaded)
    assert summary.outcomes == {"unknown": 1}
    _, record_id, error = ledger(loaded)["changed"]
    assert record_id is None and "needs a person" in error and "total_amount 999 (sent 100)" in error
    assert sandbox.stats.snapshot()["requests"].get("POST /accounting/payments", 0) == 0


def test_confirmation_after_a_load_compares_content_not_only_the_id(loaded, sandbox):
    (connection, invoice_id, currency, _), (c2, id2, cur2, _) = open_invoices(loaded, 2)
    queue(loaded, [_row("kept", connection, invoice_id, currency), _row("altered", c2, id2, cur2)])
    assert push(loaded).outcomes == {"created": 2}
    altered = ledger(loaded)["altered"][1]
    sandbox.store.update(c2, "payments", altered, total_amount=12345)
    loaded.load()
    push(loaded)
    states = ledger(loaded)
    assert states["kept"][0] == "confirmed"
    assert states["altered"][0] == "unknown" and "12345" in states["altered"][2]
