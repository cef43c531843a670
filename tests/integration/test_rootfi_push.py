"""Pushing payments of Rootfi companies through Rootfi's write jobs, over HTTP against the Rootfi sandbox:
each payment created exactly once whatever the job, the network or the process does."""

from __future__ import annotations

import signal
import time
from decimal import Decimal

import iso4217
import pytest

from sandbox.http import Fault
from tests.support import (
    Crash,
    M,
    Warehouse,
    cli_env,
    kill_when,
    ledger,
    posts,
    push_rootfi,
    queue,
    stopped_ledger,
)


@pytest.fixture
def loaded(both: Warehouse, loaded_warehouses) -> Warehouse:
    """Rootfi's seeded data loaded, with the models (a copy of the session's one load)."""
    return loaded_warehouses.copy_into(both, "rootfi")


def queue_valid(warehouse: Warehouse, n: int) -> list[str]:
    """n payments, each on an open Rootfi invoice, for at most its open balance."""
    invoices = warehouse.query(
        f"SELECT connection, invoice_id, currency, open_minor FROM {M}.accounting__invoice_settlement "
        "WHERE invoice_id LIKE 'rootfi:%' AND status IN ('unpaid', 'partially_paid') AND open_minor >= 100 "
        "ORDER BY connection, invoice_id LIMIT ?",
        n,
    )
    assert len(invoices) == n
    rows = [
        {
            "external_id": f"rf-{i}",
            "connection": connection,
            "invoice_id": invoice_id,
            "currency": currency,
            "total_amount": min(open_minor, 2550 if currency != "JPY" else 300),
            "transaction_date": "2026-11-20T00:00:00Z",
        }
        for i, (connection, invoice_id, currency, open_minor) in enumerate(invoices)
    ]
    queue(warehouse, rows)
    return [r["external_id"] for r in rows]


def created_once(warehouse: Warehouse, external_ids: list[str]) -> None:
    counts = warehouse.rootfi.store.created_by_document
    assert {e: counts[e] for e in external_ids} == dict.fromkeys(external_ids, 1)
    entries = ledger(warehouse)
    assert {e: entries[e][0] for e in external_ids} == dict.fromkeys(external_ids, "created")


def test_payments_go_through_jobs_once_and_a_load_confirms_them(loaded: Warehouse) -> None:
    ids = queue_valid(loaded, 5)
    summary = push_rootfi(loaded)
    assert summary.outcomes == {"created": 5}
    created_once(loaded, ids)
    assert posts(loaded) == 2  # batches of 3
    store = loaded.rootfi.store
    for external_id in ids:
        created = next(r for r in store.records["invoice_payments"] if r["document_number"] == external_id)
        record_id, remote_id, rootfi_id, total, currency, invoice_id = loaded.query(
            "SELECT l.record_id, l.remote_id, l.provider_id, q.total_amount, q.currency, q.invoice_id "
            "FROM accounting_raw.push_log l JOIN accounting_raw.outbound_payments q USING (external_id) "
            "WHERE external_id = ?",
            external_id,
        )[0]
        assert (record_id, remote_id, rootfi_id) == (
            f"rootfi:{created['rootfi_company_id']}:{created['platform_id']}",
            created["platform_id"],
            str(created["rootfi_id"]),
        )
        # out in Rootfi's terms: major units (2550 minor units of GBP are 25.5) and the invoice's platform id
        exponent = iso4217.Currency(currency).exponent
        assert Decimal(str(created["amount"])) == Decimal(total).scaleb(-exponent)
        assert f"rootfi:{created['rootfi_company_id']}:{created['invoice_id']}" == invoice_id
    assert push_rootfi(loaded).outcomes == {}
    assert posts(loaded) == 2
    loaded.load_rootfi(transform=True)
    assert push_rootfi(loaded).outcomes == {}
    assert {ledger(loaded)[e][0] for e in ids} == {"confirmed"}


def test_a_record_failing_inside_a_successful_job_is_rejected_with_rootfis_reason(loaded: Warehouse) -> None:
    ids = queue_valid(loaded, 3)
    doomed = loaded.query("SELECT invoice_id FROM accounting_raw.outbound_payments WHERE external_id = ?", ids[1])[0][0]
    alias = loaded.query("SELECT connection FROM accounting_raw.outbound_payments WHERE external_id = ?", ids[1])[0][0]
    loaded.rootfi.store.delete(alias, "invoices", doomed.split(":")[2])  # gone upstream after our load
    summary = push_rootfi(loaded)
    assert summary.outcomes == {"created": 2, "rejected": 1}
    status, error = (
        ledger(loaded)[ids[1]][0],
        loaded.scalar("SELECT error FROM accounting_raw.push_log WHERE external_id = ?", ids[1]),
    )
    assert status == "rejected" and "not found" in error
    created_once(loaded, [ids[0], ids[2]])
    assert loaded.rootfi.store.created_by_document[ids[1]] == 0


