"""Each way the real Panora server differs from its spec, met over HTTP against the sandbox."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from sources.common.errors import ApiError
from sources.panora.client import PanoraClient
from tests.support import DATASET


def test_small_pages_use_base64_cursors_and_drop_the_repeated_row(warehouse, sandbox):
    summary = warehouse.load(page_size=7, resources=["payments"])
    assert warehouse.count("payments") == 200
    eu = next(s for s in summary.scans if s.connection == "acme-eu")
    # 80 rows, 7 per page of which 6 are new after the first: 1 + ceil(73 / 6) pages
    assert eu.pages == 14 and eu.records == 80
    # a raw UUID cursor is what a naive client sends; the server refuses it
    token = sandbox.store.tokens()["acme-eu"]
    headers = {"x-api-key": sandbox.api_key, "x-connection-token": token}
    first = httpx.get(f"{sandbox.url}/accounting/payments", params={"limit": 5}, headers=headers).json()
    raw = httpx.get(
        f"{sandbox.url}/accounting/payments", params={"limit": 5, "cursor": first["next_cursor"]}, headers=headers
    )
    assert raw.status_code == 400
    encoded = base64.b64encode(first["next_cursor"].encode()).decode()
    second = httpx.get(f"{sandbox.url}/accounting/payments", params={"limit": 5, "cursor": encoded}, headers=headers)
    assert second.json()["data"][0]["id"] == first["data"][-1]["id"]  # the quirk the client must handle


def test_the_specs_prev_cursor_envelope_loads_the_same(warehouse, sandbox):
    sandbox.settings.cursor_key = "prev_cursor"
    warehouse.load(page_size=9, resources=["invoices"])
    assert warehouse.count("invoices") == 150


def test_a_server_without_the_repeated_row_loads_the_same(warehouse, sandbox):
    sandbox.settings.repeat_boundary_row = False
    warehouse.load(page_size=9, resources=["invoices"])
    assert warehouse.count("invoices") == 150


def test_unknown_connection_token_fails_that_connection_only(warehouse, sandbox):
    connections = {**sandbox.store.tokens(), "stale": "0b0b0b0b-dead-4bee-8fff-000000000000"}
    summary = warehouse.load(connections=connections, resources=["payments"])
    assert summary.status == "partial"
    failed = summary.failed_scans
    assert [(s.connection, s.status) for s in failed] == [("stale", "failed")]
    assert "HTTP 500" in failed[0].error and "0b0b0b0b-dead" not in failed[0].error
    assert summary.requests["retries"] == 0  # a permanent 500: not retried
    assert warehouse.count("payments") == 200  # the other connections loaded


def test_unknown_api_key_is_final_and_named(sandbox):
    client = PanoraClient("sk_live_wrong", sandbox.url)
    with pytest.raises(ApiError) as raised:
        list(client.pages("payments", sandbox.store.tokens()["acme-eu"], page_size=10))
    assert raised.value.status == 500 and "API Key not found" in str(raised.value)
    assert raised.value.attempts == 1 and "sk_live_wrong" not in str(raised.value)


def test_spec_names_server_names_and_report_item_shape_land_in_the_same_columns(warehouse, sandbox):
    store = sandbox.store
    categories = [c["id"] for c in store.all("acme-eu", "trackingcategories")][:2]
    spec_shaped = {
        "number": "SPEC-1",
        "currency": "EUR",
        "total_amount": 5000,
        "tracking_categories": [],
        "line_items": [
            {
                "description": "spec names",
                "unit_price": 2500,
                "quantity": 2,
                "total_amount": 5000,
                "item_id": "item-spec",
                "tracking_categories": categories,
            },
            {
                "name": "Revenue",
                "value": 123.45,
                "type": "Operating Activities",
                "parent_item": None,
                "remote_id": "rep-1",
                "remote_generated_at": "2026-01-02T03:04:05Z",
                "brand_new_field": {"k": 1},
            },
        ],
        "an_unknown_field": "kept",
    }
    record = store.insert("acme-eu", "invoices", spec_shaped)
    warehouse.load(resources=["invoices"])
    lines = warehouse.query(
        f"SELECT line_index, description, item_id, total_amount, value, type, brand_new_field::VARCHAR "
        f"FROM {DATASET}.invoices__line_items WHERE invoice_id = ? ORDER BY line_index",
        record["id"],
    )
    assert lines[0][:4] == (0, "spec names", "item-spec", 5000)
    assert lines[1][1] == "Revenue" and float(lines[1][4]) == 123.45 and lines[1][5] == "Operating Activities"
    assert json.loads(lines[1][6]) == {"k": 1}
    assert warehouse.query(
        f"SELECT tracking_category_id FROM {DATASET}.invoices__line_items__tracking_categories "
        f"WHERE invoice_id = ? ORDER BY position",
        record["id"],
    ) == [(c,) for c in categories]
    assert warehouse.scalar(f"SELECT an_unknown_field FROM {DATASET}.invoices WHERE id = ?", record["id"]) == "kept"


def test_remote_data_is_kept_as_json_when_asked(warehouse):
    warehouse.load(resources=["payments"], source_options={"remote_data": True})
    assert warehouse.count("payments", "remote_data IS NULL") == 0
    provider = warehouse.scalar(f"SELECT remote_data->>'provider' FROM {DATASET}.payments WHERE connection = 'acme-us'")
    assert provider == "quickbooks"
