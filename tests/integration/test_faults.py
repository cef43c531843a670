"""Server faults during a load: every kind is retried and the tables end exact; what cannot be fixed fails
one connection's scan, which then marks nothing deleted."""

from __future__ import annotations

import pytest

from sandbox.panora import Fault
from tests.support import DATASET, PACED_WINDOW_SECONDS

FAULTS = {
    "http_500": Fault("status", status=500),
    "http_502": Fault("status", status=502),
    "http_503": Fault("status", status=503),
    "dropped_connection": Fault("drop"),
    "truncated_body": Fault("truncate"),
    "invalid_json": Fault("invalid_json"),
    "timeout": Fault("delay", seconds=4.0),
}
# the client's timeout where the fault is one (2 s, half the stall and far above an ordinary page on a busy
# machine, where a page slower than the timeout would be one more retry than the faults); the usual 5 s elsewhere
TIMEOUT_SECONDS = 2.0


@pytest.mark.parametrize("kind", list(FAULTS))
def test_each_fault_kind_is_retried_and_rows_are_exact(warehouse, sandbox, kind):
    template = FAULTS[kind]
    # two faults in a row on the second page of every connection's payments scan
    sandbox.inject(
        *(
            Fault(
                template.kind,
                status=template.status,
                seconds=template.seconds,
                path="/accounting/payments",
                skip=1,
                times=2,
                connection=alias,
            )
            for alias in ("acme-eu", "acme-us", "globex-jp")
        )
    )
    options = {"timeout": TIMEOUT_SECONDS} if kind == "timeout" else {}
    summary = warehouse.load(resources=["payments"], page_size=30, source_options=options)

    assert summary.status == "ok", summary.render()
    assert sandbox.stats.faults_fired == 6
    assert summary.requests["retries"] == 6
    assert warehouse.count("payments") == 200
    assert warehouse.scalar(f"SELECT count(DISTINCT id) FROM {DATASET}.payments") == 200
    assert warehouse.count("payments__line_items") == sum(
        len(p["line_items"]) for a in ("acme-eu", "acme-us", "globex-jp") for p in sandbox.store.all(a, "payments")
    )


def test_a_scan_that_runs_out_of_retries_marks_nothing_deleted(warehouse, sandbox):
    store = sandbox.store
    warehouse.load(resources=["payments"])
    gone = store.all("acme-eu", "payments")[10]
    store.delete("acme-eu", "payments", gone["id"])
    changed = store.all("acme-eu", "payments")[0]
    store.update("acme-eu", "payments", changed["id"], type="Wire")
    # acme-eu's second page never answers: 4 tries, then the scan fails
    sandbox.inject(Fault("status", status=503, path="/accounting/payments", skip=1, times=10, connection="acme-eu"))

    summary = warehouse.load(resources=["payments"], page_size=40)

    assert summary.status == "partial"
    assert [(s.connection, s.status) for s in summary.failed_scans] == [("acme-eu", "failed")]
    assert "gave up" in summary.failed_scans[0].error and "503" in summary.failed_scans[0].error
    assert warehouse.count("payments", "deleted_at IS NOT NULL") == 0  # incomplete scan: nothing marked
    # the first page still loaded its change, the other connections are complete
    assert warehouse.scalar(f"SELECT type FROM {DATASET}.payments WHERE id = ?", changed["id"]) == "Wire"
    assert warehouse.count("payments") == 200

    sandbox.clear_faults()
    assert warehouse.load(resources=["payments"], page_size=40).status == "ok"
    assert warehouse.query(f"SELECT id FROM {DATASET}.payments WHERE deleted_at IS NOT NULL") == [(gone["id"],)]


def test_a_429_storm_waits_as_told_and_loses_nothing(warehouse, sandbox):
    sandbox.inject(Fault("rate_limit", path="/accounting/", seconds=0.2, times=8))
    summary = warehouse.load()
    assert summary.status == "ok"
    assert summary.requests["throttled"] == 8
    assert summary.requests["retries"] == 0  # a 429 is a wait, not a failed try
    assert warehouse.count("payments") == 200 and warehouse.count("invoices") == 150


def test_pacing_keeps_a_long_scan_under_the_limit(warehouse, sandbox):
    sandbox.settings.rate_limit = 10
    sandbox.settings.rate_window_seconds = 1.0
    # the client is told the window; the limit it learns from the server's first answers
    summary = warehouse.load(
        resources=["payments", "invoices"], page_size=10, source_options={"rate_window_seconds": PACED_WINDOW_SECONDS}
    )
    assert summary.status == "ok"
    assert summary.requests["requests"] > 3 * 10  # more than three windows' worth of requests
    assert sandbox.stats.throttled <= 1  # the budget kept the server from saying 429 (one: as in test_rootfi_adapter)
    assert summary.requests["paced_seconds"] > 0
    assert warehouse.count("payments") == 200 and warehouse.count("invoices") == 150
