"""Reverse ETL against the sandbox over HTTP: each queued payment is created exactly once, whatever fails."""

from __future__ import annotations

import signal
import time

import pytest

from sandbox.panora import Fault
from tests.support import (
    DATASET,
    Crash,
    cli_env,
    created_in_api,
    kill_when,
    ledger,
    open_invoices,
    push,
    queue,
    stopped_ledger,
)


@pytest.fixture
def loaded(warehouse, loaded_warehouses):
    """Panora's seeded data loaded, with the models (a copy of the session's one load)."""
    return loaded_warehouses.copy_into(warehouse, "panora")


def queue_valid(warehouse, n: int) -> list[str]:
    rows = []
    for i, (connection, invoice_id, currency, open_minor) in enumerate(open_invoices(warehouse, n)):
        rows.append(
            {
                "external_id": f"bank-{i}",
                "connection": connection,
                "invoice_id": invoice_id,
                "currency": currency,
                "total_amount": min(open_minor, 5000),
                "transaction_date": "2026-11-20T00:00:00Z",
                "type": "Bank transfer",
            }
        )
    queue(warehouse, rows)
    return [r["external_id"] for r in rows]


def test_each_payment_is_created_once_and_a_rerun_sends_nothing(loaded, sandbox):
    ids = queue_valid(loaded, 5)
    summary = push(loaded)
    assert summary.outcomes == {"created": 5}
    assert sandbox.stats.created["payments"] == 5
    assert all(created_in_api(sandbox, i) == 1 for i in ids)
    entries = ledger(loaded)
    assert {entries[i][0] for i in ids} == {"created"} and all(entries[i][1] for i in ids)

    again = push(loaded)
    assert again.outcomes == {} and sandbox.stats.created["payments"] == 5
    # the next load brings the created payments in; push then marks them confirmed
    loaded.load(transform=True)
    push(loaded)
    assert {s for s, *_ in ledger(loaded).values()} == {"confirmed"}


def test_invalid_rows_are_rejected_with_their_reason_and_valid_ones_go(loaded, sandbox):
    (conn, inv, cur, _), (conn2, inv2, cur2, open2) = open_invoices(loaded, 2)
    other = "JPY" if cur != "JPY" else "EUR"
    base = {"connection": conn, "invoice_id": inv, "currency": cur, "total_amount": 100}
    queue(loaded, [
        {**base, "external_id": "ok-1"},
        {**base, "external_id": "no-conn", "connection": "nowhere"},
        {**base, "external_id": "negative", "total_amount": -5},
        {**base, "external_id": "bad-currency", "currency": "EURO"},
        {**base, "external_id": "no-invoice", "invoice_id": "00000000-0000-4000-8000-000000000000"},
        {**base, "external_id": "wrong-currency", "currency": other},
        {**base, "external_id": "too-much", "connection": conn2, "invoice_id": inv2, "currency": cur2,
         "total_amount": open2 + 1},
        {**base, "external_id": "overpay-ok", "connection": conn2, "invoice_id": inv2, "currency": cur2,
         "total_amount": open2 + 1, "overpayment_intended": True},
    ])  # fmt: skip
    summary = push(loaded)
    entries = ledger(loaded)
    assert entries["ok-1"][0] == "created" and entries["overpay-ok"][0] == "created"
    reasons = {k: v[2] for k, v in entries.items() if v[0] == "rejected"}
    assert set(reasons) == {"no-conn", "negative", "bad-currency", "no-invoice", "wrong-currency", "too-much"}
    assert "unknown connection" in reasons["no-conn"]
    assert "positive" in reasons["negative"]
    assert "ISO 4217" in reasons["bad-currency"]
    assert "not among the loaded invoices" in reasons["no-invoice"]
    assert "differs from the invoice" in reasons["wrong-currency"]
    assert "open balance" in reasons["too-much"] and "overpayment_intended" in reasons["too-much"]
    assert sandbox.stats.created["payments"] == 2 and summary.outcomes == {"created": 2, "rejected": 6}


