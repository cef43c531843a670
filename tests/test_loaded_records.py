"""What a scan takes as stored is read from the destination, even when dlt's schema misses the table (it
once did, read mid-extract from a resource's thread, and a scan wrote every record again); and how a scan
drops the rows the pages repeat."""

from __future__ import annotations

from collections.abc import Iterator

import dlt
import pytest
from dlt.common.schema import Schema

from sources.common.pagination import without_repeats
from sources.common.scan import ScanResult, scan_connection
from sources.common.sync import LoadedRecords, record_hash
from sources.panora.client import row_key
from sources.panora.objects import OBJECTS

STORED = [
    {"id": "pay-1", "connection": "acme", "provider": "panora", "_record_hash": None, "deleted_at": None},
    {"id": "pay-2", "connection": "acme", "provider": "panora", "_record_hash": None, "deleted_at": None},
    {"id": "pay-3", "connection": "other", "provider": "panora", "_record_hash": None, "deleted_at": None},
]


@pytest.fixture
def pipeline(tmp_path) -> Iterator[dlt.Pipeline]:
    """A warehouse holding STORED, its pipeline the current one (as during an extract) for the test only."""
    for row in STORED:
        row["_record_hash"] = record_hash({"id": row["id"]}, frozenset())
    pipeline = dlt.pipeline(
        "loaded_records_test",
        destination=dlt.destinations.duckdb(credentials=str(tmp_path / "w.duckdb")),
        dataset_name="raw",
        pipelines_dir=str(tmp_path / "pipelines"),
    )
    pipeline.run(STORED, table_name="payments", columns={"deleted_at": {"data_type": "timestamp"}})
    pipeline.activate()
    yield pipeline
    pipeline.deactivate()


def _unchanged(loaded: LoadedRecords) -> list[bool]:
    written, stored = loaded.compare(["pay-1", "pay-2", "pay-3"], [r["_record_hash"] for r in STORED])
    return [bool(s) and not bool(w) for w, s in zip(written, stored, strict=True)]


def test_the_stored_rows_are_read_when_the_schema_holds_the_table(pipeline):
    assert _unchanged(LoadedRecords.read("payments", "acme", "panora")) == [True, True, False]


def test_the_destination_is_asked_when_the_schema_misses_the_table(pipeline, monkeypatch):
    monkeypatch.setattr(type(pipeline), "default_schema", property(lambda self: Schema(self.default_schema_name)))
    loaded = LoadedRecords.read("payments", "acme", "panora")
    assert _unchanged(loaded) == [True, True, False]
    assert loaded.known


def test_a_table_the_destination_lacks_is_empty_and_known(pipeline):
    loaded = LoadedRecords.read("invoices", "acme", "panora")
    assert len(loaded.ids) == 0 and loaded.known


def test_a_scan_drops_repeated_rows_of_stored_and_new_records(pipeline):
    """The scans take the pages as sent and drop repeats themselves: a stored record by its seen bit, a new
    one by the scan's own set; within a page and across pages; rows without a key pass."""
    loaded = LoadedRecords.read("payments", "acme", "panora")
    first = [{"id": "pay-1"}, {"id": "new-1"}, {"id": "pay-1"}, {"x": 1}, {"id": "new-1"}]
    assert without_repeats(first, row_key, loaded) == [{"id": "pay-1"}, {"id": "new-1"}, {"x": 1}]
    second = [{"id": "new-1"}, {"id": "pay-1"}, {"id": "pay-2"}, {"id": "new-2"}, {"x": 1}]
    assert without_repeats(second, row_key, loaded) == [{"id": "pay-2"}, {"id": "new-2"}, {"x": 1}]
    assert loaded.seen.all()  # both stored records were listed: neither is marked deleted
    assert len(loaded._new_ids) == 2  # only the ids new to the table are held apart


def test_a_repeated_bad_record_is_rejected_once(pipeline):
    """Panora repeats a page's last row at the top of the next: a bad record there is reported once."""
    bad = {"id": "pay-9", "total_amount": "not a number", "currency": "USD"}
    pages = [[{"id": "pay-1"}, bad], [bad, {"id": "pay-2"}]]
    spec = OBJECTS["payments"]
    result = ScanResult(spec.resource, "acme")
    list(scan_connection(spec, "acme", iter(pages), result, row_key=row_key))
    assert (result.records, result.rejected) == (3, 1)