def test_a_failed_job_creates_nothing_and_its_payments_are_sent_again(loaded: Warehouse) -> None:
    ids = queue_valid(loaded, 3)
    loaded.rootfi.inject(Fault("job_failed", method="POST", path="/accounting/invoice_payments"))
    summary = push_rootfi(loaded)
    assert summary.outcomes == {"created": 3}
    created_once(loaded, ids)
    assert posts(loaded) == 2
    attempts = loaded.query(
        "SELECT status, message FROM accounting_raw.push_attempts WHERE external_id = ? ORDER BY happened_at", ids[0]
    )
    assert [a[0] for a in attempts] == ["pending", "submitted", "failed", "pending", "submitted", "created"]
    assert "FAILED" in attempts[2][1]


def test_a_job_still_running_when_push_stops_is_followed_up_not_resent(loaded: Warehouse) -> None:
    ids = queue_valid(loaded, 2)
    rootfi = loaded.rootfi
    rootfi.settings.job_run_seconds = 3.0  # ten times the push's wait, so a slow machine cannot see it finish
    rootfi.settings.sync_wait_seconds = 0.1
    summary = push_rootfi(loaded, job_wait_seconds=0.3)
    assert summary.outcomes == {"submitted": 2}
    assert {ledger(loaded)[e][0] for e in ids} == {"submitted"}
    time.sleep(3.1)
    assert push_rootfi(loaded).outcomes == {"created": 2}
    created_once(loaded, ids)
    assert posts(loaded) == 1
    assert rootfi.stats.requests["GET /core/syncs/{id}"] >= 1


@pytest.mark.parametrize(
    "fault",
    [
        Fault("status", status=500, method="POST", path="/accounting/invoice_payments", after_write=True),
        Fault("drop", method="POST", path="/accounting/invoice_payments", after_write=True),
        Fault("status", status=503, method="POST", path="/accounting/invoice_payments"),
        Fault("drop", method="POST", path="/accounting/invoice_payments"),
        Fault("rate_limit", method="POST", path="/accounting/invoice_payments", seconds=0.2, times=3),
    ],
    ids=["500-after-write", "drop-after-write", "503-before", "drop-before", "429s"],
)
def test_faults_end_with_each_payment_created_once(loaded: Warehouse, fault: Fault) -> None:
    ids = queue_valid(loaded, 3)
    loaded.rootfi.inject(fault)
    push_rootfi(loaded)
    push_rootfi(loaded)  # a second run changes nothing
    created_once(loaded, ids)
    assert fault.fired == fault.times  # every fault met the push


@pytest.mark.parametrize("point", ["intent", "submitted", "recorded"])
def test_a_crash_at_each_point_then_a_rerun_creates_each_once(loaded: Warehouse, point: str) -> None:
    ids = queue_valid(loaded, 3)

    def crash(event: str, external_id: str) -> None:
        if event == point:
            raise Crash(event)

    with pytest.raises(Crash):
        push_rootfi(loaded, on_event=crash)
    time.sleep(0.5)  # the job the crashed run submitted ends meanwhile
    push_rootfi(loaded)
    created_once(loaded, ids)


def test_push_process_killed_while_its_job_runs_then_rerun_creates_once(loaded: Warehouse, tmp_path) -> None:
    ids = queue_valid(loaded, 2)
    rootfi = loaded.rootfi
    rootfi.settings.job_run_seconds = 2.0  # the job runs on after the client is gone
    rootfi.settings.sync_wait_seconds = 0.1
    following = lambda: rootfi.stats.requests["GET /core/syncs/{id}"] > 0  # noqa: E731  answered, recorded
    env = cli_env(loaded.sandbox, loaded.path, tmp_path, rootfi)
    code = kill_when(["push", "--database", str(loaded.path)], env, following)
    assert code == -signal.SIGKILL, "the push ended before it followed its job"
    # on disk in the copy the push was writing, which the next writer takes over
    assert {stopped_ledger(loaded)[e][0] for e in ids} == {"submitted"}
    time.sleep(2.2)  # the job ends on the server
    push_rootfi(loaded)
    created_once(loaded, ids)
    assert posts(loaded) == 1  # followed up, not resent


def test_an_answer_lost_while_its_job_still_runs_is_found_once_it_has_run_not_resent(loaded: Warehouse) -> None:
    """The answer to the POST is lost while the job it started still runs: the lookup finds no payment yet,
    which is no proof on an API whose writes run on as jobs, so the rows stay `unknown` under the resend rule
    a user runs with (the tests' other pushes resend at once); once the job has run, a push finds them."""
    ids = queue_valid(loaded, 2)
    rootfi = loaded.rootfi
    rootfi.settings.job_run_seconds = 3.0  # thirty times what the sandbox holds the lost answer for
    rootfi.settings.sync_wait_seconds = 0.1
    fault = Fault("status", status=500, method="POST", path="/accounting/invoice_payments", after_write=True)
    rootfi.inject(fault)
    first = push_rootfi(loaded, resend_unknown_after=3600)
    assert fault.fired == 1
    assert first.outcomes == {"unknown": 2}, first.outcomes  # looked up after settling: the job had not run
    assert rootfi.stats.requests["GET /accounting/invoice_payments"] >= 1
    outcomes = first.outcomes
    deadline = time.monotonic() + 30
    while outcomes.get("created", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
        outcomes = push_rootfi(loaded, resend_unknown_after=3600).outcomes
    created_once(loaded, ids)
    assert posts(loaded) == 1  # found, never sent again
