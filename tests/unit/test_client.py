"""The shared HTTP client's rules (`sources/common/http/client.py`), each pinned with one precise fault
(httpx.MockTransport) or a fake clock. The rate budget it draws on: `test_budget.py`."""

from __future__ import annotations

import httpx
import pytest

from sources.common.errors import ApiError, CredentialsRefused, OutcomeUnknown
from sources.common.http import client as http_client
from sources.common.http.client import ApiClient, RetryPolicy
from tests.support import FakeClock, fake_budget, ok, scripted

SECRET = "sk_test_0123456789abcdef"


def client(transport, sleeps=None, **policy) -> ApiClient:
    sleeps = sleeps if sleeps is not None else []
    return ApiClient(
        "http://api.test",
        {"x-api-key": SECRET},
        policy=RetryPolicy(**{"max_attempts": 4, "backoff_base": 0.5, **policy}),
        transport=transport,
        sleep=sleeps.append,
    )


def test_5xx_is_retried_with_growing_jittered_backoff():
    transport, calls = scripted(httpx.Response(503), httpx.Response(502), httpx.Response(500), ok({"n": 1}))
    sleeps: list[float] = []
    api = client(transport, sleeps)
    assert api.get_json("/x") == {"n": 1}
    assert len(calls) == 4 and api.stats.retries == 3
    # equal jitter: each wait within [ceiling/2, ceiling], ceilings 0.5, 1, 2
    for wait, ceiling in zip(sleeps, (0.5, 1.0, 2.0), strict=True):
        assert ceiling / 2 <= wait <= ceiling


def test_network_faults_and_broken_bodies_are_retried():
    request = httpx.Request("GET", "http://api.test/x")
    transport, calls = scripted(
        httpx.ReadTimeout("slow", request=request),
        httpx.RemoteProtocolError("peer closed connection without sending complete message body", request=request),
        httpx.ConnectError("refused", request=request),
        httpx.Response(200, content=b'{"data": [1, 2'),
        ok({"data": [1, 2]}),
    )
    api = client(transport, max_attempts=5)
    assert api.get_json("/x") == {"data": [1, 2]}
    assert len(calls) == 5


def test_retry_budget_ends_in_an_error_that_names_the_request_not_the_secret():
    transport, calls = scripted(*[httpx.Response(503, json={"message": "upstream down"})] * 4)
    with pytest.raises(ApiError) as raised:
        client(transport).get_json("/accounting/payments", params={"limit": 5})
    error = str(raised.value)
    assert "GET /accounting/payments?limit=5" in error and "upstream down" in error and "4 attempts" in error
    assert SECRET not in error and len(calls) == 4


def test_4xx_is_final_with_the_servers_message():
    transport, calls = scripted(httpx.Response(400, json={"statusCode": 400, "message": ["limit must be a number"]}))
    with pytest.raises(ApiError) as raised:
        client(transport).get_json("/x")
    assert raised.value.status == 400 and "limit must be a number" in str(raised.value)
    assert len(calls) == 1


def test_a_permanent_5xx_is_not_retried():
    transport, calls = scripted(httpx.Response(500, json={"message": "ReferenceError: API Key not found."}))
    api = ApiClient(
        "http://api.test", {}, transport=transport, permanent_error=lambda r: "API Key" in r.text, sleep=lambda s: None
    )
    with pytest.raises(ApiError):
        api.get_json("/x")
    assert len(calls) == 1


def test_429_waits_for_retry_after_and_does_not_spend_the_retry_budget():
    throttled = [httpx.Response(429, headers={"Retry-After": "3"}) for _ in range(5)]
    transport, calls = scripted(*throttled, ok())
    sleeps: list[float] = []
    api = client(transport, sleeps, max_attempts=2)
    clock = FakeClock()
    api.budget = fake_budget(clock)
    api.get_json("/x")
    assert len(calls) == 6 and api.stats.throttled == 5 and api.stats.retries == 0
    assert clock.slept == pytest.approx([3.0] * 5) and sleeps == []  # the waits are the budget's, as told


def test_a_post_is_never_resent_once_it_may_have_arrived():
    request = httpx.Request("POST", "http://api.test/accounting/payments")
    for fault in (httpx.Response(500), httpx.ReadTimeout("slow", request=request), httpx.Response(201, content=b"{")):
        transport, calls = scripted(fault, ok())
        with pytest.raises(OutcomeUnknown):
            client(transport).request_json("POST", "/accounting/payments", json_body={"total_amount": 1})
        assert len(calls) == 1


def test_a_post_is_resent_when_it_never_left():
    request = httpx.Request("POST", "http://api.test/accounting/payments")
    transport, calls = scripted(httpx.ConnectError("refused", request=request), httpx.Response(201, json={"id": "p1"}))
    assert client(transport).request_json("POST", "/accounting/payments", json_body={}) == {"id": "p1"}
    assert len(calls) == 2


def test_a_refused_credential_is_not_offered_again_by_any_client_of_the_process(monkeypatch):
    """A 401 for the API key: later requests with that key, from this client or another, fail at once with
    the same refusal and send nothing; a refused account token stops that account only."""
    monkeypatch.setattr(http_client, "_REFUSED", {})  # what earlier tests of this process were refused
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("x-account", ""))
        if request.headers.get("x-api-key") == "wrong":
            return httpx.Response(401, json={"detail": "Invalid API key."})
        if request.headers.get("x-account") == "revoked":
            return httpx.Response(403, json={"detail": "Invalid account token."})
        return ok({"ok": True})

    def api(key: str) -> ApiClient:
        return ApiClient(
            "http://refusing.test",
            {"x-api-key": key},
            transport=httpx.MockTransport(answer),
            refused_credential=lambda r: (
                None if r.status_code < 400 else ("account" if r.status_code == 403 else "api_key")
            ),
            secret_headers=("x-api-key", "x-account"),
        )

    first, second = api("wrong"), api("wrong")
    for client_, account in ((first, "a"), (first, "b"), (second, "c")):
        with pytest.raises(CredentialsRefused) as refused:
            client_.get_json("/payments", headers={"x-account": account})
        assert refused.value.credential == "api_key" and refused.value.status == 401
    assert seen == ["a"]  # one request left; the others were refused here
    good = api("right")
    with pytest.raises(CredentialsRefused) as refused:
        good.get_json("/payments", headers={"x-account": "revoked"})
    assert refused.value.credential == "account"
    with pytest.raises(CredentialsRefused):
        good.get_json("/invoices", headers={"x-account": "revoked"})
    assert good.get_json("/payments", headers={"x-account": "fine"}) == {"ok": True}
    assert seen == ["a", "revoked", "fine"]
