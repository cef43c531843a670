"""Records no reader expected, served over HTTP by both sandboxes: each one is either loaded or rejected by
record and field, the rest of its page and every other connection load, and the run ends normally."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import dlt

from sources.panora.objects import OBJECTS as PANORA_OBJECTS
from tests.support import DATASET, Warehouse

# (what the payment carries, the field the rejection names, words of the reason)
PANORA_HOSTILE = {
    "amount_beyond_int64": ({"total_amount": 10**20}, "total_amount", "64-bit"),
    "amount_as_float_beyond_int64": ({"total_amount": 1e20}, "total_amount", "64-bit"),
    "amount_nan": ({"total_amount": float("nan")}, "total_amount", "integer"),
    "amount_infinite": ({"total_amount": float("inf")}, "total_amount", "integer"),
    "unknown_field_beyond_int64": ({"settlement_total": 2**70}, "settlement_total", "beyond"),
    "timestamp_before_year_1_in_utc": ({"transaction_date": "0001-01-01T00:00:00+01:00"}, "transaction_date", "years"),
    "timestamp_after_year_9999_in_utc": ({"created_at": "9999-12-31T23:00:00-02:00"}, "created_at", "years"),
    "exchange_rate_beyond_decimal_38": ({"exchange_rate": "1e70"}, "exchange_rate", "out of range"),
    "unknown_field_named_like_a_column": ({"TotalAmount": 5}, "TotalAmount", "total_amount"),
    "unknown_field_named_like_currency": ({"Currency": "EUR"}, "Currency", "currency"),
    "two_unknown_fields_one_column": ({"Ref No": "a", "ref-no": "b"}, "ref-no", "ref_no"),
    "unknown_field_named_like_dlt": ({"_dlt_load_id": "x"}, "_dlt_load_id", "dlt"),
    "line_amount_beyond_int64": ({"line_items": [{"applied_amount": 10**20}]}, "line_items[0].applied_amount", "64"),
    "text_with_nul": ({"type": "bank\u0000transfer"}, "type", "NUL"),
    "unknown_json_with_nul": ({"notes": {"a": "x\u0000y"}}, "notes", "NUL"),
    "text_no_column_can_hold": ({"note": "\ud800"}, "note", "surrogate"),  # an unpaired surrogate
    "json_holding_the_text_backslash_u0000": ({"notes": {"path": "C:\\u0000"}}, None, None),  # no NUL in it
    "nested_deeper_than_a_fast_parser_goes": ({"deep": json.loads("[" * 300 + "]" * 300)}, None, None),
}


def test_each_hostile_panora_value_is_rejected_by_field_and_everything_else_loads(warehouse, sandbox):
    """Every case at once, each in a payment of its own (one load: a case is one record among ordinary ones)."""
    payments = sandbox.store.all("acme-eu", "payments")
    victims = {}
    for number, (case, (fields, _, _)) in enumerate(PANORA_HOSTILE.items()):
        victims[case] = payments[3 + 4 * number]["id"]  # spread over the pages of 15
        sandbox.store.update("acme-eu", "payments", victims[case], **fields)

    summary = warehouse.load(resources=["payments"])

    assert summary.status == "ok" and not summary.failed_scans
    rejected = {r[0]: r[1:] for r in warehouse.query(f"SELECT record_id, field, error FROM {DATASET}.rejected_records")}
    loads_as_it_came = {case for case, (_, field, _) in PANORA_HOSTILE.items() if field is None}
    for case, (_, field, words) in PANORA_HOSTILE.items():
        if case in loads_as_it_came:
            assert victims[case] not in rejected and warehouse.count("payments", "id = ?", victims[case]) == 1
            continue
        assert victims[case] in rejected, case
        got_field, error = rejected[victims[case]]
        assert got_field == field and words in error, (case, got_field, error)
        assert warehouse.count("payments", "id = ?", victims[case]) == 0, case
    assert len(rejected) == len(PANORA_HOSTILE) - len(loads_as_it_came)
    total = sum(sandbox.store.count(alias, "payments") for alias in sandbox.store.tokens())
    assert warehouse.count("payments") == total - len(rejected)


def test_an_unknown_field_keeps_one_type_across_pages_runs_and_providers(both, sandbox, rootfi):
    store = sandbox.store
    pays = store.all("acme-eu", "payments")  # pages of 15: these land on different pages
    store.update("acme-eu", "payments", pays[0]["id"], ref=5, rate=1.5, flag=True)
    store.update("acme-eu", "payments", pays[20]["id"], ref="abc", rate=2, flag=False)
    store.update("acme-eu", "payments", pays[40]["id"], ref=7.0, rate="x")
    store.update("acme-eu", "payments", pays[41]["id"], ref=5.5)
    store.update("acme-eu", "payments", pays[42]["id"], flag=1)
    first = both.load(resources=["payments"], transform=False)
    assert first.status == "ok"
    rejected = dict(both.query(f"SELECT record_id, field FROM {DATASET}.rejected_records"))
    assert rejected == {
        pays[20]["id"]: "ref",
        pays[40]["id"]: "rate",
        pays[41]["id"]: "ref",
        pays[42]["id"]: "flag",
    }
    assert both.query(f"SELECT ref, rate, flag FROM {DATASET}.payments WHERE id = ?", pays[20]["id"]) == []
    assert both.query(f"SELECT ref, rate, flag FROM {DATASET}.payments WHERE id = ?", pays[0]["id"]) == [(5, 1.5, True)]
    types = dict(
        both.query(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? "
            "AND table_name = 'payments' AND column_name IN ('ref', 'rate', 'flag')",
            DATASET,
        )
    )
    assert types == {"ref": "BIGINT", "rate": "DOUBLE", "flag": "BOOLEAN"}

    # the next run, and another provider's pipeline, meet the stored types
    store.update("acme-eu", "payments", pays[2]["id"], ref="zzz")
    payment = rootfi.store.all("northwind-uk", "invoice_payments")[0]
    rootfi.store.update("northwind-uk", "invoice_payments", payment["platform_id"], ref="text", rate=3)
    assert both.load(resources=["payments"], transform=False).status == "ok"
    assert both.load_rootfi(resources=["payments"], transform=False).status == "ok"
    assert both.scalar(f"SELECT field FROM {DATASET}.rejected_records WHERE record_id = ?", pays[2]["id"]) == "ref"
    rootfi_key = f"rootfi:4101:{payment['platform_id']}"
    assert both.scalar(f"SELECT field FROM {DATASET}.rejected_records WHERE record_id = ?", rootfi_key) == "ref"
    assert (
        both.count("payments", "provider = 'rootfi'")
        == sum(len(rootfi.store.all(alias, "invoice_payments")) for alias in rootfi.store.company_ids()) - 1
    )


ROOTFI_HOSTILE = {
    "amount_of_a_million_digits": ({"amount": "1e999999"}, "amount", "64-bit"),
    "amount_beyond_int64": ({"amount": 10**20}, "amount", "64-bit"),
    "currency_without_minor_unit": ({"currency_id": "XAU"}, "currency_id", "minor unit"),
    "reference_that_is_an_object": ({"invoice_id": {"id": 1}}, "invoice_id", "expected an id"),
    "unknown_field_named_like_a_column": ({"Currency": "EUR"}, "Currency", "currency"),
}


def test_each_hostile_rootfi_value_is_rejected_by_field_and_everything_else_loads(both, rootfi):
    payments = rootfi.store.all("initech-us", "invoice_payments")
    victims = {}
    for number, (case, (fields, _, _)) in enumerate(ROOTFI_HOSTILE.items()):
        victim = payments[1 + 3 * number]["platform_id"]
        rootfi.store.update("initech-us", "invoice_payments", victim, **fields)
        victims[case] = f"rootfi:4102:{victim}"

    summary = both.load_rootfi(resources=["payments"], transform=False)

    assert summary.status == "ok"
    rejected = {r[0]: r[1:] for r in both.query(f"SELECT record_id, field, error FROM {DATASET}.rejected_records")}
    for case, (_, field, words) in ROOTFI_HOSTILE.items():
        got_field, error = rejected[victims[case]]
        assert got_field == field and words in error, (case, got_field, error)
    assert len(rejected) == len(ROOTFI_HOSTILE)
    total = sum(len(rootfi.store.all(alias, "invoice_payments")) for alias in rootfi.store.company_ids())
    assert both.count("payments") == total - len(ROOTFI_HOSTILE)


def positions(warehouse: Warehouse) -> dict[str, datetime]:
    pipeline = dlt.attach("test_rootfi", pipelines_dir=str(warehouse.pipelines_dir))
    state = pipeline.state["sources"]["rootfi"]["resources"]["payments"]["updated_since"]
    return {alias: datetime.fromisoformat(stamp) for alias, stamp in state.items()}


def test_a_future_or_rejected_rootfi_stamp_never_moves_the_position(both, rootfi):
    store = rootfi.store
    both.load_rootfi(resources=["payments"], transform=False)
    before = positions(both)

    good, bad, future = store.all("northwind-uk", "invoice_payments")[:3]
    store.update("northwind-uk", "invoice_payments", good["platform_id"], memo="changed")
    store.update("northwind-uk", "invoice_payments", bad["platform_id"], amount="not money")
    store.update("northwind-uk", "invoice_payments", future["platform_id"], memo="from the future")
    ahead = datetime.now(UTC) + timedelta(days=400)
    record = store.find("northwind-uk", "invoice_payments", future["platform_id"])
    record["rootfi_updated_at"] = ahead.strftime("%Y-%m-%dT%H:%M:%S.000+00:00")  # an offset, not `Z`
    good_stamp = datetime.fromisoformat(
        store.find("northwind-uk", "invoice_payments", good["platform_id"])["rootfi_updated_at"].replace("Z", "+00:00")
    )
    bad_stamp = datetime.fromisoformat(
        store.find("northwind-uk", "invoice_payments", bad["platform_id"])["rootfi_updated_at"].replace("Z", "+00:00")
    )
    assert before["northwind-uk"] < good_stamp < bad_stamp < ahead

    summary = both.load_rootfi(resources=["payments"], transform=False)

    assert summary.status == "ok"
    assert both.scalar(f"SELECT memo FROM {DATASET}.payments WHERE remote_id = ?", future["platform_id"]) == (
        "from the future"
    )  # the record itself loads; only the position ignores its stamp
    after = positions(both)
    assert after["northwind-uk"] == good_stamp  # not the rejected record's later stamp, nor the future one
    assert after["initech-us"] == before["initech-us"]


def test_an_unexpected_failure_fails_only_that_connections_scan(warehouse, sandbox, monkeypatch):
    from sources.common import scan

    real = scan.LoadedRecords.read

    def read(stored, table, connection, provider=None):
        if connection == "globex-jp" and table == "invoices":
            raise RuntimeError("the disk said no")
        return real(stored, table, connection, provider)

    monkeypatch.setattr(scan.LoadedRecords, "read", staticmethod(read))
    summary = warehouse.load()

    assert summary.status == "partial"
    failed = [(s.resource, s.connection) for s in summary.failed_scans]
    assert failed == [("invoices", "globex-jp")]
    assert "RuntimeError: the disk said no" in summary.failed_scans[0].error
    assert warehouse.count("invoices", "connection = 'globex-jp'") == 0
    for alias in sandbox.store.tokens():
        assert warehouse.count("payments", "connection = ?", alias) == sandbox.store.count(alias, "payments")
    assert (
        warehouse.scalar(
            f"SELECT count(*) FROM {DATASET}.load_run_scans WHERE status = 'failed' AND connection = 'globex-jp'"
        )
        == 1
    )
    # every resource of every connection was scanned and is in the summary, each complete but the one
    scans = {(s.resource, s.connection): s.status for s in summary.scans}
    assert set(scans) == {(resource, alias) for resource in PANORA_OBJECTS for alias in sandbox.store.tokens()}
    assert {key: status for key, status in scans.items() if status != "complete"} == {
        ("invoices", "globex-jp"): "failed"
    }
