"""Panora's client (`sources/panora/client.py`) against scripted answers (httpx.MockTransport): a cursor that
repeats fails the scan, and every request carries the key and the connection token. Each way the real
server differs from its spec, over HTTP against the sandbox: `tests/integration/test_panora_quirks.py`."""

from __future__ import annotations

import httpx
import pytest

from sources.common.errors import PaginationError
from sources.panora.client import PanoraClient


def test_a_repeating_cursor_fails_the_scan_clearly():
    page = {"previous_cursor": None, "next_cursor": "11111111-1111-4111-8111-111111111111", "data": [{"id": "a"}]}
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=page))
    client = PanoraClient("sk_test_key", "http://panora.test", transport=transport)
    with pytest.raises(PaginationError, match="a second time"):
        list(client.pages("payments", "tok", page_size=50))


def test_every_request_carries_key_and_connection_token():
    seen = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append((request.headers.get("x-api-key"), request.headers.get("x-connection-token")))
        return httpx.Response(200, json={"previous_cursor": None, "next_cursor": None, "data": []})

    client = PanoraClient("sk_test_key", "http://panora.test", transport=httpx.MockTransport(answer))
    list(client.pages("invoices", "token-1", page_size=50))
    assert seen == [("sk_test_key", "token-1")]
    with pytest.raises(ValueError, match="without a connection token"):
        list(client.pages("invoices", "", page_size=50))
    assert len(seen) == 1  # refused before any request left
