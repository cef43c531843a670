"""Pushing payments to Merge linked accounts through `POST /payments`, over HTTP against the Merge sandbox:
each payment created exactly once whatever the network does, with the same `Idempotency-Key` on every send
of a row; a 201 with errors is a refusal; an answer is checked against the row before it is believed."""

from __future__ import annotations

import json
import signal
import time
from dataclasses import asdict, replace
from decimal import Decimal
from typing import Any

import duckdb
import httpx
import pytest

from pipelines.push import ProviderAccess, PushSettings, SendRules, run_push
from sandbox.http import Fault
from sandbox.merge import MergeSandbox
from sources.merge.writer import idempotency_key
from tests.support import (
    DATASET,
    PUSH_RETRIES,
    QUICK_JOBS,
    Warehouse,
    cli_env,
    kill_when,
    ledger,
    queue,
    stopped_ledger,
)

POST = "/api/accounting/v1/payments"


@pytest.fixture
def loaded(warehouse: Warehouse, merge: MergeSandbox) -> Warehouse:
    assert warehouse.load_from("merge", merge).status == "ok"
    return warehouse


def push_merge(warehouse: Warehouse, merge: MergeSandbox, **options: Any):
    rules = SendRules(**{**asdict(QUICK_JOBS), **{k: options.pop(k) for k in list(options)
                                                   if k in SendRules.__dataclass_fields__}})  # fmt: skip
    settings = PushSettings(database=str(warehouse.path), policy=PUSH_RETRIES,
                            providers={"merge": ProviderAccess(merge.api_key, merge.accounts(), merge.url)},
                            rules=rules)  # fmt: skip
    return run_push(replace(settings, **options))


