"""Judging and scoring what a learner's model server answered: pure functions, no I/O.

A request's reply becomes a :class:`Batch` (usable predictions, an error, or a schema problem);
a :class:`Tally` of batches measures the metric, the latency percentiles and the error rate and
names every criterion that fails, with the measured value and the target.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from graders._endpoint_io import Reply, Table
from graders._endpoint_params import Metric, PredictParams, Protocol

# -- judging the answers -----------------------------------------------------------------------


@dataclass(frozen=True)
class Batch:
    """What one prediction request came to."""

    size: int
    predictions: list[float | str] | None = None  # usable answers, one per instance
    error: str = ""  # no usable answer at all (counts in the error rate)
    schema: str = ""  # an answer, but of the wrong count or types
    ms: float | None = None  # None: no HTTP answer came back


def label_key(value: float | str) -> float | str:
    """Labels compared as numbers when they are numbers: CSV ``1``, JSON ``1`` and ``"1.0"`` agree."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value.strip()
    return float(value)


def _value(item: Any, numeric: bool) -> float | str | None:
    """A prediction as a number or class label; None when it is neither."""
    if isinstance(item, list) and len(item) == 1:  # a column vector, [[0], [2]]: harmless
        item = item[0]
    elif isinstance(item, dict) and len(item) == 1:  # an MLflow DataFrame output, [{"label": 0}]
        item = next(iter(item.values()))
    if isinstance(item, bool):
        return None
    if isinstance(item, int | float):
        return float(item) if math.isfinite(item) else None
    if isinstance(item, str) and not numeric:
        return label_key(item)
    return None


def _shape(value: Any) -> str:
    if isinstance(value, dict):
        return f"an object with keys {', '.join(map(str, list(value)[:5])) or '(none)'}"
    if isinstance(value, list):
        return f"a list of {len(value)} values"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    return "null" if value is None else json.dumps(value)


def predictions_of(payload: Any, protocol: Protocol) -> list[Any] | None:
    if isinstance(payload, dict) and isinstance(payload.get("predictions"), list):
        predictions: list[Any] = payload["predictions"]
        return predictions
    if protocol == "mlflow" and isinstance(payload, list):  # older MLflow servers answer a bare list
        return payload
    return None


def judge(reply: Reply, size: int, *, first: int, protocol: Protocol, numeric: bool, where: str) -> Batch:
    """Turn one reply to ``size`` instances (from instance ``first`` on) into a :class:`Batch`."""
    if reply.status is None:
        return Batch(size, error=reply.problem)
    if not 200 <= reply.status < 300:
        return Batch(size, error=f"HTTP {reply.status} from {where}: {snippet(reply.body)}", ms=reply.ms)
    try:
        payload = json.loads(reply.body)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        reason = f"malformed response from {where} (not JSON: {exc}): {snippet(reply.body)}"
        return Batch(size, error=reason, ms=reply.ms)
    answers = predictions_of(payload, protocol)
    if answers is None:
        expected = '{"predictions": [...]}' + (" or a JSON list" if protocol == "mlflow" else "")
        reason = f"malformed response from {where}: expected {expected}, got {_shape(payload)}"
        return Batch(size, error=reason, ms=reply.ms)
    if len(answers) != size:
        reason = f"returned {len(answers)} predictions for {size} instances"
        return Batch(size, schema=reason, ms=reply.ms)
    values = [_value(answer, numeric) for answer in answers]
    bad = next((i for i, v in enumerate(values) if v is None), None)
    if bad is not None:
        wanted = "a number" if numeric else "a class label"
        hint = " (class probabilities?)" if isinstance(answers[bad], list) else ""
        reason = f"prediction {first + bad} is {_shape(answers[bad])}{hint}, not {wanted}"
        return Batch(size, schema=reason, ms=reply.ms)
    return Batch(size, predictions=[v for v in values if v is not None], ms=reply.ms)


def snippet(body: bytes, limit: int = 160) -> str:
    text = " ".join(body[: limit * 2].decode("utf-8", "replace").split())
    if not text:
        return "(empty body)"
    return text if len(text) <= limit else text[:limit] + "..."


# -- scoring -----------------------------------------------------------------------------------


def f1(
    predictions: Sequence[float | str], labels: Sequence[float | str], positive: float | str | None
) -> float:
    """F1 of ``positive``, or macro F1 over every class seen (as scikit-learn's ``average="macro"``)."""
    classes = [positive] if positive is not None else sorted(set(labels) | set(predictions), key=str)
    scores = []
    for c in classes:
        tp = sum(p == c and y == c for p, y in zip(predictions, labels, strict=True))
        fp = sum(p == c and y != c for p, y in zip(predictions, labels, strict=True))
        fn = sum(p != c and y == c for p, y in zip(predictions, labels, strict=True))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores)


