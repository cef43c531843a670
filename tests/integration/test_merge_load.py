"""Merge into the warehouse over real HTTP: the unified tables exactly (minor units per currency), incremental
loads with `modified_after`, deletions, the scheduled complete scan, and values rejected by field."""

from __future__ import annotations

from decimal import Decimal

import httpx
import iso4217

from sandbox.http import Fault
from sandbox.merge import MergeSandbox
from tests.support import DATA_TABLES, DATASET, PACED_WINDOW_SECONDS, Warehouse


def minor(amount: float | int | str, currency: str) -> int:
    """What the warehouse must hold for a Merge amount (major units): exact minor units by ISO 4217."""
    return int(Decimal(str(amount)).scaleb(iso4217.Currency(currency).exponent))


def load(warehouse: Warehouse, merge: MergeSandbox, **kwargs):
    return warehouse.load_from("merge", merge, **kwargs)


def test_full_load_lands_in_the_unified_tables_exactly(warehouse: Warehouse, merge: MergeSandbox) -> None:
    store = merge.store
    summary = load(warehouse, merge)
    assert summary.status == "ok", [s.error for s in summary.failed_scans]
    with warehouse.reading() as read:  # one connection for every row's check
        for alias in store.aliases:
            invoices, payments = store.all(alias, "invoices"), store.all(alias, "payments")
            assert read.count("invoices", "connection = ? AND provider = 'merge'", alias) == len(invoices)
            assert read.count("payments", "connection = ?", alias) == len(payments)
            assert read.count("contacts", "connection = ?", alias) == len(store.all(alias, "contacts"))
            assert read.count("tracking_categories", "connection = ?", alias) == len(
                store.all(alias, "tracking-categories")
            )
            assert read.count("invoices__line_items", "connection = ?", alias) == sum(
                len(i["line_items"]) for i in invoices
            )
            for invoice in invoices:
                currency = invoice["currency"]
                row = read.query(
                    f"SELECT total_amount, balance, sub_total, currency, contact_id, kind, status, number, "
                    f"total_amount_as_sent FROM {DATASET}.invoices WHERE id = ?",
                    invoice["id"],
                )[0]
                assert row == (
                    minor(invoice["total_amount"], currency),
                    minor(invoice["balance"], currency),
                    minor(invoice["sub_total"], currency),
                    currency,
                    invoice["contact"],
                    "payable" if invoice["type"] == "ACCOUNTS_PAYABLE" else "receivable",
                    invoice["status"],
                    invoice["number"],
                    str(invoice["total_amount"]),
                )
                for index, line in enumerate(invoice["line_items"]):
                    stored = read.query(
                        f"SELECT unit_price, total_amount, quantity, item_id FROM {DATASET}.invoices__line_items "
                        "WHERE invoice_id = ? AND line_index = ?",
                        invoice["id"],
                        index,
                    )
                    assert stored == [(minor(line["unit_price"], currency), minor(line["total_amount"], currency),
                                       line["quantity"], line["item"])]  # fmt: skip
            for payment in payments:
                currency = payment["currency"]
                assert read.query(
                    f"SELECT total_amount, currency, contact_id, account_id FROM {DATASET}.payments WHERE id = ?",
                    payment["id"],
                ) == [(minor(payment["total_amount"], currency), currency, payment["contact"], payment["account"])]
                applications = read.query(
                    "SELECT applied_amount, related_object_id, related_object_type "
                    f"FROM {DATASET}.payments__line_items WHERE payment_id = ? ORDER BY line_index",
                    payment["id"],
                )
                assert applications == [
                    (minor(line["applied_amount"], currency), line["related_object_id"], line["related_object_type"])
                    for line in payment["applied_to_lines"]
                ]
    # what the seed holds, so the checks above are not vacuous: three decimals, none, bills, applications to
    # several invoices and to a credit note
    currencies = {r[0] for r in warehouse.query(f"SELECT DISTINCT currency FROM {DATASET}.invoices")}
    assert {"USD", "EUR", "JPY", "KWD"} <= currencies
    assert warehouse.count("invoices", "kind = 'payable'") > 0
    assert (
        warehouse.scalar(
            f"SELECT count(*) FROM (SELECT payment_id FROM {DATASET}.payments__line_items "
            "WHERE related_object_type = 'INVOICE' GROUP BY payment_id HAVING count(*) > 1)"
        )
        > 0
    )
    assert warehouse.count("payments__line_items", "related_object_type = 'CREDIT_NOTE'") > 0


