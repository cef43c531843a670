"""The fast (columnar) page builder (`sources/common/tables/arrow_path.py`) gives exactly the reference
normalizer's tables, and gives up, leaving the page to the reference, on every value it cannot take as it is."""

from __future__ import annotations

import pytest

from sandbox.panora import ConnectionSpec, seed_connections
from sandbox.panora.server import drop_zero_money
from sources.common.scan import ScanResult, _reference_tables
from sources.common.stored.changes import record_hash
from sources.common.tables.arrow_path import builder_for
from sources.panora.objects import OBJECTS

PAYMENT, INVOICE, TRACKING_CATEGORY = OBJECTS["payments"], OBJECTS["invoices"], OBJECTS["tracking_categories"]
CONTACT = OBJECTS["contacts"]

SEED = seed_connections(
    seed=3, specs=(ConnectionSpec("c", "xero", ("EUR", "JPY", "KWD"), invoices=120, payments=160),)
)[0]
AS_SENT = {
    "payments": [drop_zero_money(p) for p in SEED.payments],
    "invoices": [drop_zero_money(i) for i in SEED.invoices],
    "tracking_categories": [drop_zero_money(t) for t in SEED.tracking_categories],
}

EDGE_INVOICES = [
    {
        "id": "inv-spec-names",
        "line_items": [
            {
                "description": "spec names",
                "unit_price": 100,
                "quantity": 2,
                "total_amount": 200,
                "item_id": "it-1",
                "tracking_categories": ["tc-1", "tc-2"],
            },
            {"name": "report shape", "type": "Operating Activities", "remote_generated_at": "2026-01-02T03:04:05Z"},
        ],
    },
    {"id": "inv-no-lists"},
    {"id": "inv-null-lists", "line_items": None, "tracking_categories": None},
    {"id": "inv-empty-line-categories", "line_items": [{"description": "x", "acc_tracking_categories": []}]},
    {"id": "inv-extras", "brand_new": 7, "nested_new": {"a": [1, 2]}, "line_items": [{"line_extra": "kept"}]},
    {"id": "inv-offset", "issue_date": "2026-07-17T02:00:00+02:00", "exchange_rate": "1e3"},
    # the side of the ledger in the providers' spellings, and look-alikes that must not count as one
    {"id": "inv-kind-bill", "type": " accpay\t"},
    {"id": "inv-kind-docs", "type": "Accounts_Receivable"},
    {"id": "inv-kind-unified", "kind": "payable", "type": "ACCREC"},
    {"id": "inv-kind-dotless-i", "type": "acc\u0131rec"},
    {"id": "inv-kind-nbsp", "type": "ACCPAY\u00a0"},
    {"id": "inv-kind-unknown", "type": "SALES"},
]
CONTACTS = [
    {"id": "ct-1", "name": "Acme GmbH", "is_customer": True, "is_supplier": False, "currency": "EUR"},
    {"id": "ct-2", "name": "Both Ways Ltd", "is_customer": True, "is_supplier": True, "email_address": "a@b.c"},
    {"id": "ct-3", "name": None, "status": "Archived", "field_mappings": {"x": 1}},
]


def both_ways(spec, records, connection="c"):
    hashes = [record_hash(r, spec.volatile, spec.nested_lists) for r in records]
    fast = builder_for(spec).try_build(records, hashes, connection)
    rejects: list = []
    reference = _reference_tables(
        spec,
        connection,
        [(i, r, h) for i, (r, h) in enumerate(zip(records, hashes, strict=True))],
        rejects,
        ScanResult(spec.resource, connection),
    )
    return fast, reference, rejects


def rows(table) -> list[tuple]:
    names = sorted(table.column_names)
    return sorted(tuple(repr(row[n]) for n in names) for row in table.to_pylist())


@pytest.mark.parametrize(
    ("resource", "records"),
    [
        ("payments", AS_SENT["payments"]),
        ("invoices", AS_SENT["invoices"]),
        ("tracking_categories", AS_SENT["tracking_categories"]),
        ("invoices", EDGE_INVOICES),
        ("contacts", CONTACTS),
    ],
)
def test_fast_path_builds_exactly_the_reference_tables(resource, records):
    fast, reference, rejects = both_ways(OBJECTS[resource], records)
    assert fast is not None, "the fast path gave up on well-formed records"
    assert rejects == []
    assert set(fast) == set(reference)
    for name in reference:
        fast_table, fast_json = fast[name]
        ref_table, ref_json = reference[name]
        assert fast_table.schema == ref_table.schema, name
        assert sorted(fast_json) == sorted(ref_json), name
        assert rows(fast_table) == rows(ref_table), name


BAD = [
    {"id": "p", "total_amount": "12.50"},
    {"id": "p", "total_amount": True},
    {"id": "p", "transaction_date": "31/12/2025"},
    {"id": "p", "transaction_date": "2025-12-31"},  # valid, but only the reference reads a bare date
    {"id": "p", "currency": 978},  # the reference accepts a number as text
    {"id": "p", "exchange_rate": "0.1234567890123"},  # more places than stored: the reference rounds
    {"id": "p", "line_items": [{"applied_amount": "ten"}]},
    {"id": "p", "line_items": [None]},
    {"id": "p", "tracking_categories": "not-a-list"},
    {"id": "p", "line_items": "not-a-list"},
    {"id": "p", "tracking_categories": [None]},
    {"id": "p", "tracking_categories": [{"id": "tc-as-object"}]},
    {"currency": "EUR"},
    {"id": "   "},
]