def metric_value(
    metric: Metric,
    predictions: Sequence[float | str],
    labels: Sequence[float | str],
    *,
    positive: str | None = None,
) -> float:
    if metric == "rmse":
        return math.sqrt(
            sum((float(p) - float(y)) ** 2 for p, y in zip(predictions, labels, strict=True)) / len(labels)
        )
    keys = [label_key(y) for y in labels]
    if metric == "f1":
        return f1(predictions, keys, label_key(positive) if positive is not None else None)
    return sum(p == y for p, y in zip(predictions, keys, strict=True)) / len(keys)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: a latency some request really had."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def fmt_number(value: float) -> str:
    """Four significant digits, always with a decimal point: ``0.9667``, ``1.0``, ``55.23``."""
    text = f"{value:.4g}"
    return text if "." in text or "e" in text or "n" in text else f"{text}.0"


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


SAMPLES = 3  # error samples kept as evidence: enough to diagnose, small enough to keep per learner


@dataclass
class Tally:
    """One predict check's measurements, and the criteria they fail (each with value and target)."""

    params: PredictParams
    table: Table
    batches: list[Batch]
    errors: list[str] = field(init=False)
    schema: list[str] = field(init=False)
    answered: list[tuple[float | str, float | str]] = field(init=False)  # (prediction, label)
    value: float | None = field(init=False)
    scored: int = field(init=False)
    latency: dict[str, float] = field(init=False)

    def __post_init__(self) -> None:
        self.errors = [b.error for b in self.batches if b.error]
        self.schema = [b.schema for b in self.batches if b.schema]
        predictions: list[float | str] = []
        labels: list[float | str] = []
        first = 0
        for batch in self.batches:
            if batch.predictions is not None:
                predictions += batch.predictions
                labels += self.table.labels[first : first + batch.size]
            first += batch.size
        p = self.params
        self.answered = list(zip(predictions, labels, strict=True))
        self.value = (
            metric_value(p.metric, predictions, labels, positive=p.positive_label) if labels else None
        )
        self.scored = len(labels)
        times = [b.ms for b in self.batches if b.ms is not None]
        self.latency = {f"p{q}": round(percentile(times, q), 2) for q in (50, 95, 99)} if times else {}

    @property
    def error_rate(self) -> float:
        return len(self.errors) / len(self.batches)

    def problems(self) -> list[str]:
        p, requests = self.params, len(self.batches)
        found = []
        if self.errors and all(b.ms is None for b in self.batches):
            found.append(self.errors[0])  # never answered at all: that reason is the whole story
        elif self.error_rate > p.max_error_rate:
            found.append(
                f"{len(self.errors)} of {requests} requests failed (error rate {self.error_rate:.0%}, "
                f"at most {p.max_error_rate:.0%} allowed); first: {self.errors[0]}"
            )
        if self.schema:
            found.append(
                self.schema[0] + (f" (in {len(self.schema)} of {requests} requests)" if requests > 1 else "")
            )
        if self.value is not None and not self.metric_ok(self.value):
            relation = "above the allowed" if p.metric == "rmse" else "below the required"
            instances = len(self.table.rows)
            subset = (
                f" (on the {self.scored} of {instances} instances answered)"
                if self.scored < instances
                else ""
            )
            found.append(f"{p.metric} {fmt_number(self.value)} is {relation} {fmt_number(p.target)}{subset}")
        elif self.value is None and not found:
            found.append("no predictions could be scored")
        p95 = self.latency.get("p95")
        if p.latency_p95_ms is not None and p95 is not None and p95 > p.latency_p95_ms:
            found.append(f"p95 latency {p95:.0f} ms exceeds the {p.latency_p95_ms:g} ms budget")
        return found

    def metric_ok(self, value: float) -> bool:
        return value <= self.params.target if self.params.metric == "rmse" else value >= self.params.target

    def summary(self) -> str:
        """The feedback of a pass: what was measured against what was asked."""
        p, requests = self.params, len(self.batches)
        relation = "at most" if p.metric == "rmse" else "at least"
        value = fmt_number(self.value) if self.value is not None else "-"
        errors = (
            f"{len(self.errors)} of {requests} requests failed (tolerated)" if self.errors else "no errors"
        )
        target = fmt_number(p.target)
        return (
            f"{p.metric} {value} on {len(self.table.rows)} instances (required {relation} {target}); "
            f"p95 latency {self.latency.get('p95', 0):.0f} ms over {plural(requests, 'request')}; {errors}."
        )

    def evidence(self, url: str) -> dict[str, Any]:
        p = self.params
        return {
            "url": url,
            "protocol": p.protocol,
            "metric": p.metric,
            "value": None if self.value is None else round(self.value, 6),
            "threshold": p.target,
            "instances": len(self.table.rows),
            "scored": self.scored,
            "requests": len(self.batches),
            "errors": len(self.errors),
            "error_rate": round(self.error_rate, 4),
            "max_error_rate": p.max_error_rate,
            "latency_ms": self.latency,
            "latency_p95_budget_ms": p.latency_p95_ms,
            "error_samples": self.errors[:SAMPLES],
            "schema_samples": self.schema[:SAMPLES],
            "answer_samples": [{"prediction": a, "label": y} for a, y in self.answered[:SAMPLES]],
        }