def queue_open(warehouse: Warehouse, n: int, prefix: str = "mg") -> list[dict[str, Any]]:
    """n payments on open Merge receivables (one per invoice, part of its open balance), in their currencies."""
    invoices = warehouse.query(
        f"SELECT connection, id, currency, balance FROM {DATASET}.invoices WHERE provider = 'merge' "
        "AND kind = 'receivable' AND status IN ('OPEN', 'PARTIALLY_PAID') AND balance >= 1000 "
        "AND deleted_at IS NULL ORDER BY connection, currency, id"
    )
    by_currency: dict[str, tuple] = {}
    for invoice in invoices:  # one of each currency first (0, 2 and 3 decimals), then any
        by_currency.setdefault(invoice[2], invoice)
    chosen = list(by_currency.values()) + [i for i in invoices if i not in by_currency.values()]
    assert len(chosen) >= n
    rows = [
        {"external_id": f"{prefix}-{k}", "connection": connection, "invoice_id": invoice_id, "currency": currency,
         "total_amount": balance // 2, "transaction_date": "2026-11-20"}
        for k, (connection, invoice_id, currency, balance) in enumerate(chosen[:n])
    ]  # fmt: skip
    queue(warehouse, rows)
    return rows


def created(merge: MergeSandbox, row: dict[str, Any]) -> list[dict[str, Any]]:
    """The payments the sandbox holds that push created for `row` (by their content: Merge carries no id of
    ours)."""
    out = []
    for payment in merge.store.all(row["connection"], "payments"):
        lines = payment["applied_to_lines"]
        if payment["remote_id"].startswith("PMT-NEW-") and lines and lines[0]["related_object_id"] == row["invoice_id"]:
            out.append(payment)
    return out


def test_payments_are_created_once_in_merges_terms_and_the_ledger_says_so(
    loaded: Warehouse, merge: MergeSandbox
) -> None:
    rows = queue_open(loaded, 4)
    summary = push_merge(loaded, merge)
    assert summary.outcomes == {"created": 4}, summary.errors
    entries = ledger(loaded)
    for row in rows:
        (payment,) = created(merge, row)
        assert entries[row["external_id"]][:2] == ("created", payment["id"])
        exponent = {"USD": 2, "EUR": 2, "JPY": 0, "KWD": 3}[row["currency"]]
        # out in Merge's terms: major units, exact, applied whole to the invoice
        assert Decimal(str(payment["total_amount"])) == Decimal(row["total_amount"]).scaleb(-exponent)
        assert payment["applied_to_lines"][0]["applied_amount"] == str(Decimal(row["total_amount"]).scaleb(-exponent))
        assert payment["transaction_date"] == "2026-11-20T00:00:00Z"
    assert {r["currency"] for r in rows} >= {"JPY", "KWD"}
    # every send carried the row's own key
    keys = {w.idempotency_key for w in merge.writes.received}
    assert keys == {idempotency_key(r) for r in rows} and len(merge.writes.received) == 4
    # a second run sends nothing; a load reads the created payments back as the rows queued them
    assert push_merge(loaded, merge).outcomes == {}
    assert len(merge.writes.received) == 4
    assert loaded.load_from("merge", merge).status == "ok"
    for row in rows:
        (payment,) = created(merge, row)
        assert loaded.query(f"SELECT total_amount, currency FROM {DATASET}.payments WHERE id = ?", payment["id"]) == [
            (row["total_amount"], row["currency"])
        ]


@pytest.mark.parametrize("fault", ["status", "drop"], ids=["created-then-500", "created-then-dropped"])
def test_a_payment_whose_answer_is_lost_after_the_write_is_created_once(
    loaded: Warehouse, merge: MergeSandbox, fault: str
) -> None:
    (row,) = queue_open(loaded, 1)
    merge.inject(Fault(fault, status=500, method="POST", path=POST, after_write=True))
    summary = push_merge(loaded, merge)
    assert summary.outcomes == {"created": 1}, summary.errors
    (payment,) = created(merge, row)
    assert ledger(loaded)[row["external_id"]][:2] == ("created", payment["id"])
    # one request, whose answer was lost; the lookup found the payment, so nothing was sent again
    assert [w.idempotency_key for w in merge.writes.received] == [idempotency_key(row)]
    attempts = loaded.query(
        f"SELECT phase, status FROM {DATASET}.push_attempts WHERE external_id = ? ORDER BY happened_at",
        row["external_id"],
    )
    assert ("outcome", "unknown") in attempts and attempts[-1] == ("resolve", "created")


def test_a_resend_the_lookup_cannot_prevent_is_answered_from_merges_idempotency_store(
    loaded: Warehouse, merge: MergeSandbox
) -> None:
    """The first answer is lost and the lookup cannot see the payment (Merge lists it later): the resend
    carries the same key, and Merge answers it with the stored payment instead of creating a second."""
    (row,) = queue_open(loaded, 1)
    merge.inject(Fault("status", status=502, method="POST", path=POST, after_write=True))
    hide_new_payments(merge)
    summary = push_merge(loaded, merge)
    assert summary.outcomes == {"created": 1}, summary.errors
    assert len(created(merge, row)) == 1
    assert [w.idempotency_key for w in merge.writes.received] == [idempotency_key(row)] * 2
    assert ledger(loaded)[row["external_id"]][1] == created(merge, row)[0]["id"]


def hide_new_payments(merge: MergeSandbox) -> Any:
    """Merge lists no payment created from now on (its copy has not synced them yet); returns the undo."""
    listed = {p["id"] for token in merge.store.records for p in merge.store.records[token]["payments"]}
    original = merge.store.page

    def page(token: str, kind: str, *args: Any, **kwargs: Any):
        rows, more = original(token, kind, *args, **kwargs)
        return ([r for r in rows if r["id"] in listed] if kind == "payments" else rows), more

    merge.store.page = page  # type: ignore[method-assign]
    return lambda: setattr(merge.store, "page", original)


def test_a_payment_a_load_brought_in_after_a_lost_answer_is_found_not_sent_again(
    loaded: Warehouse, merge: MergeSandbox
) -> None:
    """The answer is lost and Merge lists the payment only later; a load brings it in before the next push,
    after Merge forgot the key (24 h): the lookup takes the loaded payment, created after the first send."""
    (row,) = queue_open(loaded, 1)
    merge.inject(Fault("status", status=502, method="POST", path=POST, after_write=True))
    show = hide_new_payments(merge)
    assert push_merge(loaded, merge, resend_unknown_after=3600).outcomes == {"unknown": 1}
    show()
    assert loaded.load_from("merge", merge).status == "ok"
    merge.writes.keys.clear()  # a day later: Merge keeps keys 24 h
    assert push_merge(loaded, merge).outcomes == {"created": 1}
    (payment,) = created(merge, row)
    assert len(merge.writes.received) == 1 and ledger(loaded)[row["external_id"]][:2] == ("created", payment["id"])


def test_a_key_merge_has_seen_with_another_body_is_looked_up_never_taken_for_a_refusal(
    loaded: Warehouse, merge: MergeSandbox
) -> None:
    """A row edited after a send whose answer was lost: Merge refuses its key with the new body (400), which
    says an earlier send may have created it; the row is not `rejected` (a rejected row is sent afresh next
    run) but looked up, and nothing is created twice."""
    (row,) = queue_open(loaded, 1)
    merge.inject(Fault("status", status=502, method="POST", path=POST, after_write=True))
    show = hide_new_payments(merge)
    assert push_merge(loaded, merge, resend_unknown_after=3600).outcomes == {"unknown": 1}
    with duckdb.connect(str(loaded.path)) as con:
        con.execute(f"UPDATE {DATASET}.outbound_payments SET total_amount = total_amount - 1 WHERE external_id = ?",
                    [row["external_id"]])  # fmt: skip
    summary = push_merge(loaded, merge)
    show()
    status, _, error = ledger(loaded)[row["external_id"]]
    assert status in ("unknown", "failed") and "key with another body" in error, (status, error)
    assert len(created(merge, row)) == 1 and {w.status for w in merge.writes.received[1:]} == {400}
    assert "rejected" not in summary.outcomes


def test_a_201_with_errors_is_a_refusal_and_warnings_are_kept(loaded: Warehouse, merge: MergeSandbox) -> None:
    refused, warned = queue_open(loaded, 2)
    token = merge.accounts()[refused["connection"]]
    merge.store.records[token]["invoices"] = [
        i for i in merge.store.records[token]["invoices"] if i["id"] != refused["invoice_id"]
    ]  # gone from the accounting system after our load
    payment_currency = {"USD": "EUR", "EUR": "USD", "JPY": "USD", "KWD": "EUR"}
    token = merge.accounts()[warned["connection"]]
    invoice = next(i for i in merge.store.records[token]["invoices"] if i["id"] == warned["invoice_id"])
    invoice["currency"] = payment_currency[warned["currency"]]  # upstream now says another currency
    summary = push_merge(loaded, merge)
    assert summary.outcomes == {"rejected": 1, "created": 1}, summary.errors
    entries = ledger(loaded)
    status, _, error = entries[refused["external_id"]]
    assert status == "rejected" and "errors" in error and "does not exist" in error
    assert created(merge, refused) == []
    status, record_id, error = entries[warned["external_id"]]
    assert status == "created" and record_id and "Currency Mismatch" in error
    # not sent again in the run (a refusal is final); the next run tries it once more, as every rejected row
    assert [w.status for w in merge.writes.received].count(201) == 2 and len(merge.writes.received) == 2
    assert push_merge(loaded, merge).outcomes == {"rejected": 1}
    assert len(merge.writes.received) == 3 and created(merge, refused) == []


def test_a_payments_type_is_sent_in_merges_words_and_a_type_merge_has_no_word_for_is_refused_in_the_plan(
    loaded: Warehouse, merge: MergeSandbox
) -> None:
    payable, receivable, unknown = queue_open(loaded, 3, prefix="typed")
    with duckdb.connect(str(loaded.path)) as con:  # the queue's spelling, Merge's in lower case, no word at all
        for row, word in ((payable, "ACCPAY"), (receivable, " accounts_receivable"), (unknown, "SUPPLIER")):
            con.execute(f"UPDATE {DATASET}.outbound_payments SET type = ? WHERE external_id = ?",
                        [word, row["external_id"]])  # fmt: skip
    dry = push_merge(loaded, merge, dry_run=True)  # the plan says it before anything is sent
    assert {p["external_id"]: p["action"] for p in dry.plan}[unknown["external_id"]] == "reject"
    assert merge.writes.received == []
    summary = push_merge(loaded, merge)
    assert summary.outcomes == {"created": 2, "rejected": 1}, summary.errors
    status, record_id, error = ledger(loaded)[unknown["external_id"]]
    assert status == "rejected" and record_id is None and "'SUPPLIER' is none of" in error
    sent = {w.idempotency_key: w.body["model"]["type"] for w in merge.writes.received}
    assert sent == {idempotency_key(payable): "ACCOUNTS_PAYABLE", idempotency_key(receivable): "ACCOUNTS_RECEIVABLE"}


def test_an_answer_describing_another_payment_is_not_believed(loaded: Warehouse, merge: MergeSandbox) -> None:
    (row,) = queue_open(loaded, 1)
    other = merge.store.all(row["connection"], "payments")[0]
    merge.inject(Fault("body", status=201, method="POST", path=POST, body=_answer_with(other)))
    summary = push_merge(loaded, merge)
    # the forged answer is doubted, the payment is looked up: it was never created, so it is sent again once
    assert summary.outcomes == {"created": 1}, summary.errors
    (payment,) = created(merge, row)
    assert ledger(loaded)[row["external_id"]][1] == payment["id"] != other["id"]


def test_an_answer_that_does_not_say_which_invoice_is_looked_up_not_believed(
    loaded: Warehouse, merge: MergeSandbox
) -> None:
    (row,) = queue_open(loaded, 1)
    exponent = {"USD": 2, "EUR": 2, "JPY": 0, "KWD": 3}[row["currency"]]
    forged = {
        "id": "forged-payment",
        "currency": row["currency"],
        "created_at": "2026-12-01T00:00:00Z",
        "total_amount": float(Decimal(row["total_amount"]).scaleb(-exponent)),
        "applied_to_lines": ["a-line-id"],
    }  # lines as ids: the invoice cannot be read
    merge.inject(Fault("body", status=201, method="POST", path=POST, body=_answer_with(forged)))
    summary = push_merge(loaded, merge)
    # nothing in the answer ties it to the row's invoice: looked up, not found, sent again once
    assert summary.outcomes == {"created": 1}, summary.errors
    (payment,) = created(merge, row)
    assert ledger(loaded)[row["external_id"]][1] == payment["id"] != "forged-payment"
    attempts = loaded.query(f"SELECT message FROM {DATASET}.push_attempts WHERE external_id = ?", row["external_id"])
    assert any("does not say the created payment's invoice_id" in (e or "") for (e,) in attempts)


def _answer_with(payment: dict[str, Any]) -> str:
    return json.dumps({"model": payment, "warnings": [], "errors": []})


def test_the_same_key_with_another_body_is_refused_by_merge(merge: MergeSandbox) -> None:
    """What protects a row edited between two sends: Merge refuses the key with another body (400)."""
    token = next(iter(merge.accounts().values()))
    headers = {"Authorization": f"Bearer {merge.api_key}", "X-Account-Token": token, "Idempotency-Key": "k-1"}
    invoice = next(i for i in merge.store.records[token]["invoices"] if i["status"] == "OPEN")
    model = {"currency": invoice["currency"], "total_amount": 1,
             "applied_to_lines": [{"applied_amount": "1", "related_object_id": invoice["id"],
                                   "related_object_type": "INVOICE"}]}  # fmt: skip
    with httpx.Client(base_url=merge.url, headers=headers) as client:
        first = client.post("/payments", json={"model": model})
        again = client.post("/payments", json={"model": model})
        other = client.post("/payments", json={"model": {**model, "total_amount": 2}})
    assert first.status_code == again.status_code == 201 and first.json() == again.json()
    assert other.status_code == 400 and other.json()["errors"][0]["problem_type"] == "IDEMPOTENCY_KEY_REUSED"
    assert merge.store.created["payments"] == 1


def test_push_killed_while_merge_creates_then_rerun_creates_once(
    loaded: Warehouse, merge: MergeSandbox, tmp_path
) -> None:
    (row,) = queue_open(loaded, 1)
    # the server takes 2 s on the POST and then creates the payment, whether or not the client is still there
    merge.inject(Fault("delay", method="POST", path=POST, seconds=2.0))
    sent = lambda: merge.stats.snapshot()["requests"].get(f"POST {POST}", 0) > 0  # noqa: E731
    env = cli_env(loaded.sandbox, loaded.path, tmp_path, merge=merge)
    code = kill_when(["push", "--database", str(loaded.path)], env, sent)
    assert code == -signal.SIGKILL, "the push ended before it sent its POST"
    assert stopped_ledger(loaded)[row["external_id"]][0] == "pending"  # the intent was on disk first
    deadline = time.monotonic() + 30
    while not created(merge, row) and time.monotonic() < deadline:  # the server finishes the request it was given
        time.sleep(0.1)
    assert push_merge(loaded, merge).outcomes == {"created": 1}
    assert len(created(merge, row)) == 1 and len(merge.writes.received) == 1  # looked up, not resent
    assert ledger(loaded)[row["external_id"]][:2] == ("created", created(merge, row)[0]["id"])


def test_invoices_are_created_once_by_number_and_a_duplicate_number_upstream_is_refused(
    loaded: Warehouse, merge: MergeSandbox
) -> None:
    lines = json.dumps([{"description": "Audit day", "unit_price": 6170, "quantity": 2, "total_amount": 12340},
                        {"description": "Travel", "unit_price": 5, "quantity": 1, "total_amount": 5}])  # fmt: skip
    base = {"connection": "umbrella-kw", "currency": "KWD", "total_amount": 12345, "issue_date": "2026-11-20",
            "due_date": "2026-12-20", "line_items": lines, "type": "ACCREC"}  # fmt: skip
    queue(loaded, table="outbound_invoices", rows=[{**base, "external_id": "mi-1", "number": "KW-NEW-1"},
                                                    {**base, "external_id": "mi-2", "number": "KW-NEW-2"}])  # fmt: skip
    token = merge.accounts()["umbrella-kw"]
    template = merge.store.all("umbrella-kw", "invoices")[0]
    merge.store.records[token]["invoices"].append({**template, "id": "taken-upstream", "number": "KW-NEW-2"})
    merge.inject(Fault("status", status=500, method="POST", path="/api/accounting/v1/invoices", after_write=True,
                       times=1))  # fmt: skip
    summary = push_merge(loaded, merge, concurrency=1)
    assert summary.outcomes == {"created": 1, "rejected": 1}, summary.errors
    entries = ledger(loaded)
    (invoice,) = [i for i in merge.store.all("umbrella-kw", "invoices") if i["number"] == "KW-NEW-1"]
    assert entries["mi-1"][:2] == ("created", invoice["id"])  # the 500 came after the write: found by number
    assert entries["mi-2"][0] == "rejected" and "number exists" in entries["mi-2"][2]
    # Merge's terms: 12345 minor units of KWD are 12.345; the lines' too; the queue's ACCREC a receivable
    assert invoice["total_amount"] == 12.345 and invoice["type"] == "ACCOUNTS_RECEIVABLE"
    assert [line["total_amount"] for line in invoice["line_items"]] == [12.34, 0.005]
    keys = [w.idempotency_key for w in merge.writes.received if w.kind == "invoices"]
    assert len(keys) == 2 and idempotency_key({"connection": "umbrella-kw", "external_id": "mi-1"}, "invoice") in keys
    assert loaded.load_from("merge", merge).status == "ok"
    assert loaded.query(f"SELECT total_amount, kind FROM {DATASET}.invoices WHERE id = ?", invoice["id"]) == [
        (12345, "receivable")
    ]
    assert sorted(r[0] for r in loaded.query(
        f"SELECT total_amount FROM {DATASET}.invoices__line_items WHERE invoice_id = ?", invoice["id"]
    )) == [5, 12340]  # fmt: skip
