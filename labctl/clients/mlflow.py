"""The one client of a learner's MLflow tracking server: JSON calls, paged searches, downloads.

Plain ``urllib`` rather than ``MlflowClient``: importing MLflow takes seconds (13 s on a busy
2-core machine) in a CLI that may export hundreds of learners, and graders run without it;
the client's timeouts and retries are process-wide environment variables, and its retries
would outlast a grading check's deadline on a dead server; its entities drop fields they do
not know, where the REST answer is MLflow's own wire format, kept as it is.

Every request has a timeout (capped by an optional ``deadline``: seconds left) and is retried
by :mod:`labctl.core.retry`'s policy: 429/5xx honouring ``Retry-After``, refused or dropped
connections (the server is often reached through a port-forward, which loses connections now
and then), timeouts where the policy allows. A download dropped mid-body is fetched again
from the start. ``reach`` maps each URL as it is connected to (a cluster DNS name to a
port-forward); messages show the URL as written. Failures are :class:`MlflowError`, which
carries the HTTP status, MLflow's ``error_code`` and whether another try later may help.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Literal, TypeVar
from urllib.parse import quote, urlencode

from labctl.core.errors import LabctlError
from labctl.core.retry import Retry, RetryPolicy

T = TypeVar("T")
API = "/api/2.0/mlflow/"
EVERY_PAGE = 100_000  # a bound against a server whose page token never ends, not a real limit
DEFAULT_POLICY = RetryPolicy(attempts=4, first_delay_s=0.5)
_CHUNK = 1 << 20
_SHOWN_CHARS = 160  # of a path in a message: the server is named once already
# MLflow quotes paths this way; "%" is not safe, so a name holding one arrives as written.
_PATH_SAFE = "/:@-._~!$&'()*+,;="

Kind = Literal["http", "timeout", "connection", "answer"]


class MlflowError(LabctlError):
    """A call failed. ``status``: the HTTP status (0: no answer); ``error_code``: MLflow's;
    ``kind``: ``http`` (an error answer), ``timeout``, ``connection`` (refused, dropped, no such
    host), ``answer`` (not what MLflow answers); ``transient``: whether trying again later may help.
    ``where`` names the server, ``message`` is the server's message (or the connection's reason)."""

    def __init__(
        self,
        text: str,
        *,
        where: str,
        method: str,
        path: str,
        kind: Kind,
        transient: bool,
        status: int = 0,
        error_code: str = "",
        message: str = "",
    ) -> None:
        super().__init__(text)
        self.where, self.method, self.path = where, method, path
        self.kind, self.transient = kind, transient
        self.status, self.error_code, self.message = status, error_code, message


class NotFound(MlflowError):
    """MLflow says the object does not exist (``RESOURCE_DOES_NOT_EXIST``)."""


class TooLarge(MlflowError):
    """A file to read is bigger than the caller's limit."""


class _Answered(Exception):
    """An HTTP error answer, read and closed inside the attempt (so retrying leaks nothing)."""

    def __init__(self, status: int, reason: str, retry_after: str | None, body: bytes) -> None:
        super().__init__(f"{status} {reason}")
        self.status, self.reason, self.retry_after, self.body = status, reason, retry_after, body


