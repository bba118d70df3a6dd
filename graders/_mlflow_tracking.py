"""The learner's tracking server as the mlflow checks see it: where it is, and its errors as graders'.

:class:`TrackingParams` says where the server is; :class:`Mlflow` is :mod:`labctl.clients.mlflow`'s
client bounded by the check's deadline (``ctx.remaining``), connecting through ``ctx.reach``, and
never retrying itself: the grading engine runs the whole check again on a transient error. Its
errors become graders': an object that does not exist is None (the learner's to create); an
answer of 429/5xx or a refused connection is a :class:`TransientGraderError`; anything else (a
timeout, an answer that is not MLflow's) a :class:`GraderError`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from graders.core import Context, GraderError, Params, TransientGraderError
from labctl.clients.mlflow import MlflowError, MlflowRest, NotFound, TooLarge
from labctl.core.retry import RetryPolicy

DEFAULT_TRACKING_URI = "http://mlflow.{namespace}.svc:5000"  # what labctl's stack serves
MAX_PAGES = 10  # bounds a search: 10 pages of up to 1,000 runs is more than any lab makes
DOWNLOAD_TIMEOUT_S = 30.0  # at least, for a file: a model's pickle may be big
# A timeout is the check's deadline spent, not a hiccup; the engine retries the rest.
ONCE = RetryPolicy(attempts=1, timeouts=False)


class TrackingParams(Params):
    """Where the learner's MLflow is; ``{namespace}`` becomes the learner's namespace."""

    tracking_uri: str = DEFAULT_TRACKING_URI
    request_timeout_s: float = Field(default=10.0, gt=0, le=120)

    @field_validator("tracking_uri")
    @classmethod
    def _http_url(cls, uri: str) -> str:
        parts = urlsplit(uri)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"expected an http:// or https:// URL, got {uri!r}")
        return uri.rstrip("/")


class Mlflow:
    """The learner's tracking server over REST, each request bounded by the check's deadline."""

    def __init__(self, params: TrackingParams, ctx: Context) -> None:
        uri = params.tracking_uri
        if "{namespace}" in uri:
            if not ctx.namespace:
                raise GraderError(f"tracking_uri {uri} needs the learner's namespace; this check has none")
            uri = uri.replace("{namespace}", ctx.namespace)
        self.uri, self.timeout_s = uri, params.request_timeout_s
        self._rest = MlflowRest(
            uri,
            where=f"the MLflow tracking server at {uri}",
            timeout_s=params.request_timeout_s,
            policy=ONCE,
            deadline=ctx.remaining,
            reach=ctx.reach,
        )

    def get(self, endpoint: str, /, **query: Any) -> dict[str, Any] | None:
        """GET ``/api/2.0/mlflow/<endpoint>``; None when MLflow says the object does not exist."""
        try:
            return self._rest.get(endpoint, **query)
        except NotFound:
            return None
        except MlflowError as exc:
            raise grader_error(exc) from None

    def post(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return self._rest.post(endpoint, body)
        except NotFound:
            return {}
        except MlflowError as exc:
            raise grader_error(exc) from None

    def pages(
        self, method: str, endpoint: str, request: dict[str, Any], key: str
    ) -> Iterator[dict[str, Any]]:
        """Every item of a paginated search (at most ``MAX_PAGES`` pages)."""
        try:
            yield from self._rest.pages(method, endpoint, request, key, max_pages=MAX_PAGES)
        except NotFound:
            return
        except MlflowError as exc:
            raise grader_error(exc) from None

    def fetch(self, path: str, query: dict[str, Any], *, limit: int) -> bytes | None:
        """The file at ``path?query`` (from the server's root); None when the server has none (404).

        :class:`~labctl.clients.mlflow.TooLarge` past ``limit`` bytes.
        """
        try:
            return self._rest.read(
                path, query, limit=limit, timeout_s=max(self.timeout_s, DOWNLOAD_TIMEOUT_S)
            )
        except TooLarge:
            raise
        except MlflowError as exc:
            if exc.status == 404:
                return None
            raise grader_error(exc) from None


def grader_error(exc: MlflowError) -> GraderError:
    """The client's error as a check's: transient (the engine tries again) or not."""
    kind = TransientGraderError if exc.transient else GraderError
    if exc.kind == "connection":
        return kind(f"cannot connect to {exc.where}: {exc.message}")
    return kind(str(exc))
