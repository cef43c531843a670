"""Masking credentials and neutralizing server text (`sources/common/secrets.py`): a secret is masked as written
and as a server may write it back (another case, JSON-escaped, `\\u`-escaped, percent-encoded), in text and in
raw bytes, longest first; one too short to mask is said once; `printable` escapes what a terminal would act on.
That no credential reaches a run's output, tables or state: `tests/integration/test_secret_leaks.py`."""

from __future__ import annotations

import json

import pytest

from sources.common.secrets import MASK, MIN_SECRET_LENGTH, SecretRegistry, mask_bytes, printable

SECRET = "tok/en+1 é"  # a slash, a plus, a space and a letter beyond ASCII: each is written back differently
WRITTEN_BACK = {
    "as sent": SECRET,
    "another case": "TOK/EN+1 é",  # the ASCII letters; bytes are matched without regard to ASCII case only
    "JSON, non-ASCII escaped": json.dumps(SECRET)[1:-1],
    "JSON, slash escaped too": json.dumps(SECRET)[1:-1].replace("/", "\\/"),
    "percent-encoded": "tok%2Fen%2B1%20%C3%A9",
    "percent-encoded, lowercase": "tok%2fen%2b1%20%c3%a9",
    "form-encoded (space as +)": "tok%2Fen%2B1+%C3%A9",
}


def registry(*secrets: object) -> SecretRegistry:
    made = SecretRegistry()
    made.add(secrets)
    return made


def test_printable_leaves_plain_text_and_escapes_what_a_terminal_runs():
    assert printable("Invoice 42: 100.00 EUR, naïve café") == "Invoice 42: 100.00 EUR, naïve café"
    assert printable("a\x1b[2Jb\x07c\u202ed\nline") == "a\\x1b[2Jb\\x07c\\u202ed\\x0aline"
    assert printable("one\ntwo", keep_newlines=True) == "one\ntwo"


def test_printable_escapes_line_separators_private_and_astral_format_characters_but_keeps_emoji():
    assert printable("a\u2028b\ue000c\U000e0001d\U0001f600e") == "a\\u2028b\\ue000c\\U000e0001d\U0001f600e"
    assert printable("one\r\ntwo", keep_newlines=True) == "one\\x0d\ntwo"  # only the line feed is kept


@pytest.mark.parametrize(
    "echo",
    [
        "sk_live_abc/def+ghi",  # as sent
        "SK_LIVE_ABC/DEF+GHI",  # another case
        "sk_live_abc\\/def+ghi",  # JSON-escaped slash
        "".join(f"\\u{ord(c):04x}" for c in "sk_live_abc/def+ghi"),  # every character \\u-escaped
        "sk_live_abc%2Fdef%2Bghi",  # percent-encoded
        "sk_live_abc%2fdef%2bghi",
    ],
)
def test_a_secret_echoed_escaped_encoded_or_in_another_case_is_masked(echo):
    import httpx

    from sources.common.http.client import ApiClient

    secret = "sk_live_abc/def+ghi"
    body = ('{"error": "bad key ' + echo + '", "record": {"note": "' + echo + '"}}').encode()
    client = ApiClient("http://api.test", {"x-api-key": secret}, secret_headers=["x-api-key"],
                       transport=httpx.MockTransport(lambda request: httpx.Response(200, content=body)))  # fmt: skip
    answer = client.request_json("GET", "/x")
    assert secret.lower() not in json.dumps(answer).lower()
    assert answer["record"]["note"] == "***"
    assert mask_bytes(echo.encode(), [secret]) == b"***" or "\\u" in echo


@pytest.mark.parametrize("way", list(WRITTEN_BACK))
def test_every_way_a_server_writes_a_secret_back_is_redacted_in_text_and_in_bytes(way):
    echo = WRITTEN_BACK[way]
    assert registry(SECRET).redact(f"bad key <{echo}> given") == f"bad key <{MASK}> given"
    assert mask_bytes(f'{{"error": "{echo}"}}'.encode(), [SECRET]) == b'{"error": "***"}'


def test_text_is_matched_without_regard_to_case_beyond_ascii_too():
    assert registry(SECRET).redact(f"bad key {SECRET.upper()}") == f"bad key {MASK}"


def test_a_secret_that_contains_another_is_masked_whole():
    secrets = registry("abcdef123", "abcdef123456")
    assert secrets.redact("long abcdef123456, short abcdef123") == f"long {MASK}, short {MASK}"
    assert mask_bytes(b"abcdef123456", ["abcdef123", "abcdef123456"]) == MASK.encode()


def test_text_without_a_secret_is_returned_as_it_is_and_only_texts_are_registered():
    secrets = registry(SECRET, None, 42, "")
    plain = "nothing to hide here"
    assert secrets.redact(plain) is plain
    assert SECRET in secrets and 42 not in secrets and None not in secrets
    assert SecretRegistry().redact(f"no secrets registered: {SECRET}") == f"no secrets registered: {SECRET}"
    assert mask_bytes(SECRET.encode(), []) == SECRET.encode()


def test_describe_is_one_masked_printable_line_cut_to_its_limit():
    secrets = registry(SECRET)
    line = secrets.describe(ValueError(f"key {SECRET} refused\x1b[2J\nnext line"))
    assert line == f"ValueError: key {MASK} refused\\x1b[2J\\x0anext line"
    assert secrets.describe(RuntimeError("x" * 1000), limit=40) == "RuntimeError: " + "x" * 26


def test_a_secret_too_short_to_mask_is_said(caplog):
    registry = SecretRegistry()
    with caplog.at_level("WARNING", "accounting_etl.secrets"):
        registry.add(["abc"])
    assert "not masked" in caplog.text and "abc" not in caplog.text
    assert registry.redact("abc") == "abc"


def test_a_short_secret_is_said_once_and_never_registered(caplog):
    secrets = SecretRegistry()
    short, long_enough = "k" * (MIN_SECRET_LENGTH - 1), "k" * MIN_SECRET_LENGTH
    with caplog.at_level("WARNING", "accounting_etl.secrets"):
        secrets.add([short])
        secrets.add(["q" * (MIN_SECRET_LENGTH - 2)])
        secrets.add([long_enough])
    assert len([r for r in caplog.records if "not masked" in r.getMessage()]) == 1
    assert short not in secrets and long_enough in secrets
    assert secrets.redact(f"{long_enough}!") == f"{MASK}!"


def test_a_secret_with_a_letter_beyond_ascii_is_masked_in_bytes_written_wholly_in_another_case():
    assert mask_bytes('{"error": "TOK/EN+1 É"}'.encode(), [SECRET]) == b'{"error": "***"}'
    assert mask_bytes(b'{"error": "tok/en+1 \\u00c9"}', [SECRET.upper()]) == b'{"error": "***"}'