@pytest.mark.parametrize("bad", BAD, ids=[repr(b)[:50] for b in BAD])
def test_fast_path_gives_up_on_what_it_cannot_take_as_it_is(bad):
    page = [*AS_SENT["payments"][:20], bad]
    fast, _, _ = both_ways(PAYMENT, page)
    assert fast is None


def test_fast_path_gives_up_on_a_line_items_category_list_that_is_not_a_list():
    page = [*AS_SENT["invoices"][:5], {"id": "i", "line_items": [{"acc_tracking_categories": "tc-1"}]}]
    fast, _, _ = both_ways(INVOICE, page)
    assert fast is None


def test_every_object_kind_has_a_fast_path():
    assert all(builder_for(spec) is not None for spec in OBJECTS.values())


def test_an_invoices_kind_is_read_from_the_providers_word_in_ascii_only():
    fast, _, _ = both_ways(INVOICE, EDGE_INVOICES)
    kinds = dict(zip(fast["invoices"][0]["id"].to_pylist(), fast["invoices"][0]["kind"].to_pylist(), strict=True))
    assert {k: v for k, v in kinds.items() if k.startswith("inv-kind")} == {
        "inv-kind-bill": "payable",
        "inv-kind-docs": "receivable",
        "inv-kind-unified": "payable",  # an adapter's own word comes first
        "inv-kind-dotless-i": None,
        "inv-kind-nbsp": None,
        "inv-kind-unknown": None,
    }


@pytest.mark.parametrize("flag", [1, "true", "yes"])
def test_a_contact_flag_that_is_not_a_json_boolean_is_left_to_the_reference_path(flag):
    assert builder_for(CONTACT).try_build([{"id": "ct", "is_customer": flag}], ["h"], "c") is None
    _, _, rejects = both_ways(CONTACT, [{"id": "ct", "is_customer": flag}])
    assert len(rejects) == 1 and "is_customer" in repr(rejects[0]) and "expected true or false" in repr(rejects[0])


@pytest.mark.parametrize(
    "record",
    [
        {"id": "p", "total_amount": 5.5},  # pyarrow would truncate it to 5
        {"id": "p", "total_amount": -9.223372036854776e18},  # a float at -2^63: pyarrow would take it as INT64_MIN
        {"id": "p", "line_items": [{"applied_amount": 12.25}]},
    ],
)
def test_the_fast_path_gives_up_on_an_amount_that_is_not_an_integer(record):
    assert builder_for(PAYMENT).try_build([record], ["h"], "c") is None
    fast, _, rejects = both_ways(PAYMENT, [record])
    assert fast is None and len(rejects) == 1 and rejects[0]["record_id"] == "p"


def test_only_a_stored_record_sends_the_marker_rows_that_clear_its_children(monkeypatch):
    """A record new to the warehouse has no child rows to clear: its empty lists send no marker rows (a first
    load of a million records stages a million fewer rows), except one per child table and scan while the
    table has no rows, so that the table exists. A stored record whose list emptied still sends its own (stored
    rows that cannot be read fail the scan instead: tests/integration/test_readers.py)."""
    import numpy as np

    from sources.common.digests import SortedDigests, hash_bytes, id_digests
    from sources.common.scan import scan_connection
    from sources.common.stored.changes import LoadedRecords
    from sources.common.tables.declared import EMPTY_LIST_MARKER

    records = [{"id": f"inv-new-{n}"} for n in range(5)] + [{"id": "inv-stored"}]
    stored_ids, _ = SortedDigests.of(id_digests(["inv-stored"]))
    stored = LoadedRecords("invoices", "c", stored_ids, hash_bytes(["00" * 16]), np.zeros(1, dtype=bool))

    def markers_for(loaded):
        monkeypatch.setattr(LoadedRecords, "read", classmethod(lambda cls, *args, **kwargs: loaded))
        items = list(scan_connection(INVOICE, "c", [list(records)], ScanResult("invoices", "c")))
        found: dict[str, list[str]] = {}
        for item in items:
            table = getattr(item, "data", item)
            if EMPTY_LIST_MARKER in table.column_names:
                marked = table.filter(table.column(EMPTY_LIST_MARKER).fill_null(False))
                name = getattr(item.meta, "table_name", None) or item.meta.hints["table_name"]
                found.setdefault(name, []).extend(marked.column("invoice_id").to_pylist())
        return found

    children = {t.name for t in INVOICE.tables if t.is_child}
    first_load = markers_for(LoadedRecords.empty("invoices", "c"))
    assert set(first_load) == children and all(len(ids) == 1 for ids in first_load.values())
    later = markers_for(stored)
    assert set(later) == children and all("inv-stored" in ids and len(ids) <= 2 for ids in later.values())
