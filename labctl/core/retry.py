"""The one retry policy: what is worth another try, how long to wait first, and when to stop.

Everything that talks HTTP retries by it: the Kubernetes API module (``labctl.kube``), the
MLflow REST client (``labctl.clients.mlflow``) and the grading engine (a check that failed on
our side's transient trouble). Worth another try: an answer of 429, 500, 502, 503 or 504; a
connection refused, reset or dropped mid-answer, or a name that does not resolve yet (a
learner's stack restarting); a timeout only where the caller says so (a grader's timeout is
the learner's deadline spent, not a hiccup). The waits grow exponentially with jitter, so
many clients that failed together do not come back together, and are capped; an answer's
``Retry-After`` (seconds or an HTTP-date) is honoured, never undercut. An optional deadline
stops the retries when the next wait would outlast it.

Pure standard library: the bottom layer, like the rest of :mod:`labctl.core`.
"""

from __future__ import annotations

import email.utils
import http.client
import math
import random
import socket
import time
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from typing import TypeVar

T = TypeVar("T")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_DELAY_S = 30.0  # no wait is longer, whatever a server's Retry-After asks


@dataclass(frozen=True)
class Retry:
    """The verdict on a failure: try again, no sooner than ``after_s`` when the server said so."""

    after_s: float | None = None


AGAIN = Retry()


def retry_after(value: str | None, *, cap_s: float = MAX_DELAY_S, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for, in [0, ``cap_s``]; None when absent or unreadable.

    Both forms of RFC 9110: delay-seconds (``"120"``) and an HTTP-date
    (``"Wed, 21 Oct 2015 07:28:00 GMT"``, counted from ``now``, default the wall clock).
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # "-0000": UTC, as HTTP-dates always are
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), cap_s)


def transient_error(exc: BaseException, *, timeouts: bool) -> bool:
    """Whether a failed connection is worth another try (see the module's docstring)."""
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, TimeoutError):
        return timeouts
    if isinstance(exc, urllib.error.URLError):
        # urllib wraps every failure to connect: refused, unreachable, no such host (yet).
        # An HTTPError's reason is text: its status is judged, not the connection.
        return isinstance(reason, OSError)
    return isinstance(exc, ConnectionError | http.client.HTTPException | socket.gaierror)


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts, how long between them, and whether a timed-out attempt is retried.

    ``attempts`` counts the first try: 1 never retries (for a caller whose own caller retries).
    """

    attempts: int = 4
    first_delay_s: float = 0.2  # after the first failure; doubled after each next one
    max_delay_s: float = MAX_DELAY_S
    jitter: float = 0.2  # each wait is spread over +-20% (Retry-After: up to +20%, never less)
    timeouts: bool = True

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {self.attempts}")

    def judge_status(self, status: int, retry_after_header: str | None = None) -> Retry | None:
        """The verdict on an HTTP answer of ``status`` (an error one: callers return the rest)."""
        if status not in RETRY_STATUSES:
            return None
        return Retry(retry_after(retry_after_header, cap_s=self.max_delay_s))

    def judge_error(self, exc: BaseException) -> Retry | None:
        """The verdict on a connection that failed before or while answering."""
        return AGAIN if transient_error(exc, timeouts=self.timeouts) else None

    def delay(self, attempt: int, *, after_s: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (from 1), jittered and capped."""
        spread = random.random()
        if after_s is not None:
            wait = after_s * (1 + self.jitter * spread)
        else:
            wait = self.first_delay_s * 2 ** (attempt - 1) * (1 - self.jitter + 2 * self.jitter * spread)
        return min(wait, self.max_delay_s)

    def run(
        self,
        call: Callable[[], T],
        *,
        judge: Callable[[Exception], Retry | None],
        deadline: Callable[[], float] | None = None,
    ) -> T:
        """``call()``, tried again while ``judge`` says a failure is worth it, attempts remain and
        the wait fits before ``deadline`` (seconds left). The last failure is raised as it is."""
        for attempt in range(1, self.attempts + 1):
            try:
                return call()
            except Exception as exc:
                verdict = judge(exc)
                if verdict is None or attempt == self.attempts:
                    raise
                wait = self.delay(attempt, after_s=verdict.after_s)
                if deadline is not None and wait >= deadline():
                    raise
                time.sleep(wait)
        raise AssertionError("unreachable")  # the last attempt returns or raises
