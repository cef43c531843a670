"""What a server's answer can make a request do is bounded, in-process (httpx.MockTransport, a fake clock):
waits it asks for are capped, huge or deeply nested bodies end the request with a clear error, an echoed
credential is masked. That one connection's hostile answer fails only its own scan of a load over HTTP:
`tests/integration/test_hostile_servers.py`."""

from __future__ import annotations

import httpx
import pytest

from sources.common.errors import ApiError
from sources.common.http.client import ApiClient, RetryPolicy, decode_json, retry_after_seconds
from tests.support import FakeClock, fake_budget, ok, scripted


def throttled(retry_after: str) -> httpx.Response:
    return httpx.Response(429, headers={"Retry-After": retry_after}, json={"message": "slow down"})


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("3", 3.0),
        ("-5", 0.0),
        ("soon", None),  # neither seconds nor a date: ignored, the backoff applies
        ("nan", None),
        ("inf", float("inf")),
        ("1e400", float("inf")),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # a date in the past
        ("Wed, 21 Oct 2015 07:28:00", None),  # a date without its zone is not an HTTP date
    ],
)
def test_retry_after_is_read_whatever_it_says(header, seconds):
    assert retry_after_seconds({"retry-after": header}) == seconds


@pytest.mark.parametrize("header", ["inf", "99999999", "Fri, 01 Jan 9999 00:00:00 GMT"])
def test_a_wait_beyond_the_cap_ends_the_request_at_once_with_a_clear_error(header):
    transport, calls = scripted(throttled(header), ok())
    sleeps: list[float] = []
    api = ApiClient(
        "http://api.test",
        {},
        policy=RetryPolicy(max_wait_seconds=120),
        transport=transport,
        sleep=sleeps.append,
    )
    clock = FakeClock()
    api.budget = fake_budget(clock)
    with pytest.raises(ApiError) as raised:
        api.get_json("/accounting/payments")
    assert "longer than max_wait_seconds=120" in str(raised.value) and raised.value.status == 429
    assert len(calls) == 1 and sleeps == [] and clock.slept == []


def test_an_unreadable_retry_after_falls_back_to_the_backoff():
    transport, calls = scripted(throttled("whenever"), throttled("-1"), ok({"n": 1}))
    api = ApiClient("http://api.test", {}, policy=RetryPolicy(backoff_base=0.5), transport=transport)
    clock = FakeClock()
    api.budget = fake_budget(clock)
    assert api.get_json("/x") == {"n": 1}
    assert len(calls) == 3
    assert 0.25 <= clock.slept[0] <= 0.5  # the first backoff, not forever and not zero
    assert 0.5 <= clock.slept[1] <= 1.0  # a negative wait is no wait: the backoff applies too


def test_a_rate_limit_reset_years_away_is_not_trusted_the_budget_waits_one_window_at_most():
    reset = {"x-ratelimit-limit": "100", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "315360000"}
    transport, calls = scripted(httpx.Response(200, headers=reset, json={"n": 1}), ok({"n": 2}), ok())
    api = ApiClient("http://api.test", {}, policy=RetryPolicy(max_wait_seconds=120), transport=transport)
    clock = FakeClock()
    api.budget = fake_budget(clock)
    assert api.get_json("/x") == {"n": 1}
    assert api.get_json("/x") == {"n": 2}  # the server's 100 hits expire within its window, not in 10 years
    assert len(calls) == 2 and clock.slept == [pytest.approx(61.05)]
    api.policy = RetryPolicy(max_wait_seconds=30)
    api.budget.release("GET /x", reset)
    with pytest.raises(ApiError) as raised:  # a window longer than the cap: refused at once, not slept
        api.get_json("/x")
    assert "not sent" in str(raised.value) and len(calls) == 2


@pytest.mark.parametrize("announced", [True, False])
def test_a_body_beyond_the_cap_is_refused_while_it_streams(announced):
    body = b'{"data": [' + b'{"id": "x"},' * 2000 + b'{"id": "y"}]}'

    def stream():
        yield from (body[i : i + 1000] for i in range(0, len(body), 1000))

    headers = {"content-length": str(len(body))} if announced else {}
    transport, calls = scripted(httpx.Response(200, headers=headers, content=stream()))
    api = ApiClient("http://api.test", {}, policy=RetryPolicy(max_body_bytes=10_000), transport=transport)
    with pytest.raises(ApiError) as raised:
        api.get_json("/x")
    assert "max_body_bytes=10,000" in str(raised.value)
    assert len(calls) == 1  # not retried: the same answer would come again


def test_json_that_orjson_refuses_is_read_by_the_standard_parser_and_depth_is_bounded():
    assert decode_json(b'{"a": 1e400, "b": NaN, "c": 100000000000000000000}')["c"] == 10**20
    with pytest.raises(ValueError):
        decode_json(b'{"a": [1, 2')
    with pytest.raises(Exception, match="nested deeper"):
        decode_json(b"[" * 100_000 + b"]" * 100_000)


def test_a_deeply_nested_error_body_ends_the_request_with_its_start():
    transport, _ = scripted(httpx.Response(400, content=b'{"message": ' * 50_000 + b"1" + b"}" * 50_000))
    with pytest.raises(ApiError) as raised:
        ApiClient("http://api.test", {}, transport=transport).get_json("/x")
    assert raised.value.status == 400 and len(raised.value.message) <= 500


def test_an_echoed_credential_is_masked_in_every_answer_before_it_is_read():
    body = {"data": {"status": "SUCCESS", "data": [{"status": "failed", "error": f"bad key {SECRET_KEY}"}]}}
    transport, _ = scripted(httpx.Response(200, json=body), httpx.Response(401, json={"message": SECRET_KEY}))
    api = ApiClient("http://api.test", {"api_key": SECRET_KEY}, transport=transport, secret_headers=("api_key",))
    assert api.get_json("/core/syncs/1")["data"]["data"][0]["error"] == "bad key ***"
    with pytest.raises(ApiError) as raised:
        api.get_json("/x")
    assert SECRET_KEY not in str(raised.value) and "***" in str(raised.value)


SECRET_KEY = "rootfi_live_5f2d9c1e-aaaa-4bbb-8ccc-123456789abc"
