"""Full and repeated loads from the Panora sandbox over HTTP into DuckDB: counts, types, merges, deletions."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tests.support import DATA_TABLES, DATASET

ALIASES = ("acme-eu", "acme-us", "globex-jp")


def expected_counts(store) -> dict[str, int]:
    """Row counts of a first load, computed straight from the sandbox's records, independent of the client's
    code."""
    counts = dict.fromkeys(DATA_TABLES, 0)
    for alias in ALIASES:
        payments = store.all(alias, "payments")
        invoices = store.all(alias, "invoices")
        counts["payments"] += len(payments)
        counts["payments__line_items"] += sum(len(p["line_items"]) for p in payments)
        counts["payments__tracking_categories"] += sum(len(p["tracking_categories"]) for p in payments)
        counts["invoices"] += len(invoices)
        counts["invoices__line_items"] += sum(len(i["line_items"]) for i in invoices)
        counts["invoices__tracking_categories"] += sum(len(i["tracking_categories"]) for i in invoices)
        counts["invoices__line_items__tracking_categories"] += sum(
            len(li["acc_tracking_categories"]) for i in invoices for li in i["line_items"]
        )
        counts["tracking_categories"] += len(store.all(alias, "trackingcategories"))
        counts["contacts"] += len(store.all(alias, "contacts"))
    # a first load: each record's first version
    for table in ("invoices", "payments", "payments__line_items"):
        counts[f"{table}_history"] = counts[table]
    return counts


def test_full_load_matches_the_api_row_for_row(warehouse, sandbox):
    summary = warehouse.load()

    assert summary.status == "ok"
    expected = expected_counts(sandbox.store)
    assert {t: warehouse.count(t) for t in DATA_TABLES} == expected
    assert summary.rows_per_table == expected
    for table in ("payments", "invoices", "tracking_categories"):
        assert warehouse.query(f"SELECT DISTINCT connection FROM {DATASET}.{table} ORDER BY 1") == [
            (a,) for a in sorted(ALIASES)
        ]
        assert warehouse.scalar(f"SELECT count(DISTINCT id) = count(*) FROM {DATASET}.{table}")


def test_values_are_typed_and_zero_amounts_are_null(warehouse, sandbox):
    warehouse.load()
    invoice = next(i for i in sandbox.store.all("acme-eu", "invoices") if i["total_tax_amount"] == 0)
    row = warehouse.query(
        f"SELECT total_amount, total_tax_amount, sub_total, exchange_rate, issue_date, currency, provider "
        f"FROM {DATASET}.invoices WHERE id = ?",
        invoice["id"],
    )[0]
    assert row[0] == invoice["total_amount"] and isinstance(row[0], int)
    assert row[1] is None  # the server dropped the 0: absent stays NULL, the transforms decide
    assert row[2] == invoice["sub_total"]
    assert row[3] == Decimal(invoice["exchange_rate"])
    assert row[4] == datetime.fromisoformat(invoice["issue_date"]).astimezone(UTC)
    assert row[5:] == (invoice["currency"], "panora")
    types = dict(
        warehouse.query(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
            DATASET,
            "payments",
        )
    )
    assert types["total_amount"] == "BIGINT"
    assert types["transaction_date"] == "TIMESTAMP WITH TIME ZONE"
    assert types["field_mappings"] == "JSON"
    assert types["exchange_rate"].startswith("DECIMAL")


def test_contacts_are_loaded_and_invoices_say_their_kind(warehouse, sandbox):
    warehouse.load()
    for alias in ALIASES:
        contacts = sandbox.store.all(alias, "contacts")
        loaded = warehouse.query(
            f"SELECT id, name, is_customer, is_supplier, email_address, currency FROM {DATASET}.contacts "
            f"WHERE connection = ? ORDER BY id",
            alias,
        )
        assert loaded == sorted(
            (c["id"], c["name"], c["is_customer"], c["is_supplier"], c["email_address"], c["currency"])
            for c in contacts
        )
        kinds = dict(warehouse.query(f"SELECT id, kind FROM {DATASET}.invoices WHERE connection = ?", alias))
        expected = {
            i["id"]: "payable" if i["type"] == "ACCPAY" else "receivable" for i in sandbox.store.all(alias, "invoices")
        }
        assert kinds == expected and "payable" in kinds.values()


def test_child_tables_carry_plain_foreign_keys(warehouse, sandbox):
    warehouse.load()
    invoice = next(i for i in sandbox.store.all("acme-us", "invoices") if len(i["line_items"]) > 1)
    lines = warehouse.query(
        f"SELECT line_index, description, unit_price, quantity, total_amount, item_id "
        f"FROM {DATASET}.invoices__line_items WHERE invoice_id = ? ORDER BY line_index",
        invoice["id"],
    )
    assert lines == [
        (n, li["description"], li["unit_price"], li["quantity"], li["total_amount"], li["id_acc_item"])
        for n, li in enumerate(invoice["line_items"])
    ]
    joined = warehouse.query(
        f"SELECT t.tracking_category_id, c.name FROM {DATASET}.invoices__line_items__tracking_categories t "
        f"JOIN {DATASET}.tracking_categories c ON c.id = t.tracking_category_id "
        f"WHERE t.invoice_id = ? ORDER BY t.line_index, t.position",
        invoice["id"],
    )
    names = {c["id"]: c["name"] for c in sandbox.store.all("acme-us", "trackingcategories")}
    assert joined == [(tc, names[tc]) for li in invoice["line_items"] for tc in li["acc_tracking_categories"]]
    orphans = warehouse.scalar(
        f"SELECT count(*) FROM {DATASET}.payments__line_items l "
        f"LEFT JOIN {DATASET}.payments p ON p.id = l.payment_id WHERE p.id IS NULL"
    )
    assert orphans == 0


def test_second_load_updates_replaces_children_and_marks_deletions(warehouse, sandbox):
    store = sandbox.store
    warehouse.load()
    first_load = warehouse.scalar(f"SELECT max(_dlt_load_id) FROM {DATASET}.payments")
    invoices = [i for i in store.all("acme-eu", "invoices") if len(i["line_items"]) >= 2]
    changed, shrunk, emptied = invoices[0], invoices[1], invoices[2]
    gone = store.all("acme-us", "payments")[5]
    untouched = store.all("globex-jp", "payments")[0]

    store.update("acme-eu", "invoices", changed["id"], memo="Revised terms", balance=0, status="PAID")
    store.update("acme-eu", "invoices", shrunk["id"], line_items=shrunk["line_items"][:1])
    store.update("acme-eu", "invoices", emptied["id"], line_items=[], tracking_categories=[])
    store.delete("acme-us", "payments", gone["id"])
    for alias in ALIASES:  # the server's 8-hourly sync: new modified_at everywhere, nothing else
        store.touch_all(alias, "payments")
    summary = warehouse.load()

    assert summary.status == "ok"
    memo, balance, status = warehouse.query(
        f"SELECT memo, balance, status FROM {DATASET}.invoices WHERE id = ?", changed["id"]
    )[0]
    assert (memo, balance, status) == ("Revised terms", None, "PAID")
    assert warehouse.count("invoices__line_items", "invoice_id = ?", shrunk["id"]) == 1
    assert warehouse.count("invoices__line_items", "invoice_id = ?", emptied["id"]) == 0
    assert warehouse.count("invoices__tracking_categories", "invoice_id = ?", emptied["id"]) == 0
    assert warehouse.count("invoices__line_items__tracking_categories", "invoice_id = ?", emptied["id"]) == 0
    # the deleted payment is kept, marked; its children stay reachable
    deleted_at, amount = warehouse.query(
        f"SELECT deleted_at, total_amount FROM {DATASET}.payments WHERE id = ?", gone["id"]
    )[0]
    assert deleted_at is not None and amount == gone["total_amount"]
    assert warehouse.count("payments", "deleted_at IS NOT NULL") == 1
    # unchanged content (only modified_at moved) is not rewritten
    assert warehouse.scalar(f"SELECT _dlt_load_id FROM {DATASET}.payments WHERE id = ?", untouched["id"]) == first_load
    payments_written = summary.rows_per_table.get("payments", 0)
    assert payments_written == 1  # the tombstone only
    assert warehouse.count("invoices") == 150 and warehouse.count("payments") == 200


def test_a_record_that_comes_back_is_undeleted(warehouse, sandbox):
    store = sandbox.store
    warehouse.load()
    payment = store.all("acme-eu", "payments")[0]
    store.delete("acme-eu", "payments", payment["id"])
    warehouse.load()
    assert warehouse.scalar(f"SELECT deleted_at IS NOT NULL FROM {DATASET}.payments WHERE id = ?", payment["id"])
    store.insert("acme-eu", "payments", payment)
    warehouse.load()
    assert warehouse.scalar(f"SELECT deleted_at IS NULL FROM {DATASET}.payments WHERE id = ?", payment["id"])


def test_nothing_changed_means_nothing_written(warehouse):
    warehouse.load()
    before = warehouse.snapshot(DATA_TABLES)
    summary = warehouse.load()
    assert summary.rows_per_table == {}
    assert warehouse.snapshot(DATA_TABLES) == before
    assert summary.scans and all(s.unchanged == s.records for s in summary.scans)


def test_selected_connections_and_resources_only(warehouse, sandbox):
    summary = warehouse.load(only_connections=["acme-eu"], resources=["payments"])
    assert summary.status == "ok"
    assert warehouse.query(f"SELECT DISTINCT connection FROM {DATASET}.payments") == [("acme-eu",)]
    assert "invoices" not in warehouse.tables()
    # a load of one connection never marks another connection's rows deleted
    warehouse.load(only_connections=["acme-us"], resources=["payments"])
    sandbox.store.delete("acme-eu", "payments", sandbox.store.all("acme-eu", "payments")[0]["id"])
    warehouse.load(only_connections=["acme-us"], resources=["payments"])
    assert warehouse.count("payments", "deleted_at IS NOT NULL") == 0


def test_every_run_is_recorded(warehouse, sandbox):
    first = warehouse.load()
    second = warehouse.load(resources=["tracking_categories"])
    runs = warehouse.query(
        f"SELECT run_id, status, requests, retries, rows_loaded, connections, duration_seconds "
        f"FROM {DATASET}.load_runs ORDER BY started_at"
    )
    assert [r[0] for r in runs] == [first.run_id, second.run_id]
    assert runs[0][1:6] == ("ok", first.requests["requests"], 0, sum(first.rows_per_table.values()), 3)
    assert runs[0][2] == sandbox.stats.snapshot()["total_requests"] - 3  # the second run made 3 requests
    tables = dict(
        warehouse.query(f"SELECT table_name, rows FROM {DATASET}.load_run_tables WHERE run_id = ?", first.run_id)
    )
    assert tables == first.rows_per_table
    scans = warehouse.query(
        f"SELECT resource, connection, status, records FROM {DATASET}.load_run_scans WHERE run_id = ? ORDER BY 1, 2",
        first.run_id,
    )
    assert len(scans) == 12 and all(s[2] == "complete" for s in scans)  # 4 resources, 3 connections
    text = first.render()
    assert "load ok" in text and "requests" in text and "payments" in text


def test_a_failing_model_is_reported_and_does_not_undo_the_load(warehouse, monkeypatch):
    from pipelines.transform import transform_database

    def broken(*args, **kwargs):
        raise RuntimeError("Binder Error: column nope not found")

    monkeypatch.setattr("pipelines.load.build_models", broken)
    summary = warehouse.load(transform=True)
    assert summary.status == "ok" and warehouse.count("payments") == 200
    assert "models failed" in summary.models_error and "nope" in summary.render()
    stored = warehouse.query(f"SELECT status, models_error FROM {DATASET}.load_runs WHERE run_id = ?", summary.run_id)
    assert stored == [("ok", summary.models_error)]  # the run says so, and its data stays
    assert f"{DATASET}_reconciliation" not in {
        r[0] for r in warehouse.query("SELECT schema_name FROM information_schema.schemata")
    }
    monkeypatch.undo()
    result = transform_database(str(warehouse.path))  # once fixed, the models build from the loaded data
    assert not result.skipped and result.rows["accounting__invoice_settlement"] > 0


def test_a_second_load_of_the_same_pipeline_is_refused_while_one_runs(warehouse, sandbox):
    import fcntl

    from pipelines.warehouse.locks import AlreadyRunning

    warehouse.load(resources=["tracking_categories"])
    # the lock belongs to the warehouse, beside its file, not to dlt's pipeline folder
    lock_file = warehouse.path.parent / f".{warehouse.path.name}.etl" / "load-test_panora.lock"
    assert lock_file.exists()
    with open(lock_file, "a+") as held:  # another process holding it: flock locks are per open file
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.seek(0)
        held.truncate()
        held.write("4242\ta load of pipeline 'test_panora'")
        held.flush()
        with pytest.raises(AlreadyRunning, match=r"a load of pipeline 'test_panora' \(process 4242\) is running"):
            warehouse.load()
    assert warehouse.load().status == "ok"  # released: the next run goes ahead
