"""History: every version of an invoice and a payment a load saw, kept by the load; the books read as the loads
knew them at a moment; the changes a load saw after a period was closed."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime
from typing import Any

import duckdb

from pipelines.models.build import Knowledge
from pipelines.transform import transform_database
from tests.integration.test_as_of import figures, later_payment
from tests.support import DATASET, Warehouse

MODELS = f"{DATASET}_reconciliation"
CLOSED_THROUGH = date(2026, 11, 15)  # after every seeded record (the sandbox's records end on 2026-11-01)
LATER = "2026-11-20T10:00:00.000Z"  # after the close
BACKDATED = "2026-10-20T10:00:00.000Z"  # in the closed period


def row_of(warehouse: Warehouse, table: str, record_id: str, where: str = "TRUE") -> dict[str, Any]:
    columns = [r[0] for r in warehouse.query(f"DESCRIBE {DATASET}.{table}") if r[0] != "_seen_at"]
    select = ", ".join(f'"{c}"' for c in columns)
    rows = warehouse.query(f"SELECT {select} FROM {DATASET}.{table} WHERE id = ? AND {where}", record_id)
    assert len(rows) == 1, (table, record_id, rows)
    return dict(zip(columns, rows[0], strict=True))


def edit_after_the_close(store: Any) -> dict[str, str]:
    """Upstream after the first load: an invoice of the closed period changes its amount, one is deleted, one
    is voided (a status change nothing explains), one is paid in full by a payment dated after the close (a
    status change that payment explains), and an invoice dated in the closed period is added. Every other
    record is rewritten by Panora's nightly sync (`modified_at` only)."""
    invoices = [i for i in store.all("acme-eu", "invoices") if i["type"] == "ACCREC"]
    open_ones = [i for i in invoices if i["status"] == "OPEN" and i["balance"] == i["total_amount"]]
    edited, deleted, voided, paid = open_ones[:4]
    store.touch_all("acme-eu", "invoices")
    store.touch_all("acme-eu", "payments")
    store.update("acme-eu", "invoices", edited["id"], total_amount=edited["total_amount"] + 1000,
                 balance=edited["balance"] + 1000)  # fmt: skip
    store.delete("acme-eu", "invoices", deleted["id"])
    store.update("acme-eu", "invoices", voided["id"], status="VOID")
    template = store.all("acme-eu", "payments")[0]
    store.insert("acme-eu", "payments", later_payment(template, paid, paid["balance"]))
    store.update("acme-eu", "invoices", paid["id"], balance=0, status="PAID", paid_on_date=LATER)
    new = copy.deepcopy(edited)
    for key in ("id", "created_at", "modified_at"):
        new.pop(key)
    new.update(number="ACME-EU-INV-BACKDATED", issue_date=BACKDATED, due_date=BACKDATED, remote_id=None)
    added = store.insert("acme-eu", "invoices", new)["id"]
    return {"edited": edited["id"], "deleted": deleted["id"], "voided": voided["id"], "paid": paid["id"],
            "added": added}  # fmt: skip


def test_history_keeps_what_the_first_load_saw_and_the_books_can_be_read_as_known_then(
    warehouse: Warehouse, sandbox, loaded_warehouses
) -> None:
    loaded_warehouses.copy_into(warehouse, "panora")  # the first load, its models built (the same seeded records)
    if warehouse.scalar(f"SELECT as_of FROM {MODELS}.accounting__model_run") != datetime.now(UTC).date():
        # built on an earlier day of the session: the builds below are as of today, with today's ages and close
        assert transform_database(str(warehouse.path), DATASET).error is None
    assert warehouse.count("invoices_history") == warehouse.count("invoices")
    built_first = figures(warehouse)
    between = datetime.now(UTC)
    ids = edit_after_the_close(sandbox.store)
    as_loaded_first = {key: row_of(warehouse, "invoices", record) for key, record in ids.items() if key != "added"}

    second = warehouse.load(transform=True)
    assert second.models and second.models_error is None
    # a version per content change, the deletion included; the nightly rewrite of modified_at makes none
    assert second.rows_per_table["invoices_history"] == 5  # edited, deleted, voided, paid, added
    assert second.rows_per_table["payments_history"] == 1
    versions = dict(
        warehouse.query(
            f"SELECT id, count(*) FROM {DATASET}.invoices_history WHERE id IN (?, ?, ?, ?, ?) GROUP BY id",
            *ids.values(),
        )
    )
    assert versions == {ids["added"]: 1, **{ids[k]: 2 for k in ("edited", "deleted", "voided", "paid")}}

    # the version the first load saw reads back exactly as the first load stored it
    for key, stored in as_loaded_first.items():
        assert row_of(warehouse, "invoices_history", ids[key], f"_seen_at < '{between.isoformat()}'") == stored, key
    assert row_of(warehouse, "invoices", ids["edited"])["total_amount"] == stored_total(as_loaded_first) + 1000
    deleted = row_of(warehouse, "invoices_history", ids["deleted"], "deleted_at IS NOT NULL")
    assert deleted["total_amount"] == as_loaded_first["deleted"]["total_amount"]

    # known now (the second load's build): the edits count
    assert figures(warehouse) != built_first
    settlement = dict(warehouse.query(f"SELECT invoice_id, total_minor FROM {MODELS}.accounting__invoice_settlement"))
    assert settlement[ids["edited"]] == stored_total(as_loaded_first) + 1000 and ids["deleted"] not in settlement
    # the default close (the month before today's, closed at its end) came before the first load: nothing
    assert warehouse.scalar(f"SELECT count(*) FROM {MODELS}.accounting__changed_after_close") == 0

    # the books as of today, as known before the second load: exactly the first build's figures
    known_then = transform_database(str(warehouse.path), DATASET, knowledge=Knowledge(known_at=between))
    assert known_then.error is None
    assert figures(warehouse) == built_first
    from_history = warehouse.query(
        f"SELECT invoice_id FROM {MODELS}.accounting__invoice_settlement WHERE version_seen_at IS NOT NULL"
    )
    # the records a later load changed are read as the first load saw them; the others are today's rows
    assert sorted(r[0] for r in from_history) == sorted(ids[k] for k in ("edited", "deleted", "voided", "paid"))

    # what a load after the close changed in the closed period; the payment after the close is not an edit
    close = Knowledge(closed_through=CLOSED_THROUGH, closed_at=between)
    assert transform_database(str(warehouse.path), DATASET, knowledge=close).error is None
    changes = warehouse.query(
        f"SELECT record_id, change, before_value, after_value FROM {MODELS}.accounting__changed_after_close"
    )
    assert sorted((record, change) for record, change, _, _ in changes) == sorted(
        [(ids["edited"], "amount"), (ids["deleted"], "deleted"), (ids["voided"], "status"), (ids["added"], "added")]
    )
    status = next(row for row in changes if row[1] == "status")
    assert status[2:] == ("OPEN", "VOID")


