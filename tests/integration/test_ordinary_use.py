"""Ordinary use, where the tool's uses meet: a warehouse is the unit of identity (two checkouts, a new or
deleted warehouse), a dry run has no side effect, a queued row can be taken back, bank files as banks write
them, a row queued while a load runs, and an invoice waiting for the provider to reflect a pushed payment."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import duckdb
import pytest

from pipelines.push import cancel_queued
from pipelines.transform import transform_database
from pipelines.warehouse import writing
from pipelines.warehouse.duckdb_file import DuckDBFile
from sources.common.currencies import minor_unit_exponent
from tests.support import DATASET, ROOT, M, Warehouse, cli_env, created_in_api, ledger, open_invoices, push, queue


@pytest.fixture
def loaded(warehouse, loaded_warehouses):
    """Panora's seeded data loaded, with the models (a copy of the session's one load)."""
    return loaded_warehouses.copy_into(warehouse, "panora")


def _cli(args: list[str], env: dict[str, str], cwd: Path | None = None) -> subprocess.Popen:
    env = {**env, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "pipelines", *args], env=env, cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def _done(process: subprocess.Popen) -> tuple[int, str]:
    _, err = process.communicate(timeout=300)
    return process.returncode, err


# -- a warehouse is the unit of identity -----------------------------------------------------------------------
def _default_env(sandbox, rootfi, tmp_path: Path) -> dict[str, str]:
    """Both providers configured, the DuckDB file left to its default (accounting.duckdb where it runs), one dlt
    data folder for the host, as a second checkout on the same machine would have."""
    env = cli_env(sandbox, tmp_path / "unused.duckdb", tmp_path, rootfi)
    del env["DESTINATION__DUCKDB__CREDENTIALS"]
    return {**env, "SOURCES__ROOTFI__PAGE_SIZE": "200", "SOURCES__PANORA__PAGE_SIZE": "200"}


def _rootfi_counts(path: Path) -> dict[tuple[str, str], int]:
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute(
            f"SELECT 'invoices', connection, count(*) FROM {DATASET}.invoices WHERE provider = 'rootfi' GROUP BY ALL "
            f"UNION ALL SELECT 'payments', connection, count(*) FROM {DATASET}.payments WHERE provider = 'rootfi' "
            "GROUP BY ALL"
        ).fetchall()
    return {(table, alias): n for table, alias, n in rows}


def _rootfi_in_api(rootfi) -> dict[tuple[str, str], int]:
    return {
        (table, alias): len(rootfi.store.all(alias, kind, include_deleted=True))
        for alias in rootfi.store.company_ids()
        for table, kind in (("invoices", "invoices"), ("payments", "invoice_payments"))
    }


def test_two_checkouts_load_two_warehouses_at_once_with_default_settings(tmp_path, sandbox, rootfi):
    env = _default_env(sandbox, rootfi, tmp_path)
    sandbox.settings.delay_seconds = 0.01  # long enough for the two loads to overlap
    folders = [tmp_path / "checkout-a", tmp_path / "checkout-b"]
    for folder in folders:
        folder.mkdir()
    runs = [_cli(["load", "--no-transform"], env, cwd=folder) for folder in folders]
    for run in runs:
        code, err = _done(run)
        assert code == 0, err
    for folder in folders:
        with duckdb.connect(str(folder / "accounting.duckdb"), read_only=True) as con:
            payments = con.execute(f"SELECT count(*) FROM {DATASET}.payments WHERE provider = 'panora'").fetchone()
        assert payments[0] == sum(sandbox.store.count(a, "payments") for a in sandbox.accounts())
        assert _rootfi_counts(folder / "accounting.duckdb") == _rootfi_in_api(rootfi)


def test_a_new_or_deleted_warehouse_gets_every_rootfi_record(tmp_path, sandbox, rootfi):
    """Rootfi's incremental positions come from the warehouse being loaded only: not from another warehouse
    loaded on this host before, nor from the one whose file was deleted."""
    env = _default_env(sandbox, rootfi, tmp_path)
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    load = ["load", "--no-transform", "--provider", "rootfi"]  # Rootfi's positions are what this is about
    assert _done(_cli(load, env, cwd=first))[0] == 0
    for alias in rootfi.store.company_ids():  # a change upstream: the next load of `first` is incremental
        invoice = rootfi.store.all(alias, "invoices")[0]
        rootfi.store.update(alias, "invoices", invoice["platform_id"], memo="changed")
    assert _done(_cli(load, env, cwd=second))[0] == 0  # a new warehouse on this host
    assert _rootfi_counts(second / "accounting.duckdb") == _rootfi_in_api(rootfi)
    (first / "accounting.duckdb").unlink()  # starting over
    code, err = _done(_cli(load, env, cwd=first))
    assert code == 0, err
    assert _rootfi_counts(first / "accounting.duckdb") == _rootfi_in_api(rootfi)


# -- a dry run has no side effect; a queued row can be taken back ----------------------------------------------
def _bank_rows(warehouse: Warehouse, n: int) -> list[tuple[str, str, str, int, str]]:
    """(connection, invoice id, currency, open minor units, number) of open Panora invoices with a unique
    number in their connection."""
    found = []
    for connection, invoice_id, currency, open_minor in open_invoices(warehouse, 40):
        number = warehouse.scalar(f"SELECT number FROM {DATASET}.invoices WHERE id = ?", invoice_id)
        same = warehouse.count("invoices", "connection = ? AND number = ? AND deleted_at IS NULL", connection, number)
        if same == 1:
            found.append((connection, invoice_id, currency, open_minor, number))
    return found[:n]


def test_a_csv_dry_run_queues_sends_and_confirms_nothing(loaded, sandbox, tmp_path):
    (connection, invoice_id, currency, _, _), *_ = _bank_rows(loaded, 1)
    queue(loaded, [{"external_id": "sent-before", "connection": connection, "invoice_id": invoice_id,
                    "currency": currency, "total_amount": 100, "transaction_date": "2026-11-20"}])  # fmt: skip
    assert push(loaded).outcomes == {"created": 1}
    loaded.load()  # brings the created payment in: a real push would now confirm it
    queue_before = loaded.query(f"SELECT * FROM {DATASET}.outbound_payments ORDER BY external_id")
    ledger_before = loaded.query(f"SELECT * FROM {DATASET}.push_log ORDER BY external_id")
    attempts_before = loaded.count("push_attempts")
    csv = tmp_path / "bank.csv"
    csv.write_text(
        "external_id,connection,invoice_id,currency,total_amount,transaction_date\n"
        f"dry-1,{connection},{invoice_id},{currency},100,2026-11-21\n"
    )
    summary = push(loaded, from_csv=csv, dry_run=True)
    assert summary.outcomes == {"would create": 1} and summary.ok  # nothing would be rejected: exit 0
    assert loaded.query(f"SELECT * FROM {DATASET}.outbound_payments ORDER BY external_id") == queue_before
    assert loaded.query(f"SELECT * FROM {DATASET}.push_log ORDER BY external_id") == ledger_before  # not confirmed
    assert loaded.count("push_attempts") == attempts_before
    assert sandbox.stats.snapshot()["requests"]["POST /accounting/payments"] == 1  # the one real push
    plan = loaded.query(f"SELECT external_id, action FROM {DATASET}.push_plan WHERE dry_run")
    assert plan == [("dry-1", "create")]  # what it writes: its plan
    csv.write_text(csv.read_text() + f"dry-2,{connection},{invoice_id},{currency},12.5,2026-11-21\n")
    assert not push(loaded, from_csv=csv, dry_run=True).ok  # a row that would be rejected: exit 1
    assert loaded.query(f"SELECT * FROM {DATASET}.outbound_payments ORDER BY external_id") == queue_before


def test_cancel_takes_back_what_cannot_have_been_sent_and_refuses_the_rest(loaded, sandbox):
    rows = _bank_rows(loaded, 2)
    base = {"transaction_date": "2026-11-20"}
    queue(loaded, [
        {**base, "external_id": "never-sent", "connection": rows[0][0], "invoice_id": rows[0][1],
         "currency": rows[0][2], "total_amount": 100},
        {**base, "external_id": "rejected", "connection": rows[0][0], "invoice_id": rows[0][1],
         "currency": rows[0][2], "total_amount": 0},
        {**base, "external_id": "created", "connection": rows[1][0], "invoice_id": rows[1][1],
         "currency": rows[1][2], "total_amount": 100},
    ])  # fmt: skip
    push(loaded, dry_run=True)
    assert cancel_queued(["never-sent"], database=str(loaded.path)).cancelled == ["never-sent"]
    assert push(loaded).outcomes == {"created": 1, "rejected": 1}
    result = cancel_queued(["rejected", "created", "nobody"], database=str(loaded.path))
    assert result.cancelled == ["rejected"] and not result.ok
    assert "'created'" in result.refused["created"] and "not queued" in result.refused["nobody"]
    queued = {r[0] for r in loaded.query(f"SELECT external_id FROM {DATASET}.outbound_payments")}
    assert queued == {"created"}
    states = ledger(loaded)
    assert states["never-sent"][0] == states["rejected"][0] == "cancelled" and states["created"][0] == "created"
    assert push(loaded).outcomes == {}  # nothing left to send, nothing sent twice
    assert created_in_api(sandbox, "never-sent") == created_in_api(sandbox, "rejected") == 0
    # a cancelled row back in the queue as it was (a stopped writer's rows carried over) stays cancelled; queued
    # anew after the cancel, it is a new intent and is sent
    queue(loaded, [{**base, "external_id": "never-sent", "connection": rows[0][0], "invoice_id": rows[0][1],
                    "currency": rows[0][2], "total_amount": 100, "queued_at": "2000-01-01T00:00:00Z"}])  # fmt: skip
    assert push(loaded).outcomes == {}
    with duckdb.connect(str(loaded.path)) as con:
        con.execute(f"UPDATE {DATASET}.outbound_payments SET queued_at = now() WHERE external_id = 'never-sent'")
    assert push(loaded).outcomes == {"created": 1}


def test_the_cancel_command_says_what_it_refused(loaded, sandbox, tmp_path):
    queue(loaded, [{"external_id": "x-1", "connection": "acme-eu", "currency": "EUR", "total_amount": 5}])
    env = cli_env(sandbox, loaded.path, tmp_path)
    process = _cli(["push", "--database", str(loaded.path), "--cancel", "x-1,x-2"], env)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 1, err
    assert "cancelled x-1" in out and "refused   x-2: not queued" in out


# -- bank files as banks write them ----------------------------------------------------------------------------
def test_a_bank_csv_with_invoice_numbers_and_major_units_is_created_once_in_exact_minor_units(
    loaded, sandbox, tmp_path
):
    (c1, id1, cur1, _, num1), (_, id2, _, _, _) = _bank_rows(loaded, 2)
    shared = loaded.query(
        f"SELECT number FROM {DATASET}.invoices WHERE connection = ? AND deleted_at IS NULL GROUP BY number "
        "HAVING count(*) > 1 LIMIT 1", c1,
    )  # fmt: skip
    duplicate = shared[0][0] if shared else None
    if duplicate is None:  # make one: two loaded invoices of one connection sharing a number
        other = loaded.scalar(f"SELECT id FROM {DATASET}.invoices WHERE connection = ? AND id <> ? LIMIT 1", c1, id1)
        with duckdb.connect(str(loaded.path)) as con:
            con.execute(f"UPDATE {DATASET}.invoices SET number = 'TWICE' WHERE id IN (?, ?)", [other, id2])
        duplicate = "TWICE"
    csv = tmp_path / "bank-export.csv"
    csv.write_text(
        "external_id,connection,invoice_number,currency,amount,transaction_date\n"
        f"bank-1,{c1},{num1},{cur1},1.25,2026-11-20\n"
        f'bank-2,{c1},{num1},{cur1},"1,234.50",2026-11-20\n'  # a thousands separator: never guessed at
        f"bank-3,{c1},{num1},{cur1},0.125,2026-11-20\n"  # more decimals than the currency has: never rounded
        f"bank-4,{c1},NO-SUCH-NUMBER,{cur1},1.00,2026-11-20\n"
        f"bank-5,{c1},{duplicate},{cur1},1.00,2026-11-20\n"
        f"bank-6,{c1},{num1},,1.00,2026-11-20\n"  # major units need the currency
    )
    summary = push(loaded, from_csv=csv)
    assert summary.outcomes == {"created": 1}
    reasons = {r.external_id: (r.column, r.reason) for r in summary.import_rejects}
    assert set(reasons) == {"bank-2", "bank-3", "bank-4", "bank-5", "bank-6"}
    assert reasons["bank-2"][0] == "amount" and "plain decimal" in reasons["bank-2"][1]
    assert "never rounded" in reasons["bank-3"][1]
    assert "no loaded invoice" in reasons["bank-4"][1] and "are numbered" in reasons["bank-5"][1]
    assert "currency" in reasons["bank-6"][1]
    created = [
        r for r in sandbox.store.all(c1, "payments") if r.get("field_mappings", {}).get("external_id") == "bank-1"
    ]
    assert len(created) == 1
    exponent = minor_unit_exponent(cur1)
    assert created[0]["total_amount"] == 125 * 10**exponent // 100  # 1.25 in minor units, exactly
    assert loaded.scalar(f"SELECT invoice_id FROM {DATASET}.outbound_payments WHERE external_id = 'bank-1'") == id1
    push(loaded, from_csv=csv)  # the same file again: nothing sent twice
    assert created_in_api(sandbox, "bank-1") == 1
    both = tmp_path / "both-columns.csv"
    both.write_text(
        "external_id,connection,invoice_id,invoice_number,currency,amount,total_amount,transaction_date\n"
        f"b-ok,{c1},{id1},{num1},{cur1},1.00,{10**exponent},2026-11-20\n"
        f"b-ids,{c1},{id2},{num1},{cur1},1.00,,2026-11-20\n"
        f"b-amounts,{c1},{id1},,{cur1},1.00,{10**exponent + 1},2026-11-20\n"
    )
    summary = push(loaded, from_csv=both, dry_run=True)
    assert {r.external_id for r in summary.import_rejects} == {"b-ids", "b-amounts"}
    assert summary.outcomes == {"would create": 1}


def test_a_bank_file_imported_again_with_a_sent_row_changed_keeps_what_was_sent(loaded, sandbox, tmp_path):
    (c1, _, cur1, _, num1), *_ = _bank_rows(loaded, 1)
    exponent = minor_unit_exponent(cur1)
    header = "external_id,connection,invoice_number,currency,amount,transaction_date\n"
    first = tmp_path / "bank-monday.csv"
    first.write_text(
        header + f"sent,{c1},{num1},{cur1},1.00,2026-11-20\n" + f"refused,{c1},{num1},{cur1},0,2026-11-20\n"
    )
    assert push(loaded, from_csv=first).outcomes == {"created": 1, "rejected": 1}
    queued_before = loaded.query(f"SELECT * FROM {DATASET}.outbound_payments WHERE external_id = 'sent'")
    again = tmp_path / "bank-monday-corrected.csv"
    again.write_text(
        header
        + f"sent,{c1},{num1},{cur1},2.00,2026-11-20\n"  # sent already: a new amount would not reach the provider
        + f"refused,{c1},{num1},{cur1},1.00,2026-11-20\n"  # refused by validation: correcting it is a new intent
        + f"new,{c1},{num1},{cur1},1.00,2026-11-21\n"
    )
    for dry_run in (True, False):
        summary = push(loaded, from_csv=again, dry_run=dry_run)
        (reject,) = summary.import_rejects
        assert (reject.external_id, reject.row, reject.column) == ("sent", 2, "amount"), reject
        assert f"{10**exponent}" in reject.reason and "'created'" not in reject.reason and "created" in reject.reason
        assert not summary.ok
        assert summary.outcomes == ({"would create": 2} if dry_run else {"created": 2})
        assert loaded.query(f"SELECT * FROM {DATASET}.outbound_payments WHERE external_id = 'sent'") == queued_before
    assert ledger(loaded)["sent"][0] == "created"
    assert created_in_api(sandbox, "sent") == created_in_api(sandbox, "refused") == created_in_api(sandbox, "new") == 1
    # the first file again, as a bank re-exports it (the currency's case, padding): the same row, no reject
    first.write_text(first.read_text().replace(f",{cur1},", f", {cur1.lower()} ,"))
    assert not [r for r in push(loaded, from_csv=first).import_rejects if r.external_id == "sent"]
    assert created_in_api(sandbox, "sent") == 1
    assert loaded.query(f"SELECT * FROM {DATASET}.outbound_payments WHERE external_id = 'sent'") == queued_before


# -- a row queued while a load runs ----------------------------------------------------------------------------
def test_a_row_queued_while_a_load_runs_is_neither_lost_nor_sent_twice(loaded, sandbox, tmp_path):
    (connection, invoice_id, currency, _, _), (c2, id2, cur2, _, _) = _bank_rows(loaded, 2)
    env = cli_env(sandbox, loaded.path, tmp_path)
    sandbox.settings.delay_seconds = 0.2  # the fetch outlasts the write below (some 30 pages to go: 6 s)
    sandbox.store.touch_all("acme-eu", "invoices")
    sandbox.store.update("acme-eu", "invoices", sandbox.store.all("acme-eu", "invoices")[0]["id"], memo="new")
    load = _cli(["load"], env)  # a load that writes, then builds the models

    def queue_through_the_rule(external_id: str, row: tuple) -> None:
        with writing(database=loaded.path) as con:
            con.execute(
                f"INSERT INTO {DATASET}.outbound_payments (external_id, connection, invoice_id, currency, "
                "total_amount, transaction_date) VALUES (?, ?, ?, ?, 100, '2026-11-20')",
                [external_id, *row[:3]],
            )

    # while it fetches, a write through the rule goes into the file at once; the load's copy, made after, has it
    deadline = time.monotonic() + 60
    while sandbox.stats.snapshot()["total_requests"] < 3:
        assert time.monotonic() < deadline and load.poll() is None
        time.sleep(0.01)
    queue_through_the_rule("during-fetch", (connection, invoice_id, currency))
    assert load.poll() is None, "the load ended before it wrote: the test proves nothing"
    sandbox.settings.delay_seconds = 0.02
    # while it writes, a plain INSERT is refused where it is tried; through the rule it waits its turn
    work = DuckDBFile(loaded.path).work_dir
    while not work.exists():
        assert time.monotonic() < deadline and load.poll() is None, load.communicate()[1]
        time.sleep(0.005)
    with pytest.raises(duckdb.IOException, match="lock"):
        queue(loaded, [{"external_id": "refused", "connection": c2, "currency": cur2, "total_amount": 1}])
    queue_through_the_rule("during-write", (c2, id2, cur2))
    code, err = _done(load)
    assert code == 0, err
    queued = {r[0] for r in loaded.query(f"SELECT external_id FROM {DATASET}.outbound_payments")}
    assert queued == {"during-fetch", "during-write"}
    assert push(loaded).outcomes == {"created": 2}
    assert push(loaded).outcomes == {}
    assert created_in_api(sandbox, "during-fetch") == created_in_api(sandbox, "during-write") == 1


# -- a pushed payment the provider has not reflected yet ---------------------------------------------------------
def test_an_invoice_waiting_for_the_provider_to_reflect_a_pushed_payment_is_awaiting_sync(loaded, sandbox):
    (connection, invoice_id, currency, open_minor, _), (c2, id2, _, _, _) = _bank_rows(loaded, 2)
    amount = min(open_minor, 100)
    queue(loaded, [{"external_id": "bank-ours", "connection": connection, "invoice_id": invoice_id,
                    "currency": currency, "total_amount": amount, "transaction_date": "2026-11-20"}])  # fmt: skip
    assert push(loaded).outcomes == {"created": 1}
    # another invoice's balance is wrong for a reason of its own: that one stays a mismatch
    balance = next(i for i in sandbox.store.all(c2, "invoices") if i["id"] == id2).get("balance") or 0
    sandbox.store.update(c2, "invoices", id2, balance=balance + 7)
    loaded.load(transform=True)  # the payment is listed; the invoice's balance is not updated yet
    status = dict(loaded.query(f"SELECT invoice_id, status FROM {M}.accounting__invoice_settlement "
                               "WHERE invoice_id IN (?, ?)", invoice_id, id2))  # fmt: skip
    assert status == {invoice_id: "awaiting_sync", id2: "balance_mismatch"}
    waits = loaded.scalar(f"SELECT awaiting FROM {M}.accounting__awaiting_sync WHERE invoice_id = ?", invoice_id)
    assert "bank-ours" in waits and "balance" in waits
    # the books the day before the payment: it was not on them, so nothing awaits it, and the balance then is the
    # one the applications give (the rebuild alone would add back a payment the provider has not taken off yet)
    transform_database(str(loaded.path), as_of=date(2026, 11, 19))
    then = {r[0]: r[1:] for r in loaded.query(
        f"SELECT invoice_id, status, reported_balance_minor, greatest(expected_balance_minor, 0) "
        f"FROM {M}.accounting__invoice_settlement WHERE invoice_id IN (?, ?)", invoice_id, id2)}  # fmt: skip
    assert then[invoice_id][0] in ("unpaid", "partially_paid") and then[invoice_id][1] == then[invoice_id][2]
    assert then[id2][0] == "balance_mismatch"  # a balance wrong for its own reason is wrong on any date
    # the provider's sync catches up: the balance reflects it, and the invoice is what it is
    current = next(i for i in sandbox.store.all(connection, "invoices") if i["id"] == invoice_id).get("balance") or 0
    sandbox.store.update(connection, "invoices", invoice_id, balance=current - amount)
    loaded.load(transform=True)
    settled = loaded.scalar(f"SELECT status FROM {M}.accounting__invoice_settlement WHERE invoice_id = ?", invoice_id)
    assert settled in ("partially_paid", "settled")
