"""The writer contract (`sources/common/writer.py`): a queued date is the calendar day it names, the options and
records a writer is given and hands back, and every provider that pushes has a writer speaking the whole
protocol (`Writer`) with the batch size its API takes."""

from __future__ import annotations

import dataclasses
import inspect
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from pipelines.registry import providers
from sources.common.errors import ApiError
from sources.common.http.client import RetryPolicy
from sources.common.reading.values import server_moment
from sources.common.writer import Created, Job, Writer, WriterOptions, calendar_day

PUSHING = [p for p in providers() if p.pushes]
PROTOCOL_METHODS = ("send", "job", "refresh", "find", "backoff", "close")


@pytest.mark.parametrize(
    ("value", "day"),
    [
        (None, None),
        ("", None),
        (date(2026, 11, 20), date(2026, 11, 20)),
        ("2026-11-20", date(2026, 11, 20)),
        ("2026-11-20T23:30:00-08:00", date(2026, 11, 20)),  # the day where it was written, not in UTC
        (datetime(2026, 11, 20, 23, 30, tzinfo=timezone(timedelta(hours=-8))), date(2026, 11, 20)),
        (datetime(2026, 11, 21, 0, 30, tzinfo=timezone(timedelta(hours=9))), date(2026, 11, 21)),
        (datetime(2026, 11, 20, 12, 0), date(2026, 11, 20)),
    ],
)
def test_a_queued_date_is_the_calendar_day_it_names(value, day):
    assert calendar_day(value) == day


@pytest.mark.parametrize(
    ("value", "naive_is_utc", "moment"),
    [
        ("2026-11-20T10:00:00Z", False, datetime(2026, 11, 20, 10, tzinfo=UTC)),
        ("2026-11-20T12:00:00+02:00", False, datetime(2026, 11, 20, 10, tzinfo=UTC)),
        ("2026-11-20T10:00:00", True, datetime(2026, 11, 20, 10, tzinfo=UTC)),
        ("2026-11-20T10:00:00", False, None),  # a zone nobody said is no moment to compare with
        ("yesterday", True, None),
        (None, True, None),
        (1764237600, True, None),
    ],
)
def test_a_servers_timestamp_is_an_aware_moment_or_none(value, naive_is_utc, moment):
    assert server_moment(value, naive_is_utc) == moment


def test_a_queued_text_that_is_no_date_is_refused():
    with pytest.raises(ValueError):
        calendar_day("20/11/2026")


def test_writer_options_default_to_the_providers_policy_and_are_frozen():
    options = WriterOptions()
    assert (options.policy, options.stats, options.page_size, options.batch_size) == (None, None, 500, 50)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.batch_size = 1  # type: ignore[misc]


def test_a_created_record_is_compared_by_identity_not_by_the_content_read_back():
    when = datetime(2026, 11, 20, tzinfo=UTC)
    first = Created("rootfi:1:P-1", "P-1", external_id="x-1", content={"total_amount": 100}, created_at=when)
    again = Created("rootfi:1:P-1", "P-1", external_id="x-1", content={"total_amount": 999}, created_at=when)
    assert first == again
    assert first != Created("rootfi:1:P-2", "P-2", external_id="x-1", created_at=when)
    assert Created(None).content is None and Created(None).remote_id is None


def test_a_job_has_nothing_created_or_failed_until_it_says_so():
    job = Job("job-1", "job-1 running", ended=False, failed=False)
    assert (job.created, job.failures, job.reasons, job.error, job.unnamed_reason) == ({}, {}, (), None, None)
    assert Job("job-2", "", ended=True, failed=True).created is not job.created  # each its own


def test_every_provider_that_pushes_names_what_it_pushes_and_has_a_writer():
    assert PUSHING, "no provider pushes"
    for provider in providers():
        assert provider.pushes <= {"payment", "invoice"}, provider.name
        assert (provider.make_writer is not None) == bool(provider.pushes), provider.name


@pytest.mark.parametrize("provider", PUSHING, ids=[p.name for p in PUSHING])
def test_each_writer_speaks_the_whole_protocol(provider):
    writer = provider.make_writer("sk_test_key_123456", "http://127.0.0.1:9", WriterOptions(batch_size=7))
    try:
        for name in PROTOCOL_METHODS:
            method = getattr(writer, name, None)
            assert callable(method), f"{provider.name}: no {name}"
            wanted = list(inspect.signature(getattr(Writer, name)).parameters)[1:]  # without self
            assert list(inspect.signature(method).parameters) == wanted, f"{provider.name}.{name}"
        assert isinstance(writer.runs_in_background, bool)
        # one record per request, or as many as the options say where the API takes several at once
        assert writer.batch_size in (1, 7), writer.batch_size
        waits = [writer.backoff(send) for send in range(4)]
        policy = RetryPolicy()
        assert all(0 <= wait <= policy.backoff_base * 2**send for send, wait in enumerate(waits)), waits
    finally:
        writer.close()


def test_a_writer_that_runs_no_jobs_says_it_knows_none():
    """The engine asks a writer for a job it may have lost track of; one whose API creates at once has none."""
    (panora,) = [p for p in PUSHING if p.name == "panora"]
    writer = panora.make_writer("sk_test_key_123456", "http://127.0.0.1:9", WriterOptions())
    try:
        assert writer.batch_size == 1 and writer.runs_in_background is False
        with pytest.raises(ApiError) as raised:
            writer.job("acme-eu", "job-1")
        assert raised.value.status == 404
    finally:
        writer.close()