class MlflowRest:
    """Calls to one tracking server at ``base_url``; ``where`` is how errors name it."""

    def __init__(
        self,
        base_url: str,
        *,
        where: str | None = None,
        timeout_s: float = 10.0,
        policy: RetryPolicy = DEFAULT_POLICY,
        deadline: Callable[[], float] | None = None,
        reach: Callable[[str], str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.where = where or f"MLflow at {self.base_url}"
        self.timeout_s = timeout_s
        self.policy = policy
        self.deadline = deadline
        self.reach = reach

    def get(self, endpoint: str, /, **query: Any) -> dict[str, Any]:
        """GET ``/api/2.0/mlflow/<endpoint>?<query>``."""
        return self._json("GET", endpoint, query, None)

    def post(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body`` as JSON to ``/api/2.0/mlflow/<endpoint>``."""
        return self._json("POST", endpoint, {}, body)

    def pages(
        self, method: str, endpoint: str, request: dict[str, Any], key: str, *, max_pages: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every item under ``key`` of a paged answer, following ``next_page_token``.

        ``max_pages`` stops quietly after that many pages (where the first ones are enough to
        judge); without it every page is read, and a token that never ends is an error.
        """
        request = dict(request)
        for _ in range(max_pages or EVERY_PAGE):
            page = self.post(endpoint, request) if method == "POST" else self.get(endpoint, **request)
            yield from page.get(key) or []
            token = page.get("next_page_token")
            if not token:
                return
            request["page_token"] = token
        if max_pages is None:
            shown = _short(endpoint)
            raise MlflowError(
                f"{self.where}: {method} {shown} still had more pages after {EVERY_PAGE}",
                where=self.where,
                method=method,
                path=shown,
                kind="answer",
                transient=False,
            )

    def version(self) -> str:
        """The server's MLflow version (``GET /version``)."""
        return self._call("GET", "/version", {}, None, lambda r: r.read()).decode().strip()

    def download(self, path: str, query: dict[str, Any], destination: Path) -> int:
        """Stream ``path?query`` (a path from the server's root) into ``destination``; its size."""
        destination.parent.mkdir(parents=True, exist_ok=True)

        def save(response: IO[bytes]) -> int:
            with destination.open("wb") as out:  # "wb": a retry starts the file again
                return _copy(response, out)

        return self._call("GET", path, query, None, save)

    def read(self, path: str, query: dict[str, Any], *, limit: int, timeout_s: float | None = None) -> bytes:
        """The file at ``path?query`` (from the server's root); :class:`TooLarge` past ``limit`` bytes.

        ``timeout_s`` replaces the client's per-request timeout (a model's pickle may be big).
        """
        data = self._call("GET", path, query, None, lambda r: _limited(r, limit), timeout_s=timeout_s)
        if len(data) > limit:
            shown = _short(_shown(path, query))
            raise TooLarge(
                f"{self.where}: GET {shown} is larger than {limit} bytes",
                where=self.where,
                method="GET",
                path=shown,
                kind="answer",
                transient=False,
            )
        return data

    # -- the requests ------------------------------------------------------------------------------

    def _json(self, method: str, endpoint: str, query: dict[str, Any], body: Any) -> dict[str, Any]:
        text = self._call(method, API + endpoint, query, body, lambda r: r.read(), shown=endpoint)
        try:
            answer = json.loads(text or b"{}")
        except ValueError:
            what = "something other than JSON"
        else:
            if isinstance(answer, dict):
                return answer
            what = "JSON that is not an object"
        shown = _short(_shown(endpoint, query))
        raise MlflowError(
            f"{self.where} answered {method} {shown} with {what}",
            where=self.where,
            method=method,
            path=shown,
            kind="answer",
            transient=False,
        )

    def _call(
        self,
        method: str,
        path: str,
        query: dict[str, Any],
        body: Any,
        consume: Callable[[IO[bytes]], T],
        *,
        shown: str | None = None,
        timeout_s: float | None = None,
    ) -> T:
        """``consume`` the answer to one request, retried by the policy; :class:`MlflowError`."""
        url = self.base_url + quote(path, safe=_PATH_SAFE)
        if query:
            url += "?" + urlencode(query, doseq=True)
        data = json.dumps(body).encode() if body is not None else None
        waited = [0.0]  # the last attempt's timeout, for its message

        def attempt() -> T:
            waited[0] = timeout = self._timeout(timeout_s)
            request = urllib.request.Request(self.reach(url) if self.reach else url, data=data, method=method)
            request.add_header("Content-Type", "application/json")
            try:
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    return consume(response)
            except urllib.error.HTTPError as exc:
                raise _answered(exc) from None

        named = _short(_shown(shown if shown is not None else path, query))
        try:
            return self.policy.run(attempt, judge=self._judge, deadline=self.deadline)
        except _Answered as exc:
            raise self._refused(exc, method, named) from None
        except (urllib.error.URLError, ConnectionError, TimeoutError, http.client.HTTPException) as exc:
            raise self._failed(exc, method, named, waited[0]) from None

    def _timeout(self, timeout_s: float | None) -> float:
        timeout = self.timeout_s if timeout_s is None else timeout_s
        return min(timeout, self.deadline()) if self.deadline is not None else timeout

    def _judge(self, exc: Exception) -> Retry | None:
        if isinstance(exc, _Answered):
            return self.policy.judge_status(exc.status, exc.retry_after)
        return self.policy.judge_error(exc)

    def _refused(self, exc: _Answered, method: str, shown: str) -> MlflowError:
        try:
            error = json.loads(exc.body or b"{}")
        except ValueError:
            error = None
        if not isinstance(error, dict):
            error = {}
        code, message = str(error.get("error_code") or ""), str(error.get("message") or exc.reason)
        kind = NotFound if code == "RESOURCE_DOES_NOT_EXIST" else MlflowError
        status = f"{exc.status} {code}".rstrip()
        return kind(
            f"{self.where} answered {method} {shown} with {status}: {message}",
            where=self.where,
            method=method,
            path=shown,
            kind="http",
            transient=self._judge(exc) is not None,
            status=exc.status,
            error_code=code,
            message=message,
        )

    def _failed(self, exc: Exception, method: str, shown: str, timeout: float) -> MlflowError:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        transient = self._judge(exc) is not None
        if isinstance(reason, TimeoutError):
            return MlflowError(
                f"{self.where} did not answer {method} {shown} within {timeout:.3g} s",
                where=self.where,
                method=method,
                path=shown,
                kind="timeout",
                transient=transient,
                message=str(reason),
            )
        return MlflowError(
            f"{self.where}: cannot {method} {shown}: {reason}",
            where=self.where,
            method=method,
            path=shown,
            kind="connection",
            transient=transient,
            message=str(reason),
        )


def _answered(exc: urllib.error.HTTPError) -> _Answered:
    try:
        body = exc.read()
    except (OSError, http.client.HTTPException):
        body = b""  # the error's body dropped: its status still says what happened
    finally:
        exc.close()
    return _Answered(exc.code, str(exc.reason), exc.headers.get("Retry-After"), body)


def _copy(response: IO[bytes], out: IO[bytes]) -> int:
    size = 0
    while chunk := response.read(_CHUNK):
        out.write(chunk)
        size += len(chunk)
    _complete(response)
    return size


def _limited(response: IO[bytes], limit: int) -> bytes:
    data = response.read(limit + 1)
    if len(data) <= limit:  # all of it, then; more is TooLarge, complete or not
        _complete(response)
    return data


def _complete(response: IO[bytes]) -> None:
    """Raise when the body ended before its Content-Length: ``http.client``'s ``read(n)`` ends
    quietly at a connection closed mid-body, and a truncated file must be fetched again."""
    left = getattr(response, "length", None)
    if left:
        raise http.client.IncompleteRead(b"", left)


def _shown(path: str, query: dict[str, Any]) -> str:
    return f"{path}?{urlencode(query, doseq=True)}" if query else path


def _short(shown: str) -> str:
    """A path for a message: a long one (a deep artifact, a big query) cut short."""
    return shown if len(shown) <= _SHOWN_CHARS else shown[: _SHOWN_CHARS - 3] + "..."