def test_a_second_load_asks_for_changes_only_and_marks_deletions(warehouse: Warehouse, merge: MergeSandbox) -> None:
    assert load(warehouse, merge).status == "ok"
    store = merge.store
    invoice = next(i for i in store.all("soylent-us", "invoices") if i["status"] == "OPEN")
    payment = store.all("soylent-us", "payments")[0]
    store.update("soylent-us", "invoices", invoice["id"], memo="called the customer")
    store.delete("soylent-us", "payments", payment["id"])
    store.touch("soylent-us", "contacts", store.all("soylent-us", "contacts")[0]["id"])  # Merge re-synced it
    merge.reset_stats()

    summary = load(warehouse, merge)
    assert summary.status == "ok"
    asked = [r for r in merge.list_requests]
    assert asked and all("modified_after" in r for r in asked), asked
    assert all(r["include_deleted_data"] == "true" for r in asked)
    assert summary.rows_per_table.get("invoices") == 1 and summary.rows_per_table.get("payments") == 1
    assert not summary.rows_per_table.get("contacts")  # only `modified_at` moved: not a change
    assert warehouse.scalar(f"SELECT memo FROM {DATASET}.invoices WHERE id = ?", invoice["id"]) == "called the customer"
    assert warehouse.scalar(f"SELECT deleted_at IS NOT NULL FROM {DATASET}.payments WHERE id = ?", payment["id"])


def test_a_complete_scan_on_schedule_marks_what_vanished(warehouse: Warehouse, merge: MergeSandbox) -> None:
    assert load(warehouse, merge).status == "ok"
    gone = merge.store.all("hooli-jp", "invoices")[0]
    merge.store.forget("hooli-jp", "invoices", gone["id"])  # no remote_was_deleted row: only a complete scan sees it
    assert load(warehouse, merge).status == "ok"
    assert not warehouse.scalar(f"SELECT deleted_at IS NOT NULL FROM {DATASET}.invoices WHERE id = ?", gone["id"])
    merge.reset_stats()
    summary = load(warehouse, merge, source_options={"full_scan_days": 0})
    assert summary.status == "ok"
    assert not any("modified_after" in r for r in merge.list_requests)
    assert warehouse.scalar(f"SELECT deleted_at IS NOT NULL FROM {DATASET}.invoices WHERE id = ?", gone["id"])


def test_values_merge_may_send_are_rejected_by_field_and_the_rest_loads(warehouse: Warehouse, merge: MergeSandbox):
    store = merge.store
    invoices = store.all("hooli-jp", "invoices")
    yen = next(i for i in invoices if i["currency"] == "JPY")
    unmapped = next(i for i in invoices if i["id"] != yen["id"])
    store.update("hooli-jp", "invoices", yen["id"], total_amount=1500.5)  # yen have no decimals
    store.update("hooli-jp", "invoices", unmapped["id"], currency="Japanese Yen")  # passed through unmapped
    payment = store.all("hooli-jp", "payments")[0]
    lines = [dict(line, applied_amount="12.5x") for line in payment["applied_to_lines"]] or [
        {"id": "pl-bad", "applied_amount": "12.5x", "related_object_type": "INVOICE", "related_object_id": yen["id"]}
    ]
    store.update("hooli-jp", "payments", payment["id"], applied_to_lines=lines)

    summary = load(warehouse, merge)
    assert summary.status == "ok"
    rejected = {r[0]: r[1] for r in warehouse.query(f"SELECT record_id, field FROM {DATASET}.rejected_records")}
    assert rejected == {yen["id"]: "total_amount", unmapped["id"]: "currency",
                        payment["id"]: "applied_to_lines[0].applied_amount"}  # fmt: skip
    assert warehouse.count("invoices", "connection = 'hooli-jp'") == len(invoices) - 2


def test_a_load_stays_under_each_linked_accounts_rate_limit(warehouse: Warehouse, merge: MergeSandbox) -> None:
    """Merge counts requests per linked account; the budget is each account's (keyed by its token's digest),
    so a load that needs more requests per account than the window allows is paced, never answered 429."""
    merge.settings.rate_limit, merge.settings.rate_window_seconds = 8, 1.0
    # one below the server's limit: a request is counted as it leaves, and arrives a little later
    options = {"page_size": 10, "rate_limit": 7, "rate_window_seconds": PACED_WINDOW_SECONDS}
    summary = load(warehouse, merge, source_options=options)
    assert summary.status == "ok", [s.error for s in summary.failed_scans]
    requests = merge.stats.snapshot()["total_requests"]
    assert requests > 3 * 8, "every account must need more than one window's requests"
    assert merge.stats.throttled == 0
    assert warehouse.count("payments", "provider = 'merge'") == sum(
        len(merge.store.all(a, "payments", True)) for a in merge.store.aliases
    )


