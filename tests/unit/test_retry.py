"""The one retry policy (pure logic): Retry-After, which statuses and errors retry, the schedule,
the deadline. The failing calls are local functions; waits are recorded, not slept."""

from __future__ import annotations

import email.utils
import errno
import http.client
import socket
import urllib.error
from datetime import UTC, datetime

import pytest

from labctl.core import retry
from labctl.core.retry import AGAIN, MAX_DELAY_S, RETRY_STATUSES, Retry, RetryPolicy, retry_after

NOW = 1_700_000_000.0


def http_date(at: float) -> str:
    return email.utils.format_datetime(datetime.fromtimestamp(at, UTC), usegmt=True)


# -- Retry-After --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("3", 3.0),
        (" 12 ", 12.0),
        ("0", 0.0),
        ("-5", 0.0),  # never a wait in the past
        ("120", MAX_DELAY_S),  # capped
        (http_date(NOW + 25), 25.0),  # IMF-fixdate
        (http_date(NOW - 60), 0.0),  # a date already past: no wait
        (http_date(NOW + 86_400), MAX_DELAY_S),
        ("Tue, 14 Nov 2023 22:13:45 GMT", 25.0),  # NOW is 22:13:20 GMT
        ("Tuesday, 14-Nov-23 22:13:30 GMT", 10.0),  # RFC 850, obsolete but allowed
        ("Tue Nov 14 22:13:25 2023", 5.0),  # asctime: no zone, GMT as HTTP-dates always are
    ],
)
def test_retry_after_reads_seconds_and_http_dates(header: str, seconds: float) -> None:
    assert retry_after(header, now=NOW) == pytest.approx(seconds)


@pytest.mark.parametrize("header", [None, "", "  ", "soon", "nan", "Someday, 99 Foo 2023"])
def test_retry_after_without_a_readable_value_is_none(header: str | None) -> None:
    assert retry_after(header, now=NOW) is None


def test_retry_after_cap_is_the_callers() -> None:
    assert retry_after("120", cap_s=600) == 120.0
    assert retry_after(http_date(NOW + 300), cap_s=60, now=NOW) == 60.0


# -- what retries -------------------------------------------------------------------------------


def test_statuses_that_retry() -> None:
    policy = RetryPolicy()
    assert {429, 500, 502, 503, 504} == RETRY_STATUSES
    for status in RETRY_STATUSES:
        assert policy.judge_status(status) == Retry(None)
    for status in (0, 200, 400, 401, 403, 404, 409, 422, 501, 505):
        assert policy.judge_status(status) is None
    assert policy.judge_status(503, "7") == Retry(7.0)
    assert policy.judge_status(429, "600") == Retry(MAX_DELAY_S)
    assert policy.judge_status(404, "7") is None  # a Retry-After does not make a 404 worth it


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
        ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
        BrokenPipeError(errno.EPIPE, "Broken pipe"),
        http.client.RemoteDisconnected("Remote end closed connection without response"),
        http.client.IncompleteRead(b"half", 100),  # dropped mid-body
        socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
        urllib.error.URLError(ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")),
        urllib.error.URLError(socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")),
        urllib.error.URLError(OSError(errno.ENETUNREACH, "Network is unreachable")),
    ],
)
def test_connection_trouble_retries(exc: Exception) -> None:
    assert RetryPolicy().judge_error(exc) is AGAIN
    assert RetryPolicy(timeouts=False).judge_error(exc) is AGAIN


@pytest.mark.parametrize("exc", [TimeoutError("timed out"), urllib.error.URLError(TimeoutError("timed out"))])
def test_timeouts_retry_only_where_the_caller_allows(exc: Exception) -> None:
    assert RetryPolicy(timeouts=True).judge_error(exc) is AGAIN
    assert RetryPolicy(timeouts=False).judge_error(exc) is None


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("not JSON"),
        KeyError("run_id"),
        OSError(errno.ENOSPC, "No space left on device"),  # our own disk, not the connection
        urllib.error.URLError("unknown url type: ftp"),
        urllib.error.HTTPError("http://x", 503, "Service Unavailable", None, None),  # judged by status
    ],
)
def test_everything_else_does_not_retry(exc: Exception) -> None:
    assert RetryPolicy().judge_error(exc) is None


# -- the schedule -------------------------------------------------------------------------------


