"""Property (hypothesis): hostile values in any field of any object of every provider, mixed into ordinary
pages and served over HTTP, never stop a load. The run completes, every ordinary record loads exactly as in
a clean load of the same data, and every hostile record is in `rejected_records` with its field named.

A hostile value here is one its field cannot hold: for each kind of field (an amount, a date-time, a
decimal, a text, an id, a list of ids, a list of line items, a field no spec declares), values drawn
from what the field's reader must refuse, and from what breaks the layers after it (numbers beyond 64
bits, NaN and infinities that only a lenient JSON parser lets in, unpaired surrogates, NUL characters,
names that collide with a column)."""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dlt
import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.load import run_load
from sandbox.merge import AccountSpec as MergeAccountSpec
from sandbox.merge import MergeSandbox, seed_accounts
from sandbox.merge import Settings as MergeSettings
from sandbox.merge import Store as MergeStore
from sandbox.panora import ConnectionSpec, PanoraSandbox, Settings, Store, seed_connections
from sandbox.rootfi import CompanySpec, RootfiSandbox, seed_companies
from sandbox.rootfi import Settings as RootfiSettings
from sandbox.rootfi import Store as RootfiStore
from sources.common.reading import values as c
from sources.panora.objects import OBJECTS as PANORA_OBJECTS
from tests.support import DATA_TABLES, DATASET, FAST_RETRIES

PANORA_SPEC = ConnectionSpec("solo", "xero", ("EUR", "JPY", "KWD"), invoices=12, payments=16)
ROOTFI_SPEC = CompanySpec("solo-rf", 4301, "XERO", ("GBP", "JPY"), invoices=10, payments=14)
PAGE_SIZE = 7  # hostile records share pages with ordinary ones

# -- what each kind of field must refuse --------------------------------------------------------------------
NOT_A_CHARACTER = st.sampled_from(["bad\x00nul", "\ud800 lone surrogate", "x\udfff"])
OBJECTS = st.one_of(st.dictionaries(st.text(max_size=3), st.integers(), min_size=1, max_size=2), st.lists(
    st.integers(), min_size=1, max_size=3))  # fmt: skip
NON_FINITE_OR_HUGE = st.sampled_from([math.nan, math.inf, -math.inf, 2.0**63, -(2.0**70), 1e300])
BEYOND_INT64 = st.one_of(st.integers(min_value=2**63, max_value=2**90), st.integers(max_value=-(2**63) - 1,
                                                                                     min_value=-(2**90)))  # fmt: skip
AMOUNTS = st.one_of(
    BEYOND_INT64,
    NON_FINITE_OR_HUGE,
    st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer()),
    st.text(max_size=8),
    st.booleans(),
    OBJECTS,
)
DATE_TIMES = st.one_of(
    st.sampled_from(
        ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-00:01", "31/12/2025", "2026-02-30", "yesterday",
         "2026-13-01T00:00:00Z", "T", "2026-01-01T25:00:00"]
    ),
    st.integers(),
    st.booleans(),
    NON_FINITE_OR_HUGE,
    OBJECTS,
)  # fmt: skip
DECIMALS = st.one_of(
    st.sampled_from(["1e70", "-1e26", "12345678901234567890123456789", "abc", "1,5", "NaN", "Infinity", "0x10"]),
    st.integers(min_value=10**26, max_value=10**40),
    st.sampled_from([math.nan, math.inf, 1e30]),
    st.booleans(),
    OBJECTS,
)
TEXTS = st.one_of(NOT_A_CHARACTER, NON_FINITE_OR_HUGE, st.booleans(), OBJECTS)
BOOLEANS = st.one_of(st.integers(), st.text(max_size=4), NON_FINITE_OR_HUGE, OBJECTS)  # 1 and "yes" are not true
INVOICE_KINDS = st.one_of(st.integers(), st.booleans(), NON_FINITE_OR_HUGE, OBJECTS)  # a word, or nothing
JSON_VALUES = st.builds(lambda bad: {"nested": [bad]}, NOT_A_CHARACTER)
IDS = st.one_of(st.sampled_from(["", "   ", None, "id\x00"]), st.integers(), st.booleans(), OBJECTS)
ID_LISTS = st.one_of(
    st.text(min_size=1, max_size=5), st.integers(), st.booleans(), st.dictionaries(st.text(max_size=2), st.integers(),
    min_size=1, max_size=1), st.lists(st.one_of(st.integers(), st.booleans(), st.just(""), NOT_A_CHARACTER),
    min_size=1, max_size=3),
)  # fmt: skip
LINE_LISTS = st.one_of(st.text(min_size=1, max_size=5), st.integers(), st.lists(st.integers(), min_size=1, max_size=2))
EXTRA_VALUES = st.one_of(BEYOND_INT64, NON_FINITE_OR_HUGE, NOT_A_CHARACTER, JSON_VALUES)