def test_dry_run_sends_nothing_and_records_the_plan(loaded, sandbox):
    queue_valid(loaded, 3)
    queue(loaded, [{"external_id": "bad", "connection": "acme-eu", "currency": "EUR", "total_amount": 0}])
    summary = push(loaded, dry_run=True)
    assert summary.outcomes == {"would create": 3, "would reject": 1}
    assert sandbox.stats.snapshot()["requests"].get("POST /accounting/payments", 0) == 0
    assert ledger(loaded) == {}
    plan = loaded.query(f"SELECT external_id, action FROM {DATASET}.push_plan WHERE dry_run ORDER BY 1")
    assert plan == [("bad", "reject"), ("bank-0", "create"), ("bank-1", "create"), ("bank-2", "create")]


POST_FAULTS = {
    "500_before_write": Fault("status", status=500, method="POST", path="/accounting/payments", times=2),
    "503_before_write": Fault("status", status=503, method="POST", path="/accounting/payments", times=2),
    "500_after_write": Fault("status", status=500, method="POST", path="/accounting/payments", times=2,
                             after_write=True),
    "429": Fault("rate_limit", method="POST", path="/accounting/payments", times=4, seconds=0.2),
    "dropped_before_write": Fault("drop", method="POST", path="/accounting/payments", times=2),
    "dropped_after_write": Fault("drop", method="POST", path="/accounting/payments", times=2, after_write=True),
    "timeout_after_write": Fault("delay", method="POST", path="/accounting/payments", times=2, seconds=1.0,
                                 after_write=True),
    "timeout_before_write": Fault("delay", method="POST", path="/accounting/payments", times=2, seconds=1.0),
}  # fmt: skip


@pytest.mark.parametrize("kind", list(POST_FAULTS))
def test_faults_during_a_push_end_with_each_payment_created_once(loaded, sandbox, kind):
    ids = queue_valid(loaded, 4)
    sandbox.inject(POST_FAULTS[kind])
    summary = push(loaded, concurrency=2)
    assert summary.outcomes == {"created": 4}, summary.render()
    assert [created_in_api(sandbox, i) for i in ids] == [1, 1, 1, 1]
    assert sandbox.stats.faults_fired >= 1


@pytest.mark.parametrize("point", ["intent", "answered", "recorded"])
def test_a_crash_at_each_point_of_the_send_then_a_rerun_creates_each_once(loaded, sandbox, point):
    ids = queue_valid(loaded, 3)

    def crash(event: str, external_id: str) -> None:
        if event == point:
            raise Crash(f"killed at {point} of {external_id}")

    with pytest.raises(Crash):
        push(loaded, concurrency=1, on_event=crash)
    push(loaded)
    assert [created_in_api(sandbox, i) for i in ids] == [1, 1, 1]
    assert {ledger(loaded)[i][0] for i in ids} == {"created"}


def test_csv_queue(loaded, sandbox, tmp_path):
    (conn, inv, cur, _), = open_invoices(loaded, 1)  # fmt: skip
    path = tmp_path / "payments.csv"
    path.write_text(
        "external_id,connection,invoice_id,currency,total_amount,transaction_date\n"
        f"csv-1,{conn},{inv},{cur},100,2026-11-19\n"
    )
    summary = push(loaded, from_csv=path)
    assert summary.outcomes == {"created": 1} and created_in_api(sandbox, "csv-1") == 1


def test_push_process_killed_while_the_server_creates_then_rerun_creates_once(loaded, sandbox, tmp_path):
    ids = queue_valid(loaded, 1)
    # the server takes 2 s on the POST and then creates the payment, whether or not the client is still there
    sandbox.inject(Fault("delay", method="POST", path="/accounting/payments", seconds=2.0))
    sent = lambda: sandbox.stats.snapshot()["requests"].get("POST /accounting/payments", 0) > 0  # noqa: E731
    code = kill_when(["push", "--database", str(loaded.path)], cli_env(sandbox, loaded.path, tmp_path), sent)
    assert code == -signal.SIGKILL, "the push ended before it sent its POST"
    # the intent was on disk before the request left: in the copy the push was writing, which the next writer of
    # the warehouse takes over; readers meanwhile see the ledger as the last writer that finished left it
    assert stopped_ledger(loaded)[ids[0]][0] == "pending"
    assert ids[0] not in ledger(loaded)
    deadline = time.monotonic() + 30
    while not created_in_api(sandbox, ids[0]) and time.monotonic() < deadline:  # the server finishes the request
        time.sleep(0.1)
    push(loaded)
    assert created_in_api(sandbox, ids[0]) == 1
    assert sandbox.stats.snapshot()["requests"]["POST /accounting/payments"] == 1  # looked up, not resent
    assert ledger(loaded)[ids[0]][0] == "created"


