"""One connection's hostile answer, served over HTTP by a sandbox, fails only its own scan of a load: a huge
body, a deeply nested error, a wait of years (the request-level bounds: `tests/unit/test_hostile_servers.py`)."""

from __future__ import annotations

import time

import pytest

from sandbox.http import Fault
from tests.support import DATASET

FAULTS = {
    "huge_body": (Fault("huge", size=300_000), "max_body_bytes=200,000"),
    "nested_error": (Fault("nested", status=400, depth=10_000), "HTTP 400"),
    "wait_of_years": (Fault("rate_limit", retry_after="999999999"), "longer than max_wait_seconds"),
    "retry_after_inf": (Fault("rate_limit", retry_after="inf"), "longer than max_wait_seconds"),
}


@pytest.mark.parametrize("case", list(FAULTS))
def test_one_connections_hostile_answer_fails_only_its_scan(warehouse, sandbox, case):
    fault, words = FAULTS[case]
    fault.connection, fault.path, fault.times = "globex-jp", "/accounting/payments", 10
    sandbox.inject(fault)
    started = time.monotonic()
    summary = warehouse.load(source_options={"max_body_bytes": 200_000, "max_wait_seconds": 30})
    assert time.monotonic() - started < 60
    assert summary.status == "partial"
    assert [(s.resource, s.connection) for s in summary.failed_scans] == [("payments", "globex-jp")]
    assert words in summary.failed_scans[0].error
    for alias in sandbox.store.tokens():
        assert warehouse.count("invoices", "connection = ?", alias) == sandbox.store.count(alias, "invoices")
        if alias != "globex-jp":
            assert warehouse.count("payments", "connection = ?", alias) == sandbox.store.count(alias, "payments")
    assert warehouse.scalar(f"SELECT count(*) FROM {DATASET}.load_run_scans WHERE status = 'failed'") == 1


def test_a_rootfi_page_beyond_the_cap_fails_that_company_only(both, rootfi):
    rootfi.inject(Fault("huge", size=400_000, path="/accounting/invoice_payments", connection="initech-us", times=5))
    summary = both.load_rootfi(source_options={"max_body_bytes": 300_000}, transform=False)
    assert [(s.resource, s.connection) for s in summary.failed_scans] == [("payments", "initech-us")]
    assert both.count("payments", "connection = 'northwind-uk'") == len(
        rootfi.store.all("northwind-uk", "invoice_payments")
    )
