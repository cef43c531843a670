"""Rootfi into the warehouse over real HTTP: full and incremental loads, deletions, the conversion into the
unified tables, bad records, both providers in one dataset, and a load paced under Rootfi's rate limit."""

from __future__ import annotations

import json
from decimal import Decimal

import iso4217
import pytest

from pipelines.load import run_loads
from pipelines.settings import ConfigurationError
from sandbox.http import Fault
from tests.support import DATASET, PACED_WINDOW_SECONDS, M, Warehouse


def minor(amount: float | int, currency: str) -> int:
    """What the warehouse must hold for a Rootfi amount: exact minor units by ISO 4217."""
    return int(Decimal(str(amount)).scaleb(iso4217.Currency(currency).exponent))


def key(record: dict) -> str:
    return f"rootfi:{record['rootfi_company_id']}:{record['platform_id']}"


def test_full_load_lands_in_the_unified_tables(both: Warehouse) -> None:
    store = both.rootfi.store
    summary = both.load_rootfi()
    assert summary.status == "ok"
    with both.reading() as read:  # one connection for every row's check
        for alias in store.aliases:
            invoices = store.all(alias, "invoices")
            payments = store.all(alias, "invoice_payments")
            assert read.count("invoices", "connection = ?", alias) == len(invoices)
            assert read.count("payments", "connection = ?", alias) == len(payments)
            lines = sum(len(i["line_items"]) for i in invoices)
            assert read.count("invoices__line_items", "connection = ?", alias) == lines
            for invoice in invoices:
                row = read.query(
                    "SELECT provider, remote_id, number, currency, total_amount, balance, sub_total, "
                    f"total_tax_amount, contact_id, rootfi_id FROM {DATASET}.invoices WHERE id = ?",
                    key(invoice),
                )[0]
                currency = invoice["currency_id"]
                assert row == (
                    "rootfi",
                    invoice["platform_id"],
                    invoice["document_number"],
                    currency,
                    minor(invoice["total_amount"], currency),
                    minor(invoice["amount_due"], currency),
                    minor(invoice["sub_total"], currency),
                    minor(invoice["tax_amount"], currency),
                    f"rootfi:{invoice['rootfi_company_id']}:{invoice['contact_id']}",
                    invoice["rootfi_id"],
                )
                for index, line in enumerate(invoice["line_items"]):
                    stored = read.query(
                        f"SELECT unit_price, total_amount, quantity, quantity_decimal, currency, item_id "
                        f"FROM {DATASET}.invoices__line_items WHERE invoice_id = ? AND line_index = ?",
                        key(invoice),
                        index,
                    )[0]
                    quantity = Decimal(str(line["quantity"]))
                    assert stored[:2] == (minor(line["unit_amount"], currency), minor(line["total_amount"], currency))
                    assert stored[2] == (int(quantity) if quantity == quantity.to_integral_value() else None)
                    assert stored[3] == quantity and stored[4] == currency
                    assert stored[5] == f"rootfi:{invoice['rootfi_company_id']}:{line['item_id']}"
            for payment in payments:
                row = read.query(
                    f"SELECT invoice_id, total_amount, currency, payment_mode, document_number "
                    f"FROM {DATASET}.payments WHERE id = ?",
                    key(payment),
                )[0]
                assert row == (
                    f"rootfi:{payment['rootfi_company_id']}:{payment['invoice_id']}",
                    minor(payment["amount"], payment["currency_id"]),
                    payment["currency_id"],
                    payment["payment_mode"],
                    payment["document_number"],
                )
    # a zero-decimal currency is converted with its own exponent, not by 100
    jpy = both.query(f"SELECT count(*) FROM {DATASET}.invoices WHERE currency = 'JPY'")[0][0]
    assert jpy > 0
    tagged = both.count("invoices__line_items__tracking_categories", "tracking_category_id LIKE 'rootfi:%'")
    assert tagged == sum(len(li["tracking_category_ids"]) for a in store.aliases for i in store.all(a, "invoices")
                         for li in i["line_items"])  # fmt: skip