BY_READER: dict[Callable[..., Any], st.SearchStrategy] = {
    c.minor_units: AMOUNTS,
    c.timestamp: DATE_TIMES,
    c.decimal: DECIMALS,
    c.text: TEXTS,
    c.json_text: JSON_VALUES,
    c.boolean: BOOLEANS,
    c.invoice_kind: INVOICE_KINDS,
}


def panora_fields(kind: str) -> list[tuple[str, str, st.SearchStrategy]]:
    """(where the value goes: `field` or `line_items.field`, the field an error names, values) for every
    field of the unified model as Panora's records carry it, plus the record's id and fields no spec has."""
    spec = PANORA_OBJECTS[kind]
    out = [("id", "id", IDS)]
    out += [(f.sources[0], f.sources[0], BY_READER[f.reader]) for f in spec.fields]
    out += [(lst.sources[0], lst.sources[0], ID_LISTS) for lst in spec.id_lists]
    for obj in spec.objects:
        key = obj.sources[0]
        out.append((key, key, LINE_LISTS))
        out += [(f"{key}.{f.sources[0]}", f"{key}[0].{f.sources[0]}", BY_READER[f.reader]) for f in obj.fields]
        out += [(f"{key}.{lst.sources[0]}", f"{key}[0].{lst.sources[0]}", ID_LISTS) for lst in obj.id_lists]
    out.append(("Connection", "Connection", st.text(max_size=5)))  # its column is taken by a declared one
    out.append(("_dlt_load_id", "_dlt_load_id", st.text(max_size=5)))
    out.append(("brand_new_field", "brand_new_field", EXTRA_VALUES))
    return out


# Rootfi's own field names, by what they hold (as Rootfi documents them)
ROOTFI_AMOUNTS = st.one_of(
    st.sampled_from(["1e999999", "1.001", 0.001, 12.3456, "7e-9", "ten", "-", 1e300]),
    BEYOND_INT64,
    NON_FINITE_OR_HUGE,
    st.booleans(),
    OBJECTS,
)
CURRENCIES = st.one_of(st.sampled_from(["XAU", "EURO", "xx", "XXX", "  "]), st.integers(), st.booleans(), OBJECTS)
REFS = st.one_of(st.booleans(), OBJECTS, st.floats(allow_nan=False), st.just("  "))
ROOTFI_IDS = st.one_of(st.sampled_from(["", "   ", None]), st.booleans(), OBJECTS, st.floats(allow_nan=False))
ROOTFI_ID_LISTS = st.one_of(st.text(min_size=1, max_size=5), st.integers(), st.booleans(), st.lists(
    st.one_of(st.booleans(), st.just(""), NOT_A_CHARACTER, OBJECTS), min_size=1, max_size=3))  # fmt: skip