def test_a_429_that_says_only_retry_after_is_waited_out_and_the_load_completes(
    warehouse: Warehouse, merge: MergeSandbox
) -> None:
    """A budget set above the account's real limit meets Merge's throttle: 429 with `Retry-After` and no
    X-RateLimit-* headers (Django REST framework's answer). Each is waited out, and nothing is lost."""
    merge.settings.rate_limit, merge.settings.rate_window_seconds = 4, 1.0
    summary = load(warehouse, merge, source_options={"page_size": 10, "rate_limit": 100, "rate_window_seconds": 1.0})
    assert summary.status == "ok", [s.error for s in summary.failed_scans]
    assert merge.stats.throttled > 0 and summary.requests["throttled"] == merge.stats.throttled
    merge.settings.rate_window_seconds = 3600  # so that six requests meet the limit however slowly they go
    with httpx.Client(base_url=merge.url) as client:  # the answer itself, as the client met it
        headers = {"Authorization": f"Bearer {merge.api_key}", "X-Account-Token": next(iter(merge.accounts().values()))}
        answers = [client.get("/payments", headers=headers) for _ in range(6)]
    throttled = next(a for a in answers if a.status_code == 429)
    assert "Retry-After" in throttled.headers
    assert not any(name.lower().startswith("x-ratelimit") for name in throttled.headers)
    assert throttled.json()["detail"].startswith("Request was throttled.")
    for kind in ("payments", "invoices"):
        assert warehouse.count(kind, "provider = 'merge'") == sum(
            len(merge.store.all(a, kind, True)) for a in merge.store.aliases
        )


def test_a_refused_api_key_is_asked_once_not_once_per_account_and_resource(
    warehouse: Warehouse, merge: MergeSandbox
) -> None:
    """Merge blocks an address that sends more than 20 failing requests in 10 s: a run whose key is refused
    stops asking (3 accounts x 4 resources would be 12 failures a run; a few runs in a row, a block)."""
    # no account fetched ahead: each resource's scans ask one request at a time
    summary = load(warehouse, merge, api_key="merge_wrong_key", source_options={"lookahead": 0})
    assert summary.status != "ok" and summary.failed_scans
    assert all(s.cause == "api_key" for s in summary.failed_scans)
    failing = merge.stats.snapshot()["total_requests"]
    assert failing <= 4, f"{failing} requests with a refused key (at most one per resource running side by side)"
    assert load(warehouse, merge).status == "ok"  # the right key is not blocked, nor the address


MERGE_FAULTS = [Fault("status", status=500), Fault("status", status=503), Fault("drop"), Fault("truncate"),
                Fault("invalid_json"), Fault("delay", seconds=4.0)]  # fmt: skip


def test_under_every_kind_of_fault_the_tables_end_as_a_clean_loads(
    tmp_path, warehouse: Warehouse, merge: MergeSandbox, loaded_warehouses
) -> None:
    """Each kind of fault, twice in a row, on a later page of some account's payments or invoices: every one
    is retried, and the tables are exactly those of a load that met none."""
    clean = Warehouse(tmp_path / "clean", warehouse.sandbox)
    clean.path.parent.mkdir()
    loaded_warehouses.copy_into(clean, "merge")
    aliases = list(merge.store.aliases)
    merge.inject(*(
        Fault(fault.kind, status=fault.status, seconds=fault.seconds, skip=1, times=2,
              path=f"/api/accounting/v1/{('payments', 'invoices')[n % 2]}", connection=aliases[n % len(aliases)])
        for n, fault in enumerate(MERGE_FAULTS)
    ))  # fmt: skip
    summary = load(warehouse, merge, source_options={"page_size": 15, "timeout": 2.0})
    assert summary.status == "ok", [s.error for s in summary.failed_scans]
    assert merge.stats.faults_fired == 2 * len(MERGE_FAULTS) and summary.requests["retries"] == 2 * len(MERGE_FAULTS)
    got, want = warehouse.snapshot(DATA_TABLES), clean.snapshot(DATA_TABLES)
    for table in DATA_TABLES:
        assert got[table] == want[table], table


def test_an_address_block_is_not_taken_for_a_refused_key(warehouse: Warehouse, merge: MergeSandbox) -> None:
    """Merge's block of an address (403 after 20 failing requests in 10 s) refuses requests, not the key: once
    it ends, the same key loads again, in the same process."""
    # the block (60 s, as Merge's) is lifted by the sandbox rather than waited out, so a slow start cannot miss it
    with httpx.Client(base_url=merge.url) as client:
        for n in range(21):  # someone else's mistakes from this address
            client.get("/payments", headers={"Authorization": f"Bearer {merge.api_key}", "X-Account-Token": f"x{n}"})
    blocked = load(warehouse, merge, source_options={"max_attempts": 1})
    assert blocked.status != "ok" and not any(s.cause == "api_key" for s in blocked.failed_scans)
    merge.end_blocks()
    assert load(warehouse, merge).status == "ok"
