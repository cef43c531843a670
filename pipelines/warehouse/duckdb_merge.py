"""dlt's DuckDB destination with a cheaper de-duplication of the staged rows in its merge.

dlt merges a package's rows through a staging table and, before inserting them, keeps one row per primary key
(a copy job that runs again after a kill stages its rows twice). It does that with
`ROW_NUMBER() OVER (PARTITION BY <key>)` over every staged column: DuckDB then sorts whole rows, and within the
load's memory bound (256MB) spills them to disk. Here the same choice is made on the keys alone: the staged
row with the lowest `rowid` of each key, found by grouping two narrow columns, then the wide rows read once.
Which duplicate survives was arbitrary in dlt's query too (`ORDER BY (SELECT NULL)`); with a `dedup_sort`
column, or rows declared de-duplicated, dlt's own query runs.

`bench/bench_merge.py` compares the two on the same package (figures in bench/README.md).

dlt has no hook for its merge SQL, so this subclasses its DuckDB factory, client and merge job, and overrides
only the one query; everything else (state, config sections, capabilities, the destination's name and type)
stays dlt's DuckDB.
"""

from __future__ import annotations

from collections.abc import Sequence

from dlt.common.destination import Destination, DestinationReference
from dlt.common.destination.client import FollowupJobRequest, PreparedTableSchema
from dlt.common.schema.typing import TSortOrder
from dlt.destinations import duckdb
from dlt.destinations.impl.duckdb.duck import DuckDbClient
from dlt.destinations.sql_jobs import SqlMergeFollowupJob


class KeyFirstDedupMergeJob(SqlMergeFollowupJob):
    """dlt's merge, de-duplicating the staged rows by their keys' lowest `rowid`."""

    @classmethod
    def gen_select_from_dedup_sql(
        cls,
        table_name: str,
        primary_keys: Sequence[str],
        columns: Sequence[str],
        dedup_sort: tuple[str, TSortOrder] | None = None,
        condition: str | None = None,
        condition_columns: Sequence[str] | None = None,
        skip_dedup: bool = False,
    ) -> str:
        if skip_dedup or dedup_sort is not None or not primary_keys:
            return super().gen_select_from_dedup_sql(
                table_name, primary_keys, columns, dedup_sort, condition, condition_columns, skip_dedup
            )
        # The condition may name columns outside `columns`: it filters the staged table itself here
        return (
            f"SELECT {', '.join(columns)} FROM {table_name} WHERE rowid IN "
            f"(SELECT min(rowid) FROM {table_name} GROUP BY {', '.join(primary_keys)}) AND ({condition or '1 = 1'})"
        )


class KeyFirstDedupDuckDbClient(DuckDbClient):
    def _create_merge_followup_jobs(self, table_chain: Sequence[PreparedTableSchema]) -> list[FollowupJobRequest]:
        return [KeyFirstDedupMergeJob.from_table_chain(table_chain, self.sql_client)]


class duckdb_key_first_dedup(duckdb):  # lower case, as dlt names its destination factories
    """dlt's `duckdb` destination whose merge de-duplicates staged rows by key (see the module)."""

    @property
    def client_class(self) -> type[DuckDbClient]:
        return KeyFirstDedupDuckDbClient

    @property
    def destination_type(self) -> str:
        # dlt's own type: pipeline state, config sections and every check of "duckdb" see no difference
        return DestinationReference.normalize_type("duckdb")


def with_key_first_dedup(destination: str | Destination) -> str | Destination:
    """`destination` with the cheaper merge when it is dlt's DuckDB factory, else `destination` unchanged."""
    if type(destination) is duckdb:
        return duckdb_key_first_dedup(**destination.config_params)
    return destination