ROOTFI_FIELDS = {
    "payments": [
        ("amount", ROOTFI_AMOUNTS), ("currency_id", CURRENCIES), ("invoice_id", REFS), ("contact_id", REFS),
        ("account_id", REFS), ("credit_note_id", REFS), ("payment_date", DATE_TIMES), ("updated_at", DATE_TIMES),
        ("rootfi_created_at", DATE_TIMES), ("rootfi_deleted_at", DATE_TIMES), ("currency_rate", DECIMALS),
        ("platform_id", ROOTFI_IDS), ("memo", NOT_A_CHARACTER), ("payment_mode", NOT_A_CHARACTER),
        ("raw_data", JSON_VALUES), ("Currency", st.text(max_size=4)), ("brand_new_field", EXTRA_VALUES),
    ],
    "invoices": [
        ("total_amount", ROOTFI_AMOUNTS), ("sub_total", ROOTFI_AMOUNTS), ("tax_amount", ROOTFI_AMOUNTS),
        ("total_discount", ROOTFI_AMOUNTS), ("amount_due", ROOTFI_AMOUNTS), ("currency_id", CURRENCIES),
        ("contact_id", REFS), ("posted_date", DATE_TIMES), ("due_date", DATE_TIMES), ("status", TEXTS),
        ("memo", TEXTS), ("document_number", TEXTS), ("currency_rate", DECIMALS), ("line_items", LINE_LISTS),
        ("line_items.unit_amount", ROOTFI_AMOUNTS), ("line_items.total_amount", ROOTFI_AMOUNTS),
        ("line_items.quantity", DECIMALS), ("line_items.item_id", REFS), ("line_items.tax_id", REFS),
        ("line_items.tracking_category_ids", ROOTFI_ID_LISTS), ("line_items.description", TEXTS),
        ("line_items.rootfi_id", OBJECTS),
    ],
    "tracking_categories": [("name", TEXTS), ("status", TEXTS), ("parent_id", REFS), ("platform_id", ROOTFI_IDS)],
}  # fmt: skip
ROOTFI_KINDS = {"payments": "invoice_payments", "invoices": "invoices", "tracking_categories": "tracking_categories"}

# Merge's own field names, by what they hold (as Merge's SDK types them); amounts in major units, as Rootfi's
MERGE_SPEC = MergeAccountSpec("solo-mg", "xero", ("USD", "JPY"), invoices=12, payments=14)
MERGE_IDS = st.one_of(st.sampled_from(["", "   ", None]), st.booleans(), st.integers(), OBJECTS)
MERGE_REFS = st.one_of(st.booleans(), OBJECTS, st.floats(allow_nan=False), st.just("  "), st.just({"id": 7}))
MERGE_FIELDS = {
    "payments": [
        ("id", MERGE_IDS), ("total_amount", ROOTFI_AMOUNTS), ("currency", CURRENCIES), ("contact", MERGE_REFS),
        ("account", MERGE_REFS), ("company", MERGE_REFS), ("transaction_date", DATE_TIMES),
        ("created_at", DATE_TIMES), ("exchange_rate", DECIMALS), ("type", TEXTS), ("remote_was_deleted", BOOLEANS),
        ("tracking_categories", ROOTFI_ID_LISTS), ("applied_to_lines", LINE_LISTS),
        ("applied_to_lines.applied_amount", ROOTFI_AMOUNTS), ("applied_to_lines.applied_date", DATE_TIMES),
        ("applied_to_lines.related_object_id", MERGE_REFS), ("applied_to_lines.related_object_type", TEXTS),
        ("remote_data", JSON_VALUES), ("Currency", st.text(max_size=4)), ("brand_new_field", EXTRA_VALUES),
    ],
    "invoices": [
        ("id", MERGE_IDS), ("total_amount", ROOTFI_AMOUNTS), ("sub_total", ROOTFI_AMOUNTS),
        ("total_tax_amount", ROOTFI_AMOUNTS), ("balance", ROOTFI_AMOUNTS), ("currency", CURRENCIES),
        ("contact", MERGE_REFS), ("issue_date", DATE_TIMES), ("due_date", DATE_TIMES), ("status", TEXTS),
        ("number", TEXTS), ("memo", TEXTS), ("type", INVOICE_KINDS), ("exchange_rate", DECIMALS),
        ("line_items", LINE_LISTS), ("line_items.unit_price", ROOTFI_AMOUNTS),
        ("line_items.total_amount", ROOTFI_AMOUNTS), ("line_items.quantity", DECIMALS), ("line_items.item", MERGE_REFS),
        ("line_items.tracking_categories", ROOTFI_ID_LISTS), ("line_items.description", TEXTS),
        ("line_items.currency", CURRENCIES), ("line_items.id", OBJECTS),
    ],
    "tracking_categories": [("id", MERGE_IDS), ("name", TEXTS), ("status", TEXTS), ("parent_category", MERGE_REFS)],
    "contacts": [("id", MERGE_IDS), ("name", TEXTS), ("is_customer", BOOLEANS), ("email_address", TEXTS),
                 ("currency", CURRENCIES)],
}  # fmt: skip
MERGE_KINDS = {"payments": "payments", "invoices": "invoices", "tracking_categories": "tracking-categories",
               "contacts": "contacts"}  # fmt: skip


def _field_error_name(target: str) -> str:
    return target.replace(".", "[0].", 1) if "." in target else target


