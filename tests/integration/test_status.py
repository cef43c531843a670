"""`accounting-etl status` over a real warehouse: a failed scan, rejected records and every ledger state, as
tables and as JSON, with the exit codes monitors rely on."""

from __future__ import annotations

import json

import duckdb
import pytest

from pipelines.cli import main
from pipelines.push.ledger import ensure_tables
from sandbox.http import Fault
from tests.support import DATASET

LEDGER = {  # external_id -> status, one of each state
    "p-pending": "pending",
    "p-submitted": "submitted",
    "p-created": "created",
    "p-confirmed": "confirmed",
    "p-rejected": "rejected",
    "p-failed": "failed",
    "p-unknown": "unknown",
}


@pytest.fixture
def troubled(both, sandbox, rootfi):
    """Both providers loaded; one Panora connection's token revoked, one record rejected, a ledger of
    every state."""
    victim = sandbox.store.all("acme-eu", "payments")[0]["id"]
    sandbox.store.update("acme-eu", "payments", victim, total_amount="lots")
    connections = {**sandbox.store.tokens(), "revoked": "0f0f0f0f-revoked-token-0000000000"}
    assert both.load(connections=connections, transform=False).status == "partial"
    assert both.load_rootfi().status == "ok"
    with duckdb.connect(str(both.path)) as con:
        ensure_tables(con, DATASET)
        for external_id, status in LEDGER.items():
            con.execute(
                f"INSERT INTO {DATASET}.push_log (external_id, kind, connection, status, error, attempts, "
                "updated_at) VALUES (?, 'payment', 'acme-us', ?, ?, 1, now())",
                [external_id, status, f"why {status}" if status in ("rejected", "failed", "unknown") else None],
            )
    return both


def test_status_shows_each_connection_its_failure_rejections_and_the_ledger(troubled, capsys):
    warehouse = troubled
    code = main(["status", "--database", str(warehouse.path)])
    out = capsys.readouterr().out
    assert code == 1  # the revoked connection's last load failed
    for alias in ("acme-eu", "acme-us", "globex-jp", "revoked", "northwind-uk", "initech-us"):
        assert alias in out
    assert "FAILED panora [revoked]: " in out and "Connection not found" in out
    assert "needs attention" in out and "\x1b[" not in out  # a pipe gets no escape codes
    assert "push ledger: confirmed 1, created 1, failed 1, pending 1, rejected 1, submitted 1, unknown 1" in out
    for external_id in ("p-rejected", "p-failed", "p-unknown"):
        assert external_id in out
    assert "p-pending" not in out.split("Pushes that need a person")[1]


def test_status_as_json_for_monitors(troubled, capsys):
    warehouse = troubled
    assert main(["status", "--database", str(warehouse.path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    connections = {(c["provider"], c["connection"]): c for c in report["connections"]}
    assert set(connections) == {
        ("panora", "acme-eu"), ("panora", "acme-us"), ("panora", "globex-jp"), ("panora", "revoked"),
        ("rootfi", "northwind-uk"), ("rootfi", "initech-us"),
    }  # fmt: skip
    revoked = connections[("panora", "revoked")]
    assert revoked["status"] == "failed" and revoked["needs_attention"] and "Connection not found" in revoked["error"]
    assert revoked["fresh_at"] is None
    acme = connections[("panora", "acme-eu")]
    assert acme["status"] == "ok" and acme["rejected"] == 1 and not acme["needs_attention"]
    written = warehouse.scalar(
        f"SELECT sum(written) FROM {DATASET}.load_run_scans WHERE connection = 'acme-eu'"
    )  # fmt: skip
    assert acme["written"] == written and acme["age_seconds"] >= 0
    assert report["push"]["by_status"] == dict.fromkeys(LEDGER.values(), 1)
    people = {row["external_id"]: row["status"] for row in report["push"]["needs_a_person"]}
    assert people == {"p-rejected": "rejected", "p-failed": "failed", "p-unknown": "unknown"}
    assert report["ok"] is False


def test_status_exit_codes(warehouse, capsys, tmp_path):
    assert warehouse.load().status == "ok"
    assert main(["status", "--database", str(warehouse.path), "--max-age", "1d"]) == 0
    assert "all connections loaded and fresh" in capsys.readouterr().out
    assert main(["status", "--database", str(warehouse.path)]) == 0  # freshness unasked is not claimed
    out = capsys.readouterr().out
    assert "all connections loaded" in out and "fresh" not in out
    with duckdb.connect(str(warehouse.path)) as con:  # the last complete load of acme-us was two days ago
        con.execute(
            f"UPDATE {DATASET}.load_runs SET finished_at = finished_at - INTERVAL 2 DAY, "
            "started_at = started_at - INTERVAL 2 DAY"
        )
    assert main(["status", "--database", str(warehouse.path), "--max-age", "1d", "--json"]) == 1
    stale = {c["connection"] for c in json.loads(capsys.readouterr().out)["connections"] if c["stale"]}
    assert stale == {"acme-eu", "acme-us", "globex-jp"}
    assert main(["status", "--database", str(warehouse.path), "--max-age", "soon"]) == 2
    assert main(["status", "--database", str(tmp_path / "missing.duckdb")]) == 2
    assert "no warehouse" in capsys.readouterr().err


def test_a_table_that_failed_stays_failed_after_a_run_of_other_tables(warehouse, sandbox, capsys):
    sandbox.inject(Fault("status", status=500, path="/accounting/payments", times=1000, connection="acme-us"))
    assert warehouse.load().status == "partial"  # acme-us's payments ran out of retries; everything else loaded
    sandbox.clear_faults()
    assert warehouse.load(resources=["contacts"]).status == "ok"  # a later run of another table alone
    assert main(["status", "--database", str(warehouse.path), "--max-age", "1d", "--json"]) == 1
    connections = {c["connection"]: c for c in json.loads(capsys.readouterr().out)["connections"]}
    failed = connections["acme-us"]
    assert failed["status"] == "failed" and failed["needs_attention"]
    assert failed["error"].startswith("payments: ") and "its last scan, in the run of" in failed["error"]
    # its payments were never loaded completely: its data has no age, so it is stale, however recent its contacts
    assert failed["fresh_at"] is None and failed["stale"]
    assert connections["acme-eu"]["status"] == "ok" and not connections["acme-eu"]["needs_attention"]
    assert main(["status", "--database", str(warehouse.path)]) == 1
    out = capsys.readouterr().out
    assert "FAILED panora [acme-us]: payments: " in out and "all connections loaded" not in out
