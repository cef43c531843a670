"""What one try of a request came to (`sources/common/http/outcomes.py`), as a table: the rule that a failure
after sending is a retry for a read and an unknown outcome for a write, in one place."""

from __future__ import annotations

import pytest

from sources.common.http import outcomes
from sources.common.http.outcomes import Verdict

READ, WRITE = True, False


@pytest.mark.parametrize(
    ("decision", "verdict"),
    [
        (outcomes.answer(200, "", READ), Verdict.OK),
        (outcomes.answer(201, "", WRITE), Verdict.OK),
        (outcomes.answer(429, "slow down", READ), Verdict.THROTTLED),
        (outcomes.answer(429, "slow down", WRITE), Verdict.THROTTLED),  # refused: nothing was written
        (outcomes.answer(500, "oops", READ), Verdict.RETRY),
        (outcomes.answer(503, "oops", WRITE), Verdict.UNKNOWN),
        (outcomes.answer(500, "API Key not found", READ, permanent=True), Verdict.FINAL),
        (outcomes.answer(500, "API Key not found", WRITE, permanent=True), Verdict.FINAL),
        (outcomes.answer(400, "bad body", WRITE), Verdict.FINAL),
        (outcomes.answer(404, "no such", READ), Verdict.FINAL),
        (outcomes.not_sent("connection failed (ConnectError)"), Verdict.RETRY),  # for a write too
        (outcomes.no_answer("ReadTimeout: timed out", READ), Verdict.RETRY),
        (outcomes.no_answer("ReadTimeout: timed out", WRITE), Verdict.UNKNOWN),
        (outcomes.broken_body("invalid JSON body", READ, 200), Verdict.RETRY),
        (outcomes.broken_body("invalid JSON body", WRITE, 201), Verdict.UNKNOWN),
        (outcomes.unreadable("answer larger than 256 MiB", READ), Verdict.FINAL),
        (outcomes.unreadable("answer larger than 256 MiB", WRITE, 201), Verdict.UNKNOWN),
    ],
)
def test_each_answer_or_failure_decides_what_the_client_does_next(decision, verdict):
    assert decision.verdict is verdict


def test_what_the_error_says_for_a_write_names_the_answer_and_a_retry_its_status():
    assert outcomes.answer(502, "gateway", READ).problem == "HTTP 502: gateway"
    assert outcomes.answer(502, "gateway", WRITE).problem == "gateway"
    assert outcomes.no_answer("ReadTimeout: t", WRITE).problem == "no answer (ReadTimeout: t)"
    assert outcomes.not_sent("connection failed (ConnectError)").sent is False
    assert outcomes.no_answer("ReadTimeout: t", READ).sent is True
