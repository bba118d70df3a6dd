"""MLflow's REST API for the mlflow checks: each request bounded by the check's deadline.

Plain ``urllib`` rather than ``MlflowClient``: the client's timeout and retries are
process-wide environment variables, its retries would outlast a check's deadline on a dead
server, and graders import without MLflow installed.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from graders.core import Context, GraderError, TransientGraderError

if TYPE_CHECKING:
    from graders.mlflow_checks import TrackingParams

MAX_PAGES = 10  # bounds a search: 10 pages of up to 1,000 runs is more than any lab makes


class Mlflow:
    """The learner's tracking server over REST, each request bounded by the check's deadline."""

    def __init__(self, params: TrackingParams, ctx: Context) -> None:
        uri = params.tracking_uri
        if "{namespace}" in uri:
            if not ctx.namespace:
                raise GraderError(f"tracking_uri {uri} needs the learner's namespace; this check has none")
            uri = uri.replace("{namespace}", ctx.namespace)
        self.uri, self.ctx, self.timeout_s = uri, ctx, params.request_timeout_s

    def get(self, endpoint: str, /, **query: Any) -> dict[str, Any] | None:
        """GET ``/api/2.0/mlflow/<endpoint>``; None when MLflow says the object does not exist."""
        return self._call("GET", f"{endpoint}?{urlencode(query)}" if query else endpoint, None)

    def post(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", endpoint, body) or {}

    def pages(
        self, method: str, endpoint: str, request: dict[str, Any], key: str
    ) -> Iterator[dict[str, Any]]:
        """Every item of a paginated search (at most ``MAX_PAGES`` pages)."""
        request = dict(request)
        for _ in range(MAX_PAGES):
            page = (self.post(endpoint, request) if method == "POST" else self.get(endpoint, **request)) or {}
            yield from page.get(key, [])
            if not page.get("next_page_token"):
                return
            request["page_token"] = page["next_page_token"]

    def _call(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any] | None:
        url = f"{self.uri}/api/2.0/mlflow/{path}"
        data = json.dumps(body).encode() if body is not None else None
        timeout = self.ctx.remaining(at_most=self.timeout_s)
        where = f"the MLflow tracking server at {self.uri}"
        try:
            request = urllib.request.Request(self.ctx.reach(url), data=data, method=method)
            request.add_header("Content-Type", "application/json")
            with urllib.request.urlopen(request, timeout=timeout) as response:
                text = response.read()
        except urllib.error.HTTPError as exc:
            self._refuse(exc, method, path)
            return None  # the object does not exist
        except TimeoutError:
            raise GraderError(f"{where} did not answer {method} {path} within {timeout:.3g} s") from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise GraderError(f"{where} did not answer {method} {path} within {timeout:.3g} s") from None
            # Refused, reset, no such host: the stack may be restarting; worth another try.
            raise TransientGraderError(f"cannot connect to {where}: {exc.reason}") from None
        except OSError as exc:
            raise TransientGraderError(f"connection to {where} failed: {exc}") from None
        try:
            answer = json.loads(text or b"{}")
        except ValueError:
            raise GraderError(f"{where} answered {method} {path} with something other than JSON") from None
        if not isinstance(answer, dict):
            raise GraderError(f"{where} answered {method} {path} with JSON that is not an object")
        return answer

    def _refuse(self, exc: urllib.error.HTTPError, method: str, path: str) -> None:
        """Raise for an HTTP error answer, unless it says the object does not exist."""
        try:
            error = json.loads(exc.read() or b"{}")
        except ValueError:
            error = None
        if not isinstance(error, dict):
            error = {}
        code, message = error.get("error_code", ""), error.get("message", exc.reason)
        if code == "RESOURCE_DOES_NOT_EXIST":
            return None
        what = f"the MLflow tracking server at {self.uri} answered {method} {path} with {exc.code}"
        if exc.code >= 500:
            raise TransientGraderError(f"{what}: {message}")
        # Anything else 4xx is our request or our stack being wrong (a Host header the server's
        # guard refuses, an MLflow too old for the endpoint), not the learner's work.
        raise GraderError(f"{what}{f' {code}' if code else ''}: {message}")