def test_incremental_load_asks_only_for_changes_and_applies_deletions(both: Warehouse) -> None:
    sandbox, store = both.rootfi, both.rootfi.store
    both.load_rootfi(source_options={"overlap_seconds": 0})
    total = sum(len(store.all(a, k, include_deleted=True)) for a in store.aliases for k in store.records)
    assert sum(sandbox.served.values()) == total
    positions = {}
    for kind in ("invoices", "invoice_payments", "tracking_categories", "contacts"):
        for alias in store.aliases:
            positions[(kind, alias)] = max(r["rootfi_updated_at"] for r in store.all(alias, kind))

    sandbox.reset_stats()
    store.update("northwind-uk", "invoices", "INV-4101-0004", memo="corrected memo", amount_due=10.5)
    store.delete("initech-us", "invoice_payments", "PMT-4102-0002")
    summary = both.load_rootfi(source_options={"overlap_seconds": 0})

    # every request named the position it continues from, and only changed rows (plus the rows sharing the
    # last loaded timestamp, which `gte` includes on purpose) were served
    for request in sandbox.list_requests:
        assert request["include_deleted_records"] == "true"
        assert request["rootfi_updated_at[gte]"] == positions[(request["kind"], _alias(store, request))]
    at_position = sum(
        1
        for (kind, alias), since in positions.items()
        for r in store.all(alias, kind, include_deleted=True)
        if r["rootfi_updated_at"] == since
    )
    assert sum(sandbox.served.values()) == at_position + 2 < total / 2
    written = {(r.resource, r.connection): r.written for r in summary.scans}
    assert written[("invoices", "northwind-uk")] == 1 and written[("payments", "initech-us")] == 1
    assert sum(written.values()) == 2

    memo, balance = both.query(f"SELECT memo, balance FROM {DATASET}.invoices WHERE id = 'rootfi:4101:INV-4101-0004'")[
        0
    ]
    assert (memo, balance) == ("corrected memo", 1050)
    deleted = both.query(f"SELECT id FROM {DATASET}.payments WHERE deleted_at IS NOT NULL")
    assert deleted == [("rootfi:4102:PMT-4102-0002",)]
    # lines of the changed invoice were replaced, not doubled
    lines = len(store.find("northwind-uk", "invoices", "INV-4101-0004")["line_items"])
    assert both.count("invoices__line_items", "invoice_id = 'rootfi:4101:INV-4101-0004'") == lines

    store.restore("initech-us", "invoice_payments", "PMT-4102-0002")
    both.load_rootfi(source_options={"overlap_seconds": 0})
    assert both.count("payments", "deleted_at IS NOT NULL") == 0


def _alias(store, request: dict) -> str:
    company = int(request["rootfi_company_id[eq]"])
    return next(a for a, c in store.aliases.items() if c == company)


def test_full_refresh_marks_records_gone_from_the_api_and_incremental_does_not(both: Warehouse) -> None:
    store = both.rootfi.store
    both.load_rootfi()
    purged = store.find("northwind-uk", "invoice_payments", "PMT-4101-0003")
    store.records["invoice_payments"].remove(purged)  # hard-deleted upstream: never listed again
    both.load_rootfi()
    assert both.count("payments", "deleted_at IS NOT NULL") == 0  # a scan of changes proves nothing
    both.load_rootfi(full_refresh=True)
    assert both.query(f"SELECT id FROM {DATASET}.payments WHERE deleted_at IS NOT NULL") == [(key(purged),)]


def test_bad_rootfi_record_is_reported_by_field_and_the_rest_loads(both: Warehouse) -> None:
    store = both.rootfi.store
    store.update("northwind-uk", "invoice_payments", "PMT-4101-0001", amount=12.345)
    store.update("initech-us", "invoices", "INV-4102-0002", currency_id="XYZ")
    summary = both.load_rootfi()
    assert summary.status == "ok"
    rejected = both.query(f"SELECT table_name, record_id, field, error FROM {DATASET}.rejected_records ORDER BY 1")
    assert [(r[0], r[1], r[2]) for r in rejected] == [
        ("invoices", "rootfi:4102:INV-4102-0002", "currency_id"),
        ("payments", "rootfi:4101:PMT-4101-0001", "amount"),
    ]
    assert "more than 2 decimal places" in rejected[1][3] and "XYZ" in rejected[0][3]
    assert (
        both.count("payments", "connection = 'northwind-uk'") == len(store.all("northwind-uk", "invoice_payments")) - 1
    )


def test_a_failed_scan_keeps_its_position_and_the_next_run_catches_up(both: Warehouse) -> None:
    sandbox, store = both.rootfi, both.rootfi.store
    both.load_rootfi(source_options={"overlap_seconds": 0})
    store.update("northwind-uk", "invoice_payments", "PMT-4101-0002", document_number="LATE-1")
    sandbox.inject(
        Fault("status", status=503, path="/accounting/invoice_payments", times=10, connection="northwind-uk")
    )
    summary = both.load_rootfi(source_options={"overlap_seconds": 0})
    assert summary.status == "partial"
    changed = f"SELECT document_number FROM {DATASET}.payments WHERE id = 'rootfi:4101:PMT-4101-0002'"
    assert both.scalar(changed) == "RCPT-4101-0002"
    sandbox.clear_faults()
    assert both.load_rootfi(source_options={"overlap_seconds": 0}).status == "ok"
    assert both.scalar(changed) == "LATE-1"


