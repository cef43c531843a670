"""The DuckDB merge the jobs use (`pipelines/warehouse/duckdb_merge.py`): one row per key from staged rows
that repeat a key, for a table alone and for a table with nested tables, and otherwise dlt's DuckDB."""

from __future__ import annotations

from pathlib import Path

import dlt
import duckdb
import pytest

from pipelines.warehouse.destination import make_destination
from pipelines.warehouse.duckdb_merge import KeyFirstDedupDuckDbClient, with_key_first_dedup


def _pipeline(tmp_path: Path) -> dlt.Pipeline:
    return dlt.pipeline(
        "merge_test",
        destination=make_destination(dlt.destinations.duckdb(credentials=str(tmp_path / "w.duckdb"))),
        dataset_name="raw",
        pipelines_dir=str(tmp_path / "pipelines"),
    )


def _merged_sql(pipeline: dlt.Pipeline, table: str) -> str:
    """The merge statements of `table` in the last package the pipeline loaded."""
    package = pipeline.get_load_package_info(pipeline.last_trace.last_load_info.loads_ids[-1])
    jobs = [job for job in package.jobs["completed_jobs"] if job.job_file_info.table_name == table]
    return "\n".join(Path(job.file_path).read_text() for job in jobs if job.file_path.endswith(".sql"))


def _rows(tmp_path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as connection:
        return connection.execute(sql).fetchall()


@pytest.mark.parametrize("nested", [False, True], ids=["table alone", "with nested tables"])
def test_staged_rows_repeating_a_key_are_stored_once(tmp_path, nested):
    """Rows that repeat a key within one package (as when a copy job runs again after a kill) give one stored
    row per key, also next to rows already stored, which the merge replaces."""
    pipeline = _pipeline(tmp_path)
    columns = {"id": {"primary_key": True}}

    def record(key: str, amount: int) -> dict:
        row: dict = {"id": key, "amount": amount}
        if nested:
            row["lines"] = [{"n": amount}, {"n": amount + 1}]
        return row

    pipeline.run([record("a", 1), record("b", 2)], table_name="pays", write_disposition="merge", columns=columns)
    repeating = [record("b", 20), record("c", 3), record("b", 20), record("c", 3), record("c", 3)]
    pipeline.run(repeating, table_name="pays", write_disposition="merge", columns=columns)

    assert "min(rowid)" in _merged_sql(pipeline, "pays")
    assert _rows(tmp_path, "SELECT id, amount FROM raw.pays ORDER BY id") == [("a", 1), ("b", 20), ("c", 3)]
    if nested:
        stored_lines = "SELECT p.id, l.n FROM raw.pays p JOIN raw.pays__lines l ON l._dlt_parent_id = p._dlt_id"
        assert _rows(tmp_path, stored_lines + " ORDER BY 1, 2") == [
            ("a", 1),
            ("a", 2),
            ("b", 20),
            ("b", 21),
            ("c", 3),
            ("c", 4),
        ]


def test_a_dedup_sort_column_keeps_dlt_s_own_query(tmp_path):
    """With a `dedup_sort` column which duplicate survives matters: dlt's ordered query decides it."""
    pipeline = _pipeline(tmp_path)
    columns = {"id": {"primary_key": True}, "version": {"dedup_sort": "desc"}}
    rows = [{"id": "a", "version": 1}, {"id": "a", "version": 3}, {"id": "a", "version": 2}]
    pipeline.run(rows, table_name="pays", write_disposition="merge", columns=columns)

    assert "ROW_NUMBER()" in _merged_sql(pipeline, "pays")
    assert _rows(tmp_path, "SELECT id, version FROM raw.pays") == [("a", 3)]


def test_it_is_dlt_s_duckdb_to_everything_but_the_merge(tmp_path):
    """Pipeline state, config sections and checks of the destination see dlt's DuckDB; other destinations
    pass through unchanged."""
    pipeline = _pipeline(tmp_path)
    assert pipeline.destination.destination_type == dlt.destinations.duckdb().destination_type
    assert pipeline.destination.destination_name == "duckdb"
    assert pipeline.destination.client_class is KeyFirstDedupDuckDbClient
    postgres = dlt.destinations.postgres()
    assert with_key_first_dedup(postgres) is postgres
    assert with_key_first_dedup("filesystem") == "filesystem"