LINES = '[{"description": "Consulting", "unit_price": 50000, "quantity": 2, "total_amount": 100000}]'


def test_invoices_are_created_once_and_invalid_ones_rejected(loaded, sandbox):
    existing = loaded.scalar(f"SELECT number FROM {DATASET}.invoices WHERE connection = 'acme-eu' LIMIT 1")
    base = {"connection": "acme-eu", "currency": "EUR", "total_amount": 100000, "issue_date": "2026-11-20",
            "due_date": "2026-12-20", "line_items": LINES}  # fmt: skip
    queue(loaded, table="outbound_invoices", rows=[
        {**base, "external_id": "inv-ok-1", "number": "NEW-001"},
        {**base, "external_id": "inv-ok-2", "number": "NEW-002"},
        {**base, "external_id": "inv-dup-number", "number": existing},
        {**base, "external_id": "inv-bad-lines", "number": "NEW-003", "line_items": "{not json"},
        {**base, "external_id": "inv-zero", "number": "NEW-004", "total_amount": 0},
    ])  # fmt: skip
    summary = push(loaded)
    entries = ledger(loaded)
    assert summary.outcomes == {"created": 2, "rejected": 3}
    assert entries["inv-ok-1"][0] == "created" and created_in_api(sandbox, "inv-ok-1", "invoices") == 1
    assert "already loaded" in entries["inv-dup-number"][2]
    assert "JSON" in entries["inv-bad-lines"][2] and "positive" in entries["inv-zero"][2]
    created = next(i for i in sandbox.store.all("acme-eu", "invoices") if i.get("number") == "NEW-001")
    assert created["line_items"][0]["total_amount"] == 100000 and created["due_date"].startswith("2026-12-20")
    assert push(loaded).outcomes == {"rejected": 3} and sandbox.stats.created["invoices"] == 2
    loaded.load(transform=True)
    push(loaded)
    assert ledger(loaded)["inv-ok-1"][0] == "confirmed"


def test_invoice_push_survives_a_500_after_write_and_a_crash_after_the_answer(loaded, sandbox):
    base = {"connection": "acme-us", "currency": "USD", "total_amount": 2500, "line_items": LINES}
    queue(
        loaded,
        table="outbound_invoices",
        rows=[{**base, "external_id": f"inv-{n}", "number": f"X-{n}"} for n in range(3)],
    )
    sandbox.inject(Fault("status", status=500, method="POST", path="/accounting/invoices", after_write=True))

    def crash(event: str, external_id: str) -> None:
        if event == "answered" and external_id == "inv-2":
            raise Crash("killed after the server answered")

    with pytest.raises(Crash):
        push(loaded, concurrency=1, on_event=crash)
    push(loaded)
    assert [created_in_api(sandbox, f"inv-{n}", "invoices") for n in range(3)] == [1, 1, 1]


def test_against_a_remote_first_server_an_unfound_unknown_waits_before_it_is_sent_again(loaded, sandbox):
    (external_id,) = queue_valid(loaded, 1)
    sandbox.inject(Fault("status", status=502, method="POST", path="/accounting/payments"))
    # The "too soon" runs use an hour's window, so a slow machine between two runs cannot make them late;
    # the last run's window is shorter than the sleep before it, so it cannot be early.
    first = push(loaded, resend_unknown_after=3600)
    assert first.outcomes == {"unknown": 1} and created_in_api(sandbox, external_id) == 0
    assert push(loaded, resend_unknown_after=3600).outcomes == {"unknown": 1}  # too soon: looked up, not sent
    assert sandbox.stats.snapshot()["requests"]["POST /accounting/payments"] == 1
    time.sleep(1.1)
    assert push(loaded, resend_unknown_after=1.0).outcomes == {"created": 1}
    assert created_in_api(sandbox, external_id) == 1


def test_a_second_push_into_the_same_warehouse_is_refused_while_one_runs(loaded):
    import fcntl

    from pipelines.warehouse.locks import AlreadyRunning

    lock_file = loaded.path.parent / f".{loaded.path.name}.etl" / "push.lock"  # the warehouse's, beside it
    lock_file.parent.mkdir(exist_ok=True)
    with open(lock_file, "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(AlreadyRunning, match="push"):
            push(loaded)
    assert push(loaded).outcomes == {}
