"""Records the API sends wrong: each is reported with its table, id and field, and everything else loads."""

from __future__ import annotations

import json

from tests.support import DATASET

BAD_PAYMENTS = [
    ({"id": "bad-amount", "total_amount": "12.50", "currency": "EUR"}, "total_amount", "integer amount"),
    ({"id": "bad-fraction", "total_amount": 1250.5}, "total_amount", "integer amount"),
    ({"id": "bad-date", "transaction_date": "31/12/2025"}, "transaction_date", "malformed date-time"),
    ({"id": "bad-type", "currency": {"code": "EUR"}}, "currency", "expected text"),
    ({"id": "bad-line", "line_items": [{"applied_amount": "ten"}]}, "line_items[0].applied_amount", "integer"),
    ({"id": "bad-tracking", "tracking_categories": "not-a-list"}, "tracking_categories", "list of ids"),
    ({"currency": "EUR", "total_amount": 100}, "id", "missing"),
]


def test_bad_records_are_rejected_with_record_and_field_while_the_rest_loads(warehouse, sandbox):
    for record, _, _ in BAD_PAYMENTS:
        sandbox.store.insert("acme-eu", "payments", {**record, "id": record.get("id")})
    # the store gives a record without id one; make it really have none, as a broken server would send it
    no_id = sandbox.store.connections[sandbox.store.tokens()["acme-eu"]].tables["payments"].rows[-1]
    no_id.pop("id")
    no_id["id"] = None

    summary = warehouse.load(resources=["payments"], page_size=50)

    assert summary.status == "ok"
    assert warehouse.count("payments") == 200  # every good record, none of the bad ones
    rejected = warehouse.query(
        f"SELECT table_name, connection, record_id, field, error, record FROM {DATASET}.rejected_records "
        f"ORDER BY position"
    )
    assert len(rejected) == len(BAD_PAYMENTS)
    for (record, field, message), row in zip(BAD_PAYMENTS, rejected, strict=True):
        assert row[0:2] == ("payments", "acme-eu")
        assert row[2] == record.get("id")
        assert row[3] == field
        assert message in row[4]
        kept = json.loads(row[5])  # the record as it came, so nothing is lost
        assert kept.get("id") == record.get("id")
        assert all(kept[key] == value for key, value in record.items() if key != "id")
    assert sum(s.rejected for s in summary.scans) == len(BAD_PAYMENTS)
    assert warehouse.scalar(f"SELECT records_rejected FROM {DATASET}.load_runs") == len(BAD_PAYMENTS)


def test_a_rejected_record_keeps_its_last_good_version_and_is_never_marked_deleted(warehouse, sandbox):
    store = sandbox.store
    warehouse.load(resources=["payments"])
    payment = store.all("acme-us", "payments")[3]
    store.update("acme-us", "payments", payment["id"], total_amount="lots")

    summary = warehouse.load(resources=["payments"])

    assert (
        warehouse.scalar(f"SELECT total_amount FROM {DATASET}.payments WHERE id = ?", payment["id"])
        == payment["total_amount"]
    )
    assert warehouse.count("payments", "deleted_at IS NOT NULL") == 0
    assert warehouse.query(f"SELECT record_id, field FROM {DATASET}.rejected_records") == [
        (payment["id"], "total_amount")
    ]
    assert summary.rows_per_table == {"rejected_records": 1}

    store.update("acme-us", "payments", payment["id"], total_amount=4242)
    warehouse.load(resources=["payments"])
    assert warehouse.scalar(f"SELECT total_amount FROM {DATASET}.payments WHERE id = ?", payment["id"]) == 4242


def test_a_new_field_becomes_a_column_not_an_error(warehouse, sandbox):
    sandbox.store.insert("globex-jp", "payments", {"id": "p-new-field", "total_amount": 500, "settlement_ref": "X9"})
    warehouse.load(resources=["payments"])
    assert warehouse.scalar(f"SELECT settlement_ref FROM {DATASET}.payments WHERE id = 'p-new-field'") == "X9"
    assert "rejected_records" not in warehouse.tables()