def _set(record: dict[str, Any], target: str, value: Any) -> bool:
    """Put `value` at `field` or at `line_items.field` of the first line; False when the record has none."""
    if "." not in target:
        record[target] = value
        return True
    key, field = target.split(".", 1)
    lines = record.get(key)
    if not isinstance(lines, list) or not lines or not isinstance(lines[0], dict):
        return False
    lines[0][field] = value
    return True


@st.composite
def hostile_cases(draw: st.DrawFn, fields: dict[str, list[tuple[str, str, st.SearchStrategy]]], sizes: dict) -> list:
    """1 to 10 records, each with one hostile value: (kind, record position, where, field named, value)."""
    picks = draw(st.lists(st.tuples(st.sampled_from(sorted(fields)), st.integers(0, 10**6)), min_size=1, max_size=10,
                          unique_by=lambda p: (p[0], p[1] % sizes[p[0]])))  # fmt: skip
    cases = []
    for kind, number in picks:
        target, named, values = draw(st.sampled_from(fields[kind]))
        cases.append((kind, number % sizes[kind], target, named, draw(values)))
    return cases


def _rows(path: Path) -> dict[str, set[tuple]]:
    """Every data table's rows (without dlt's columns and when a load saw a version), each with its key column
    first."""
    out = {}
    with duckdb.connect(str(path), read_only=True) as con:
        for table in DATA_TABLES:
            if not con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND "
                               "table_name = ?", [DATASET, table]).fetchone()[0]:  # fmt: skip
                out[table] = set()  # every record of its kind was hostile
                continue
            names = [r[0] for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
                "ORDER BY ordinal_position", [DATASET, table]).fetchall()
                if not r[0].startswith("_dlt") and r[0] != "_seen_at"]  # fmt: skip
            key = next(n for n in names if n in ("id", "payment_id", "invoice_id"))
            select = ", ".join(f'"{n}"' for n in [key, *sorted(n for n in names if n != key)])
            out[table] = set(con.execute(f"SELECT {select} FROM {DATASET}.{table}").fetchall())
    return out


def _rejected(path: Path) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if "rejected_records" not in tables:
            return []
        return con.execute(f"SELECT record_id, field, error FROM {DATASET}.rejected_records").fetchall()


def _load(provider: str, server: Any, accounts: dict, root: Path) -> Any:
    return run_load(
        provider,
        api_key=server.api_key,
        connections=accounts,
        base_url=server.url,
        destination=dlt.destinations.duckdb(credentials=str(root / "w.duckdb")),
        pipeline_name=f"prop_{provider}",
        pipelines_dir=str(root / "pipelines"),
        page_size=PAGE_SIZE,
        source_options=FAST_RETRIES,
        transform=False,
    )


class Provider:
    """How the property meets one provider: its sandbox, its records, where a hostile value goes."""

    def __init__(self, name: str) -> None:
        self.name = name
        own = MERGE_FIELDS if name == "merge" else ROOTFI_FIELDS
        self.fields = (
            {k: panora_fields(k) for k in PANORA_OBJECTS}
            if name == "panora"
            else {k: [(t, _field_error_name(t), v) for t, v in f] for k, f in own.items()}
        )
        server, records = self.server()
        with server, tempfile.TemporaryDirectory(prefix=f"clean-{name}-") as folder:
            self.sizes = {kind: len(records(kind)) for kind in self.fields}
            root = Path(folder)
            assert _load(name, server, self.accounts(server), root).status == "ok"
            self.clean = _rows(root / "w.duckdb")

    def server(self) -> tuple[Any, Callable[[str], list[dict[str, Any]]]]:
        """A fresh sandbox (rate limit off) and its records of a kind, as stored (changes show in answers)."""
        if self.name == "panora":
            sandbox = PanoraSandbox(Store(seed_connections(seed=5, specs=(PANORA_SPEC,))), Settings(rate_limit=None))
            tables = next(iter(sandbox.store.connections.values())).tables
            names = {
                "payments": "payments",
                "invoices": "invoices",
                "tracking_categories": "trackingcategories",
                "contacts": "contacts",
            }
            return sandbox, lambda kind: tables[names[kind]].rows
        if self.name == "merge":
            merge = MergeSandbox(MergeStore(seed_accounts(seed=5, specs=(MERGE_SPEC,))), MergeSettings(rate_limit=None))
            records = next(iter(merge.store.records.values()))
            return merge, lambda kind: records[MERGE_KINDS[kind]]
        store = RootfiStore(seed_companies(seed=5, specs=(ROOTFI_SPEC,)))
        rootfi = RootfiSandbox(store, RootfiSettings(rate_limit=None))
        return rootfi, lambda kind: store.records[ROOTFI_KINDS[kind]]

    def accounts(self, server: Any) -> dict:
        return server.store.tokens() if self.name in ("panora", "merge") else server.store.company_ids()

    def key(self, record: dict[str, Any]) -> str | None:
        if self.name in ("panora", "merge"):
            return record.get("id") if isinstance(record.get("id"), str) else None
        return f"rootfi:{ROOTFI_SPEC.company_id}:{record['platform_id']}"