def stored_total(as_loaded_first: dict[str, dict[str, Any]]) -> int:
    return as_loaded_first["edited"]["total_amount"]


def test_a_warehouse_loaded_before_history_was_kept_starts_it_from_its_rows(warehouse: Warehouse, sandbox) -> None:
    """A warehouse without history tables (loaded by a version that kept none): the next load first takes the
    rows it holds as each record's first known version, seen by the load that wrote it, then adds its own."""
    assert warehouse.load(transform=False).status == "ok"
    with_history = warehouse.snapshot(["invoices_history", "payments_history", "payments__line_items_history"])
    with duckdb.connect(str(warehouse.path)) as con:
        for table in ("invoices_history", "payments_history", "payments__line_items_history"):
            con.execute(f"DROP TABLE {DATASET}.{table}")
    invoice = next(i for i in sandbox.store.all("acme-eu", "invoices") if i["type"] == "ACCREC")
    sandbox.store.update("acme-eu", "invoices", invoice["id"], total_amount=invoice["total_amount"] + 7)

    summary = warehouse.load(transform=True)
    assert summary.status == "ok" and summary.models_error is None
    assert summary.rows_per_table["invoices_history"] == 1
    started = warehouse.snapshot(["invoices_history", "payments_history", "payments__line_items_history"])
    assert started["payments_history"] == with_history["payments_history"]
    assert started["payments__line_items_history"] == with_history["payments__line_items_history"]
    assert len(started["invoices_history"]) == len(with_history["invoices_history"]) + 1
    # the started versions are dated by the load that wrote them, before the one that changed the invoice
    first_seen, latest = warehouse.query(
        f"SELECT min(_seen_at), max(_seen_at) FROM {DATASET}.invoices_history WHERE id = ?", invoice["id"]
    )[0]
    assert first_seen < latest
    totals = warehouse.query(
        f"SELECT total_minor FROM {MODELS}.stg_accounting__invoice_versions WHERE invoice_id = ? ORDER BY valid_from",
        invoice["id"],
    )
    assert totals == [(invoice["total_amount"],), (invoice["total_amount"] + 7,)]


def test_a_month_end_of_the_trend_reads_the_versions_known_at_that_month_end(warehouse: Warehouse, sandbox) -> None:
    """Two loads with edits between them, dated (by moving the loads' `_seen_at`) 20 October and 20 November:
    the trend's 31 October reads what the first load saw (the edited, deleted and voided invoices as they were,
    the backdated one not yet known), exactly as a `transform --as-of 2026-10-31` does; its 30 November reads
    today's rows. Rebuilt from today's rows alone, 31 October would differ by all four records."""
    assert warehouse.load(transform=False).status == "ok"
    between = datetime.now(UTC)
    edit_after_the_close(sandbox.store)
    assert warehouse.load(transform=False).status == "ok"
    with duckdb.connect(str(warehouse.path)) as con:
        for table in ("invoices_history", "payments_history", "payments__line_items_history"):
            con.execute(
                f"UPDATE {DATASET}.{table} SET _seen_at = CASE WHEN _seen_at < ? "
                "THEN TIMESTAMPTZ '2026-10-20 12:00:00+00' ELSE TIMESTAMPTZ '2026-11-20 12:00:00+00' END",
                [between],
            )
    assert transform_database(str(warehouse.path), DATASET, as_of=date(2026, 11, 30)).error is None
    trend = {
        (connection, currency, month_end): open_amount
        for connection, currency, month_end, open_amount in warehouse.query(
            f"SELECT connection, currency, month_end, open_amount FROM {MODELS}.accounting__receivables_trend"
        )
    }
    for month_end, read_from_history in ((date(2026, 10, 31), True), (date(2026, 11, 30), False)):
        assert transform_database(str(warehouse.path), DATASET, as_of=month_end).error is None
        versions = warehouse.scalar(
            f"SELECT count(*) FROM {MODELS}.accounting__invoice_settlement WHERE version_seen_at IS NOT NULL"
        )
        assert versions == (4 if read_from_history else 0), (month_end, versions)  # edited, deleted, voided, paid
        summary = warehouse.query(
            f"SELECT connection, currency, open_amount FROM {MODELS}.accounting__reconciliation_summary "
            "WHERE invoices > 0"
        )
        assert summary
        for connection, currency, open_amount in summary:
            assert trend[(connection, currency, month_end)] == open_amount, (connection, currency, month_end)