def test_both_providers_in_one_dataset_with_per_provider_models(both: Warehouse, loaded_warehouses) -> None:
    loaded_warehouses.copy_into(both, "panora")  # Panora loaded, its models built
    before = both.query(f"SELECT * FROM {M}.accounting__invoice_settlement ORDER BY ALL")
    both.load_rootfi(transform=True)
    after = both.query(f"SELECT * FROM {M}.accounting__invoice_settlement WHERE provider = 'panora' ORDER BY ALL")
    assert after == before  # Rootfi's rows change nothing of Panora's results

    store = both.rootfi.store
    for alias in store.aliases:
        payments = store.all(alias, "invoice_payments")
        for invoice in store.all(alias, "invoices"):
            currency = invoice["currency_id"]
            applied = sum(
                minor(p["amount"], currency)
                for p in payments
                if p["invoice_id"] == invoice["platform_id"] and p["currency_id"] == currency
            )
            row = both.query(
                f"SELECT applied_minor, total_minor, status FROM {M}.accounting__invoice_settlement "
                "WHERE invoice_id = ?",
                key(invoice),
            )
            assert row, invoice["platform_id"]
            assert row[0][0] == applied and row[0][1] == minor(invoice["total_amount"], currency)
            if invoice["status"] == "PAID" and applied == row[0][1]:
                assert row[0][2] == "settled"
        # the seeded exceptions of each company are found
        orphan = f"rootfi:{store.aliases[alias]}:PMT"
        assert (
            both.scalar(
                f"SELECT count(*) FROM {M}.accounting__unapplied_payments WHERE connection = ? AND payment_id LIKE ?",
                alias,
                orphan + "%",
            )
            == 1
        )
        assert (
            both.scalar(
                f"SELECT count(*) FROM {M}.accounting__currency_mismatches WHERE connection = ?",
                alias,
            )
            == 1
        )
        assert (
            both.scalar(
                f"SELECT count(*) FROM {M}.accounting__duplicate_payments WHERE connection = ?",
                alias,
            )
            == 2
        )
    statuses = {r[0] for r in both.query(f"SELECT DISTINCT status FROM {M}.accounting__invoice_settlement")}
    assert "void" in statuses and "voided" not in statuses  # Rootfi's VOIDED is Panora's VOID
    providers = both.query(f"SELECT DISTINCT provider FROM {M}.stg_accounting__invoices ORDER BY 1")
    assert providers == [("panora",), ("rootfi",)]
    summary_connections = {r[0] for r in both.query(f"SELECT connection FROM {M}.accounting__reconciliation_summary")}
    assert set(store.aliases) | set(both.sandbox.store.tokens()) == summary_connections


def test_an_alias_used_by_two_providers_is_refused(both: Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCES__PANORA__API_KEY", both.sandbox.api_key)
    monkeypatch.setenv("SOURCES__PANORA__CONNECTIONS", json.dumps({"northwind-uk": "token"}))
    monkeypatch.setenv("SOURCES__ROOTFI__API_KEY", both.rootfi.api_key)
    monkeypatch.setenv("SOURCES__ROOTFI__COMPANIES", json.dumps(both.rootfi.store.company_ids()))
    with pytest.raises(ConfigurationError, match=r"northwind-uk.*both panora and rootfi"):
        run_loads()


def test_a_rate_limited_rootfi_load_is_paced_and_never_meets_a_429(both: Warehouse) -> None:
    rootfi = both.rootfi
    rootfi.settings.rate_limit = 6
    rootfi.settings.rate_window_seconds = 1.0
    summary = both.load_rootfi(source_options={"page_size": 5, "rate_window_seconds": PACED_WINDOW_SECONDS})
    assert summary.status == "ok"
    assert summary.requests["requests"] > 3 * 6  # several windows' budget
    # a few at most: a hit is logged before its request reaches the server, and a refused request counts in
    # the server's log too, so one request later than the client's margin can meet two. Unpaced, most of the
    # 33 requests would meet a 429 first.
    assert rootfi.stats.throttled <= 3
