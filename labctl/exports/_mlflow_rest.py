"""A learner's MLflow tracking server over its REST API: JSON calls, paged searches, downloads.

Plain ``urllib`` rather than ``MlflowClient``: importing MLflow takes seconds (13 s on a busy
2-core machine) in a CLI that may export hundreds of learners; the client's timeouts and
retries are process-wide environment variables; and its entities drop fields they do not know,
where the REST answer is MLflow's own wire format, kept as it is.

Every request has a timeout and is retried (with backoff, honouring ``Retry-After``) when the
connection drops or the server answers 429/5xx: the server is reached through a port-forward,
which loses connections now and then.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, urlencode

from labctl.exports._files import DumpError

ATTEMPTS = 4
BACKOFF_S = (0.5, 1.0, 2.0)
MAX_PAGES = 100_000  # a bound against a server whose page token never ends, not a real limit
_CHUNK = 1 << 20


class NotFound(DumpError):
    """MLflow says the object does not exist (``RESOURCE_DOES_NOT_EXIST``).

    Walking artifacts catches it (a run may go while we walk); anywhere else it fails the dump
    like any other :class:`DumpError`.
    """


class MlflowRest:
    """Calls to one tracking server; errors are :class:`DumpError` naming ``who`` and the server."""

    def __init__(self, base_url: str, *, who: str, timeout_s: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.who = who
        self.timeout_s = timeout_s

    def where(self) -> str:
        return f"{self.who}MLflow at {self.base_url}"

    def get(self, endpoint: str, **query: Any) -> dict[str, Any]:
        """GET ``/api/2.0/mlflow/<endpoint>``."""
        return self._json("GET", self._url(f"/api/2.0/mlflow/{endpoint}", query), None)

    def post(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", self._url(f"/api/2.0/mlflow/{endpoint}", {}), body)

    def pages(
        self, method: str, endpoint: str, request: dict[str, Any], key: str
    ) -> Iterator[dict[str, Any]]:
        """Every item of a paged answer, following ``next_page_token`` to the end."""
        request = dict(request)
        for _ in range(MAX_PAGES):
            page = self.post(endpoint, request) if method == "POST" else self.get(endpoint, **request)
            yield from page.get(key) or []
            token = page.get("next_page_token")
            if not token:
                return
            request["page_token"] = token
        raise DumpError(f"{self.where()}: {endpoint} still had more pages after {MAX_PAGES}")

    def version(self) -> str:
        with self._open("GET", f"{self.base_url}/version", None) as response:
            return str(response.read().decode().strip())

    def download(self, path: str, query: dict[str, Any], destination: Path) -> int:
        """Stream ``path?query`` (an absolute path on the server) into ``destination``; its size."""
        destination.parent.mkdir(parents=True, exist_ok=True)
        url = self._url(path, query)
        for attempt in range(ATTEMPTS):
            with self._open("GET", url, None) as response, destination.open("wb") as out:
                try:
                    return _copy(response, out)
                except (ConnectionError, TimeoutError, http.client.HTTPException) as exc:
                    # Dropped mid-body: _open retries connecting, this retries the transfer.
                    if attempt == ATTEMPTS - 1:
                        raise DumpError(f"{self.where()}: downloading {_short(url)}: {exc!r}") from None
            time.sleep(BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)])
        raise AssertionError("unreachable")  # the last attempt returns or raises

    def _url(self, path: str, query: dict[str, Any]) -> str:
        url = self.base_url + quote(path, safe="/:@-._~!$&'()*+,;=")
        return f"{url}?{urlencode(query, doseq=True)}" if query else url

    def _json(self, method: str, url: str, body: dict[str, Any] | None) -> dict[str, Any]:
        with self._open(method, url, body) as response:
            text = response.read()
        try:
            answer = json.loads(text or b"{}")
        except ValueError:
            raise DumpError(
                f"{self.where()}: {method} {_short(url)} answered something other than JSON"
            ) from None
        if not isinstance(answer, dict):
            raise DumpError(f"{self.where()}: {method} {_short(url)} answered JSON that is not an object")
        return answer

    def _open(self, method: str, url: str, body: dict[str, Any] | None) -> Any:
        """The open response; retries refused/dropped connections, 429 and 5xx."""
        data = json.dumps(body).encode() if body is not None else None
        for attempt in range(ATTEMPTS):
            request = urllib.request.Request(url, data=data, method=method)
            request.add_header("Content-Type", "application/json")
            wait = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
            try:
                return urllib.request.urlopen(request, timeout=self.timeout_s)
            except urllib.error.HTTPError as exc:
                if exc.code in (429, 500, 502, 503, 504) and attempt < ATTEMPTS - 1:
                    wait = _retry_after(exc.headers.get("Retry-After"), wait)
                    exc.close()
                else:
                    raise self._refused(exc, method, url) from None
            except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                if attempt == ATTEMPTS - 1:
                    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
                    raise DumpError(f"{self.where()}: cannot {method} {_short(url)}: {reason}") from None
            time.sleep(wait)
        raise AssertionError("unreachable")  # the last attempt returns or raises

    def _refused(self, exc: urllib.error.HTTPError, method: str, url: str) -> Exception:
        try:
            error = json.loads(exc.read() or b"{}")
        except ValueError:
            error = {}
        finally:
            exc.close()
        if not isinstance(error, dict):
            error = {}
        code, message = error.get("error_code", ""), error.get("message", exc.reason)
        status = f"{exc.code} {code}".rstrip()
        text = f"{self.where()}: {method} {_short(url)} answered {status}: {message}"
        return NotFound(text) if code == "RESOURCE_DOES_NOT_EXIST" else DumpError(text)


def _copy(response: IO[bytes], out: IO[bytes]) -> int:
    size = 0
    while chunk := response.read(_CHUNK):
        out.write(chunk)
        size += len(chunk)
    return size


def _short(url: str) -> str:
    """The path of a URL, without the server (named once already) or a long query."""
    path = url.split("://", 1)[-1].split("/", 1)[-1]
    return "/" + (path if len(path) <= 160 else path[:157] + "...")


def _retry_after(header: str | None, default: float) -> float:
    try:
        return min(max(float(header), 0.0), 30.0) if header else default
    except ValueError:
        return default  # an HTTP date: rare enough not to parse
