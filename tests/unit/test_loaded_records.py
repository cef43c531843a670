"""What a scan takes as stored is read from the destination, even when dlt's schema misses the table (it
once did, read mid-extract from a resource's thread, and a scan wrote every record again); and how a scan
drops the rows the pages repeat, and which empty lists send marker rows."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import dlt
import numpy as np
import pytest
from dlt.common.configuration.container import Container
from dlt.common.schema import Schema

from pipelines.warehouse import stored as sync
from pipelines.warehouse.stored import WarehouseRecords
from sources.common.digests import id_digests
from sources.common.http.pagination import without_repeats
from sources.common.scan import ScanResult, scan_connection
from sources.common.stored.changes import LoadedRecords, record_hash
from sources.common.tables.arrow_path import builder_for
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


def test_the_scans_of_parallel_resources_read_the_destination_at_once(pipeline):
    """dlt's pipeline is not safe to ask for a SQL client from several threads at once (its config context and
    its live schema are shared): every read by the threads of dlt's pool must still see the stored table."""
    misses: list[str] = []

    def scan_start() -> None:
        for _ in range(20):
            if "payments" not in _stored().column_kinds(["payments"]):
                misses.append("column kinds")
            if not _unchanged(LoadedRecords.read(_stored(), "payments", "acme", "panora"))[0]:
                misses.append("stored rows")

    threads = [threading.Thread(target=scan_start, name=f"{Container.thread_pool_prefix()}{i}") for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not misses, f"{len(misses)} reads of 240 missed the stored table: {sorted(set(misses))}"


def _stored() -> WarehouseRecords:
    """What the warehouse of the current pipeline holds, as the load job hands it to the scans."""
    return WarehouseRecords(dlt.current.pipeline(), duckdb=True)


def _unchanged(loaded: LoadedRecords) -> list[bool]:
    written, stored = loaded.compare(["pay-1", "pay-2", "pay-3"], [r["_record_hash"] for r in STORED])
    return [bool(s) and not bool(w) for w, s in zip(written, stored, strict=True)]


def test_the_stored_rows_are_read_when_the_schema_holds_the_table(pipeline):
    assert _unchanged(LoadedRecords.read(_stored(), "payments", "acme", "panora")) == [True, True, False]


def test_the_destination_is_asked_when_the_schema_misses_the_table(pipeline, monkeypatch):
    monkeypatch.setattr(type(pipeline), "default_schema", property(lambda self: Schema(self.default_schema_name)))
    loaded = LoadedRecords.read(_stored(), "payments", "acme", "panora")
    assert _unchanged(loaded) == [True, True, False]


def test_duckdb_is_read_in_slices_of_row_ids_and_every_stored_row_is_read(pipeline, monkeypatch):
    """A connection's rows, read a slice of row ids at a time (each through a connection of its own), are all
    read once, with gaps in the row ids (deleted rows) and another connection's rows between them; no more
    rows than a slice holds are read in one query on one connection."""
    more = [
        {"id": f"pay-{n}", "connection": "acme" if n % 7 else "other", "provider": "panora", "deleted_at": None}
        for n in range(4, 30)
    ]
    for row in more:
        row["_record_hash"] = record_hash({"id": row["id"]}, frozenset())
    pipeline.run(more, table_name="payments")
    with pipeline.sql_client() as client:
        client.execute_sql(f"DELETE FROM {client.make_qualified_table_name('payments')} WHERE id IN ('pay-5', 'pay-7')")
    acme = ["pay-1", "pay-2"] + [
        r["id"] for r in more if r["connection"] == "acme" and r["id"] not in ("pay-5", "pay-7")
    ]
    opened: list[int] = []
    sql_client = sync._sql_client
    monkeypatch.setattr(sync, "_sql_client", lambda p: opened.append(1) or sql_client(p))

    # one connection asks the catalog whether the table is there, then the reads: one to count the rows and
    # one a slice, or one for all of them
    for slice_rows, connections in [(4, 2 + -(-len(acme) // 4)), (len(acme), 2)]:
        monkeypatch.setattr(sync, "SLICE_ROWS", slice_rows)
        opened.clear()
        loaded = LoadedRecords.read(_stored(), "payments", "acme", "panora")
        assert len(loaded.ids) == len(acme)
        assert (loaded.ids.positions(id_digests(acme)) >= 0).all()
        assert len(opened) == connections


def test_duckdb_digests_what_it_holds_as_a_destination_read_row_by_row_would(pipeline, monkeypatch):
    """DuckDB hands over digests it computed; any other destination hands over the rows: both give the same
    stored ids, hashes and deletion marks (a row marked deleted, a hash some older version wrote)."""
    odd = [
        {"id": "pay-\u00e9\u2603", "connection": "acme", "provider": "panora", "_record_hash": "not a hash"},
        {"id": "pay-gone", "connection": "acme", "provider": "panora", "_record_hash": "AB" * 16},
    ]
    pipeline.run(odd, table_name="payments")
    with pipeline.sql_client() as client:
        table = client.make_qualified_table_name("payments")
        client.execute_sql(f"UPDATE {table} SET deleted_at = now() WHERE id = 'pay-gone'")
    by_duckdb = LoadedRecords.read(_stored(), "payments", "acme", "panora")
    select_chunks = sync._select_chunks
    monkeypatch.setattr(sync, "_select_chunks", lambda *args: select_chunks(*args[:5]))  # rows, as elsewhere
    by_rows = LoadedRecords.read(_stored(), "payments", "acme", "panora")
    assert len(by_duckdb.ids) == 4
    for loaded in (by_duckdb, by_rows):
        assert (loaded.ids.positions(id_digests(["pay-1", "pay-2", *(r["id"] for r in odd)])) >= 0).all()
    assert by_duckdb.ids.pairs().tolist() == by_rows.ids.pairs().tolist()
    assert by_duckdb.hashes.tolist() == by_rows.hashes.tolist()
    assert by_duckdb.deleted.tolist() == by_rows.deleted.tolist() and by_duckdb.deleted.sum() == 1


def test_a_table_the_destination_lacks_is_empty(pipeline):
    loaded = LoadedRecords.read(_stored(), "invoices", "acme", "panora")
    assert len(loaded.ids) == 0


def test_a_scan_drops_repeated_rows_of_stored_and_new_records(pipeline):
    """The scans take the pages as sent and drop repeats themselves: a stored record by its seen bit, a new
    one by the scan's own set; within a page and across pages; rows without a key pass."""
    loaded = LoadedRecords.read(_stored(), "payments", "acme", "panora")
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
    list(scan_connection(spec, "acme", iter(pages), result, row_key=row_key, stored=_stored()))
    assert (result.records, result.rejected) == (3, 1)


def _tables(items) -> dict[str, list[dict]]:
    """The rows a scan yields per table (marker rows included)."""
    out: dict[str, list[dict]] = {}
    for item in items:
        name = item.meta.table_name if hasattr(item.meta, "table_name") else item.meta.hints["table_name"]
        out.setdefault(name, []).extend(item.data.to_pylist())
    return out


def _markers(rows: list[dict]) -> list[str]:
    return [r["payment_id"] for r in rows if r["_empty_list_marker"]]


def test_empty_lists_clear_the_children_of_stored_records_only(pipeline):
    """A stored record whose lists are now empty sends a marker row per child table (its stored child rows are
    deleted); a record new to the warehouse has none to clear and sends none, save one per child table that
    would otherwise get no rows at all in this scan (so that the table exists: the models read every table)."""
    spec = OBJECTS["payments"]
    line = {"description": "x", "unit_price": 100, "quantity": 1, "total_line_amount": 100}
    page = [
        {"id": "pay-1", "total_amount": 5, "line_items": [], "tracking_categories": []},  # stored, changed
        {"id": "new-1", "total_amount": 7, "line_items": [line], "tracking_categories": []},
        {"id": "new-2", "total_amount": 9, "line_items": [], "tracking_categories": []},
    ]
    result = ScanResult(spec.resource, "acme")
    scan = scan_connection(spec, "acme", iter([page]), result, complete=False, stored=_stored())
    tables = _tables(scan)
    assert sorted(r["id"] for r in tables["payments"]) == ["new-1", "new-2", "pay-1"]
    assert _markers(tables["payments__line_items"]) == ["pay-1"]
    assert _markers(tables["payments__tracking_categories"]) == ["pay-1"]
    assert [r["payment_id"] for r in tables["payments__line_items"] if not r["_empty_list_marker"]] == ["new-1"]

    first_load = [{"id": "new-3", "total_amount": 1, "line_items": [line], "tracking_categories": []}]
    result = ScanResult(spec.resource, "other-connection")
    tables = _tables(scan_connection(spec, "nobody", iter([first_load]), result, complete=False, stored=_stored()))
    assert _markers(tables["payments__line_items"]) == []
    assert _markers(tables["payments__tracking_categories"]) == ["new-3"]  # the one that makes the table


def test_the_arrow_path_makes_markers_only_for_stored_records():
    """It does not build the marker rows the scan would drop (a first load has none to build)."""
    page = [{"id": "a", "line_items": [], "tracking_categories": []}, {"id": "b", "line_items": []}]
    built = builder_for(OBJECTS["payments"]).try_build(page, ["h", "h"], "c", stored=np.array([False, True]))
    assert _markers(built["payments__line_items"][0].to_pylist()) == ["b"]
    assert _markers(built["payments__tracking_categories"][0].to_pylist()) == ["b"]
