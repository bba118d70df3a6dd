"""The endpoint checks' parameters: where the learner's server is, and how its answers are scored.

Apart from the checks (:mod:`graders.endpoint`) so that scoring (:mod:`graders._endpoint_scoring`)
and ``mlflow.model_score`` read them without importing the checks.
"""

from __future__ import annotations

from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, FilePath, field_validator, model_validator

from graders.core import Params

Protocol = Literal["kserve-v1", "mlflow"]
Metric = Literal["accuracy", "f1", "rmse"]


class HiddenDataScoring(Params):
    """Scoring predictions against a hidden labelled set: which file, which metric, what is enough."""

    data: FilePath  # the hidden test set: a CSV with a label column, every other column a feature
    label_column: str = "label"
    metric: Metric = "accuracy"
    threshold: float | None = None  # accuracy/f1: at least this (default 0.8); rmse: at most, required
    positive_label: str | None = None  # f1 of this class (binary); None: macro-averaged over classes

    @model_validator(mode="after")
    def _threshold_fits(self) -> Self:
        if self.metric == "rmse" and (self.threshold is None or self.threshold < 0):
            raise ValueError("metric rmse needs a threshold >= 0 (the largest acceptable rmse)")
        if self.metric != "rmse" and self.threshold is not None and not 0 <= self.threshold <= 1:
            raise ValueError(f"threshold for {self.metric} must be between 0 and 1")
        return self

    @property
    def target(self) -> float:
        return self.threshold if self.threshold is not None else 0.8


class EndpointParams(Params):
    """Where the learner's server is: a ``url``, or their ``service`` (+ ``port``) in their namespace."""

    url: str | None = None
    service: str | None = Field(default=None, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    port: int | None = Field(default=None, ge=1, le=65535)
    protocol: Protocol = "kserve-v1"
    model: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][\w.-]*$")
    request_timeout_s: float = Field(default=10.0, gt=0, le=300)

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"expected an http:// or https:// URL with a host, got {url!r}")
        return url

    @model_validator(mode="after")
    def _one_place(self) -> EndpointParams:
        if (self.url is None) == (self.service is None):
            raise ValueError("give exactly one of url or service")
        if self.port is not None and self.service is None:
            raise ValueError("port goes with service (put the port in the url instead)")
        if self.protocol == "kserve-v1" and not self.model:
            raise ValueError("protocol kserve-v1 needs the model name (model)")
        return self


class PredictParams(HiddenDataScoring, EndpointParams):
    batch_size: int = Field(default=64, ge=1, le=10_000)
    latency_p95_ms: float | None = Field(default=None, gt=0)
    max_error_rate: float = Field(default=0.0, ge=0, le=1)


class HealthParams(EndpointParams):
    path: str | None = Field(default=None, pattern=r"^/")  # default: the protocol's readiness path
