"""Every version of an invoice and a payment that a load saw, kept by the load itself.

A record's own table holds its latest version; `<table>_history` holds every version a load wrote, stamped with
the moment its scan saw it (`_seen_at`). A scan writes only the records whose content changed (their content
hash leaves out what a provider rewrites on its own, Panora's nightly `modified_at`), so each history row is a
distinct version, and a version is valid from its `_seen_at` until the next version's. The job adds the
versions a load marks deleted (`pipelines/warehouse/stored.py`), and a warehouse loaded before history was
kept starts its history from the rows it holds.

Why here and not dlt's `scd2` or dbt snapshots: `scd2` retires every record a load does not carry, so it needs
complete extracts, and incremental scans (Rootfi) are not; a snapshot sees only what one dbt build saw, so the
versions of many loads between two builds (`--no-transform`, Dagster's one build after many loads) would be
lost. Written with the load, in its package, history holds whoever builds the models and when.

What is versioned: the invoice and payment rows, and the payments' line items (where a payment is applied);
together they are everything a receivables figure is computed from. A version's line items carry its
`_seen_at`; a version without line items has none.
"""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from sources.common.tables.declared import EMPTY_LIST_MARKER, TIMESTAMP, TableSpec

SEEN_AT = "_seen_at"
HISTORY_SUFFIX = "_history"
# The tables whose versions are kept; for a child table, its parent table and the column naming the parent.
VERSIONED_TABLES: dict[str, tuple[str, str] | None] = {
    "invoices": None,
    "payments": None,
    "payments__line_items": ("payments", "payment_id"),
}


def history_name(table: str) -> str:
    return table + HISTORY_SUFFIX


def history_spec(spec: TableSpec) -> TableSpec:
    """The history table of a versioned table: its columns and `_seen_at`, keyed by its key and `_seen_at`
    (a merge key, so a load job run twice after a crash stores a version once). Rows are only ever added."""
    return TableSpec(
        history_name(spec.name),
        columns={**spec.columns, SEEN_AT: TIMESTAMP},
        json_columns=spec.json_columns,
        primary_key=(*spec.primary_key, SEEN_AT),
    )


def as_versions(table: pa.Table, seen_at: datetime) -> pa.Table:
    """The rows of a written table as versions seen at `seen_at`: without the marker rows that clear a child
    list (they are not rows of any version) and their column."""
    if EMPTY_LIST_MARKER in table.column_names:
        table = table.filter(pc.invert(pc.fill_null(table.column(EMPTY_LIST_MARKER), False)))
        table = table.drop_columns([EMPTY_LIST_MARKER])
    return table.append_column(SEEN_AT, pa.repeat(pa.scalar(seen_at, TIMESTAMP), table.num_rows))