@pytest.fixture
def spread(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The jitter's random draws, in order (each test sets them)."""
    draws: list[float] = []
    monkeypatch.setattr(retry.random, "random", lambda: draws.pop(0))
    return draws


def test_backoff_doubles_with_twenty_percent_jitter_either_way(spread: list[float]) -> None:
    policy = RetryPolicy(first_delay_s=0.5)
    spread += [0.5, 0.5, 0.5, 0.0, 1.0]
    assert [policy.delay(n) for n in (1, 2, 3)] == pytest.approx([0.5, 1.0, 2.0])
    assert policy.delay(2) == pytest.approx(0.8)  # the lowest draw: 20% sooner
    assert policy.delay(2) == pytest.approx(1.2)  # the highest: 20% later


def test_backoff_is_capped(spread: list[float]) -> None:
    spread += [1.0, 1.0]
    assert RetryPolicy(first_delay_s=1.0, max_delay_s=5.0).delay(10) == 5.0
    assert RetryPolicy(first_delay_s=1.0).delay(30) == MAX_DELAY_S


def test_retry_after_is_never_undercut(spread: list[float]) -> None:
    policy = RetryPolicy()
    spread += [0.0, 1.0, 1.0]
    assert policy.delay(1, after_s=3.0) == pytest.approx(3.0)
    assert policy.delay(1, after_s=3.0) == pytest.approx(3.6)
    assert policy.delay(1, after_s=MAX_DELAY_S) == MAX_DELAY_S


def test_without_a_spread_the_jitter_stays_within_bounds() -> None:
    policy = RetryPolicy(first_delay_s=0.2)
    waits = [policy.delay(3) for _ in range(500)]
    assert min(waits) >= 0.64 and max(waits) <= 0.96
    assert max(waits) - min(waits) > 0.1  # spread out: clients that failed together do not return together


# -- running a call -----------------------------------------------------------------------------


class Flaky:
    """Fails with ``failures`` in turn, then answers "ok"."""

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    recorded: list[float] = []
    monkeypatch.setattr(retry.time, "sleep", recorded.append)
    return recorded


def judge_connections(exc: Exception) -> Retry | None:
    return AGAIN if isinstance(exc, ConnectionError) else None


def test_run_retries_until_an_answer(sleeps: list[float]) -> None:
    flaky = Flaky(ConnectionResetError(), ConnectionRefusedError())
    assert RetryPolicy(attempts=3).run(flaky, judge=judge_connections) == "ok"
    assert flaky.calls == 3 and len(sleeps) == 2
    assert 0.16 <= sleeps[0] <= 0.24 and 0.32 <= sleeps[1] <= 0.48


def test_run_raises_the_last_failure_as_it_is(sleeps: list[float]) -> None:
    last = ConnectionResetError("third")
    flaky = Flaky(ConnectionResetError("first"), ConnectionResetError("second"), last)
    with pytest.raises(ConnectionResetError) as caught:
        RetryPolicy(attempts=3).run(flaky, judge=judge_connections)
    assert caught.value is last and flaky.calls == 3 and len(sleeps) == 2


def test_run_does_not_retry_what_the_judge_refuses(sleeps: list[float]) -> None:
    flaky = Flaky(ValueError("bad request"))
    with pytest.raises(ValueError, match="bad request"):
        RetryPolicy(attempts=5).run(flaky, judge=judge_connections)
    assert flaky.calls == 1 and sleeps == []


def test_one_attempt_never_retries(sleeps: list[float]) -> None:
    flaky = Flaky(ConnectionResetError())
    with pytest.raises(ConnectionResetError):
        RetryPolicy(attempts=1).run(flaky, judge=judge_connections)
    assert flaky.calls == 1 and sleeps == []


def test_run_waits_as_long_as_the_server_asks(sleeps: list[float]) -> None:
    flaky = Flaky(ConnectionResetError())
    assert RetryPolicy().run(flaky, judge=lambda exc: Retry(after_s=4.0)) == "ok"
    assert 4.0 <= sleeps[0] <= 4.8


def test_run_stops_when_the_next_wait_would_outlast_the_deadline(sleeps: list[float]) -> None:
    flaky = Flaky(ConnectionResetError("busy"))
    with pytest.raises(ConnectionResetError, match="busy"):
        RetryPolicy(attempts=5).run(flaky, judge=lambda exc: Retry(after_s=5.0), deadline=lambda: 2.0)
    assert flaky.calls == 1 and sleeps == []  # no wait it could not afford
    flaky = Flaky(ConnectionResetError("busy"))
    assert RetryPolicy(attempts=5).run(flaky, judge=judge_connections, deadline=lambda: 2.0) == "ok"
    assert flaky.calls == 2  # a short backoff fits


def test_a_policy_needs_an_attempt() -> None:
    with pytest.raises(ValueError, match="attempts must be at least 1"):
        RetryPolicy(attempts=0)