PROVIDERS: dict[str, Provider] = {}


@pytest.fixture(scope="module", params=["panora", "rootfi", "merge"])
def provider(request, tmp_path_factory) -> Provider:
    if request.param not in PROVIDERS:
        PROVIDERS[request.param] = Provider(request.param)
    return PROVIDERS[request.param]


# The suite runs the same examples every time (a CI run must not fail on a value it happened to draw
# today); `ACCOUNTING_ETL_HYPOTHESIS=explore` draws new ones, many more, to look for what is not yet found.
settings.register_profile("suite", max_examples=6, derandomize=True, database=None)
settings.register_profile("explore", max_examples=60)
EXPLORING = os.environ.get("ACCOUNTING_ETL_HYPOTHESIS") == "explore"


@settings(settings.get_profile("explore" if EXPLORING else "suite"), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])  # fmt: skip
@given(data=st.data())
def test_hostile_values_anywhere_are_rejected_by_field_and_everything_else_loads_exactly(provider, data):
    cases = data.draw(hostile_cases(provider.fields, provider.sizes))
    server, records = provider.server()
    hostile: dict[str, str] = {}  # warehouse key of each hostile record (or its position) -> field named
    keyless: list[str] = []  # hostile records whose id itself is the hostile value
    used: set[tuple[str, int]] = set()
    for kind, position, target, named, value in cases:
        if provider.name == "panora" and target == "id" and position % (PAGE_SIZE - 1) == 0 and position:
            position += 1  # the last row of a page: Panora's server pages by that row's id, a hostile one
            # would break its paging, which no real server can do (its ids are the keys it pages by)
        position %= provider.sizes[kind]
        if (kind, position) in used:
            continue  # moved onto a record another case holds: one hostile value per record
        used.add((kind, position))
        record = records(kind)[position]
        original_key = provider.key(record)
        if provider.name == "panora":
            record = {**record, "line_items": [dict(li) for li in record.get("line_items") or []]}
            records(kind)[position] = record  # a new object: the sandbox renders it afresh
        elif "line_items" in record:
            record["line_items"] = [dict(li) for li in record["line_items"]]
        if value == "id\x00":
            value = f"id\x00{kind}{position}"  # two such ids would be one repeated row to the paging
        if not _set(record, target, value):
            continue
        if named in ("id", "platform_id"):
            keyless.append(original_key)
        else:
            hostile[original_key] = named
    with server, tempfile.TemporaryDirectory() as root:
        summary = _load(provider.name, server, provider.accounts(server), Path(root))
        assert summary.status == "ok", [s.error for s in summary.failed_scans]
        rejected = _rejected(Path(root) / "w.duckdb")
        loaded = _rows(Path(root) / "w.duckdb")
    named = {record_id: field for record_id, field, _ in rejected}
    for key, field in hostile.items():
        assert key in named, f"{key}: hostile {field} was not rejected (rejections: {rejected})"
        assert named[key] == field or named[key].startswith((f"{field}[", f"{field}.")), (key, named[key], field)
    assert len(rejected) == len(hostile) + len(keyless), rejected
    # every ordinary record, and its child rows, exactly as a clean load has them
    affected = set(hostile) | {k for k in keyless if k}
    for table in DATA_TABLES:
        expected = {row for row in provider.clean[table] if row[0] not in affected}
        got = {row for row in loaded[table] if row[0] not in affected}
        assert got == expected, table
        assert not {row[0] for row in loaded[table]} & affected, f"{table}: a hostile record was loaded"
