"""The drift-alert scenario behind ``prometheus.drift_alert``: real traffic, a watched alert.

Every tick (``interval_s``) the scenario POSTs ``rows_per_request`` feature rows to the learner's
model server and reads the alert's state from Prometheus (``/api/v1/alerts``) and Alertmanager
(``/api/v2/alerts``). Clean rows are rows of the reference (training) data drawn with a fixed
seed; drifted rows are the same draws with ``shift_std`` reference standard deviations added to
one feature. Two runs of the check send the same traffic.

Phases, each bounded by its budget:

- settle: clean traffic until the alert is inactive (a previous run may have left it firing);
- clean: clean traffic for ``clean_s``; the alert must not go pending or fire;
- drift: drifted traffic; it must fire in Prometheus and reach Alertmanager within ``fire_within_s``;
- recover: clean traffic; it must be gone from both within ``resolve_within_s``.

Monitoring that labctl provisioned is ours: when it is unreachable or answers nonsense that is a
:class:`GraderError`. The same trouble with monitoring the learner runs is their failure.
"""

from __future__ import annotations

import csv
import http.client
import json
import random
import re
import statistics
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, NoReturn

from pydantic import Field, model_validator

from graders.core import Context, GraderError, Outcome, Params

HTTP_ERRORS = (OSError, http.client.HTTPException)
MAX_ERROR_RATIO = 0.1  # of prediction requests; a few dropped requests do not stop the scenario


class DriftAlertParams(Params):
    """The scenario: clean traffic, drifted traffic, clean again, with a time budget for each."""

    prometheus_url: str
    alertmanager_url: str
    alert: str
    predict_url: str  # the learner's model server: every tick the check POSTs rows here
    alert_labels: dict[str, str] = Field(default_factory=dict)  # only alert instances with these labels
    monitoring: Literal["labctl", "learner"] = "labctl"  # who runs Prometheus and Alertmanager
    metrics_url: str | None = None  # the model server's /metrics: must parse before any traffic
    # Where clean rows come from: a bundled scikit-learn dataset, or a CSV of training rows.
    dataset: Literal["iris", "wine", "breast_cancer", "diabetes"] | None = None
    reference_csv: str | None = None
    exclude_columns: tuple[str, ...] = ("label", "target")  # CSV columns never sent
    feature: str | int  # the drifted feature: a column name (or its snake_case form) or an index
    shift_std: float = 3.0  # drifted rows: feature + shift_std x its reference standard deviation
    seed: int = 0
    rows_per_request: int = Field(20, ge=1, le=10_000)
    request_format: Literal["kserve-v1", "mlflow"] = "kserve-v1"
    interval_s: float = Field(0.5, gt=0, le=30)  # one request and one look at the alert per tick
    clean_s: float = Field(30.0, gt=0)
    fire_within_s: float = Field(60.0, gt=0)
    resolve_within_s: float = Field(60.0, gt=0)
    partial_credit: bool = False  # a third of the points per phase passed (clean, drift, recover)

    @model_validator(mode="after")
    def _one_reference(self) -> DriftAlertParams:
        if (self.dataset is None) == (self.reference_csv is None):
            raise ValueError("give exactly one of dataset, reference_csv")
        return self


def snake(name: str) -> str:
    """``petal length (cm)`` -> ``petal_length_cm``, as metric labels spell features."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


@dataclass(frozen=True)
class Reference:
    """The training distribution the clean traffic is drawn from."""

    columns: list[str]
    rows: list[list[float]]

    def index(self, feature: str | int) -> int:
        if isinstance(feature, int):
            if 0 <= feature < len(self.columns):
                return feature
        else:
            for index, name in enumerate(self.columns):
                if feature in (name, snake(name)):
                    return index
        raise GraderError(
            f"feature {feature!r} is not a column of the reference data ({', '.join(self.columns)})"
        )

    def std(self, column: int) -> float:
        return statistics.pstdev(row[column] for row in self.rows)


def load_reference(params: DriftAlertParams) -> Reference:
    if params.dataset:
        from sklearn import datasets

        loaded = getattr(datasets, f"load_{params.dataset}")()
        return Reference([str(n) for n in loaded.feature_names], loaded.data.tolist())
    assert params.reference_csv is not None
    try:
        with open(params.reference_csv, newline="") as handle:
            reader = csv.DictReader(handle)
            columns = [c for c in reader.fieldnames or [] if c not in params.exclude_columns]
            rows = [[float(row[c]) for c in columns] for row in reader]
    except (OSError, ValueError, KeyError) as exc:
        raise GraderError(f"cannot read reference CSV {params.reference_csv}: {exc}") from None
    if not rows:
        raise GraderError(f"reference CSV {params.reference_csv} has no rows")
    return Reference(columns, rows)


class Traffic:
    """Seeded draws of reference rows; drifted ones shifted on one feature."""

    def __init__(self, params: DriftAlertParams, reference: Reference) -> None:
        self.reference, self.size, self.format = reference, params.rows_per_request, params.request_format
        self.column = reference.index(params.feature)
        self.shift = params.shift_std * reference.std(self.column)
        self.rng = random.Random(params.seed)

    def draw(self, drifted: bool) -> list[list[float]]:
        rows = [
            list(self.reference.rows[self.rng.randrange(len(self.reference.rows))]) for _ in range(self.size)
        ]
        if drifted:
            for row in rows:
                row[self.column] += self.shift
        return rows

    def body(self, rows: list[list[float]]) -> bytes:
        if self.format == "mlflow":
            return json.dumps({"dataframe_split": {"columns": self.reference.columns, "data": rows}}).encode()
        return json.dumps({"instances": rows}).encode()


def prediction_problem(status: int, raw: bytes, rows: int) -> str:
    """What is wrong with a model server's answer to ``rows`` rows, or "" when nothing is."""
    if not 200 <= status < 300:
        return f"answered HTTP {status} ({raw[:120].decode(errors='replace').strip()})"
    try:
        answer = json.loads(raw)
    except ValueError:
        return f"answered malformed JSON ({raw[:80].decode(errors='replace')!r}...)"
    predictions = answer.get("predictions") if isinstance(answer, dict) else None
    if not isinstance(predictions, list) or len(predictions) != rows:
        return f'answered without a "predictions" list of {rows} items'
    return ""


def request(url: str, *, body: bytes | None = None, timeout: float) -> tuple[int, bytes]:
    """``(status, body)``; HTTP error statuses are answers, connection trouble raises."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    req = urllib.request.Request(
        url, data=body, headers=headers, method="POST" if body is not None else "GET"
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class Failed(Exception):
    """The learner's failure; the message is the feedback."""


@dataclass(frozen=True)
class Seen:
    """The alert as Prometheus and Alertmanager showed it at one tick."""

    prometheus: str = "inactive"  # inactive | pending | firing
    alertmanager: bool = False

    @property
    def quiet(self) -> bool:
        return self.prometheus == "inactive" and not self.alertmanager

    @property
    def fired(self) -> bool:
        return self.prometheus == "firing" and self.alertmanager


def _event_name(state: str | bool) -> str:
    """Timeline words: Prometheus pending/firing/resolved, Alertmanager received/cleared."""
    if isinstance(state, bool):
        return "received" if state else "cleared"
    return "resolved" if state == "inactive" else state


class Scenario:
    """One run of the scenario against one learner's model server and monitoring."""

    def __init__(self, ctx: Context, params: DriftAlertParams) -> None:
        self.ctx, self.p = ctx, params
        self.traffic = Traffic(params, load_reference(params))
        self.prometheus = params.prometheus_url.rstrip("/")
        self.alertmanager = params.alertmanager_url.rstrip("/")
        self.t0 = time.monotonic()
        self.started_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.phases: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.seen = Seen()
        self.sent = self.errors = self.passed = 0
        self.first_error = ""
        self.rule: dict[str, Any] = {}

    def run(self) -> Outcome:
        p, alert = self.p, self.p.alert
        needed = p.clean_s + p.fire_within_s + p.resolve_within_s
        if self.ctx.remaining() < needed + 2:
            raise GraderError(
                f"the check's timeout ({self.ctx.remaining():.0f} s left) is shorter than its phases "
                f"({needed:g} s): raise timeout_s to at least {needed + p.resolve_within_s + 10:g}"
            )
        try:
            self._preflight()
            settle = max(0.1, min(p.resolve_within_s, self.ctx.remaining() - needed - 1))
            if self._phase("settle", False, settle, lambda s: s.quiet) is None:
                raise Failed(
                    f"alert {alert} was already active before the check and did not resolve within "
                    f"{settle:.0f} s of clean traffic"
                )
            if (seen := self._phase("clean", False, p.clean_s, lambda s: not s.quiet)) is not None:
                into = self.phases[-1]["ended_s"] - self.phases[-1]["started_s"]
                raise Failed(
                    f"alert {alert} fired during clean traffic (false positive): it was {seen.prometheus} "
                    f"{into:.1f} s into traffic drawn from the training data. Its threshold (or `for:`) "
                    "is too tight for normal variation."
                )
            self.passed = 1
            if self._phase("drift", True, p.fire_within_s, lambda s: s.fired) is None:
                raise Failed(self._not_fired())
            self.passed = 2
            if self._phase("recover", False, p.resolve_within_s, lambda s: s.quiet) is None:
                raise Failed(self._not_resolved())
            self.passed = 3
        except Failed as exc:
            return self._outcome(False, str(exc))
        fired, resolved = (phase["ended_s"] - phase["started_s"] for phase in self.phases[-2:])
        return self._outcome(
            True,
            f"alert {alert} stayed quiet through {p.clean_s:g} s of clean traffic, fired {fired:.1f} s "
            f"after drifted traffic began ({self._shift()}) and resolved {resolved:.1f} s after traffic "
            "was clean again",
        )

    def _shift(self) -> str:
        return f"{self.traffic.reference.columns[self.traffic.column]} +{self.p.shift_std:g} std"

    def _outcome(self, passed: bool, feedback: str) -> Outcome:
        evidence = {
            "started_at": self.started_at,
            "alert": self.p.alert,
            "drift": self._shift(),
            "rule": self.rule,
            "phases": self.phases,
            "events": self.events,
            "requests": {"sent": self.sent, "failed": self.errors, "first_error": self.first_error},
        }
        fraction = self.passed / 3 if self.p.partial_credit else None
        return Outcome(passed, feedback, evidence, fraction)

    def _now(self) -> float:
        return round(time.monotonic() - self.t0, 2)

    def _phase(self, name: str, drifted: bool, budget: float, until: Callable[[Seen], bool]) -> Seen | None:
        """Tick until ``until(seen)`` (returns what was seen) or the budget is spent (None)."""
        phase: dict[str, Any] = {"phase": name, "traffic": "drifted" if drifted else "clean"}
        phase |= {"started_s": self._now(), "budget_s": round(budget, 2), "requests": 0}
        self.phases.append(phase)
        deadline = time.monotonic() + budget
        while True:
            seen = self._tick(drifted, phase)
            done = bool(until(seen))
            if done or time.monotonic() >= deadline:
                phase["ended_s"] = self._now()
                return seen if done else None

    def _tick(self, drifted: bool, phase: dict[str, Any]) -> Seen:
        if self.ctx.remaining() <= 0.1:
            raise GraderError("the drift scenario ran out of time")
        started = time.monotonic()
        self._send(drifted)
        phase["requests"] += 1
        seen = Seen(self._prometheus_state(), self._in_alertmanager())
        for key, old, new in (
            ("prometheus", self.seen.prometheus, seen.prometheus),
            ("alertmanager", self.seen.alertmanager, seen.alertmanager),
        ):
            if old != new:
                state = _event_name(new)
                self.events.append({"t_s": self._now(), "phase": phase["phase"], key: state})
                phase.setdefault(f"first_{key}_{state}_s", round(self._now() - phase["started_s"], 2))
        self.seen = seen
        time.sleep(max(0.0, self.p.interval_s - (time.monotonic() - started)))
        return seen

    def _timeout(self) -> float:
        return self.ctx.remaining(at_most=5.0)

    def _send(self, drifted: bool) -> None:
        rows = self.traffic.draw(drifted)
        self.sent += 1
        try:
            status, raw = request(
                self.ctx.reach(self.p.predict_url), body=self.traffic.body(rows), timeout=self._timeout()
            )
            problem = prediction_problem(status, raw, len(rows))
        except HTTP_ERRORS as exc:
            problem = f"is unreachable ({exc})"
        if not problem:
            return
        self.errors += 1
        self.first_error = self.first_error or problem
        if self.errors >= 3 and self.errors > MAX_ERROR_RATIO * self.sent:
            raise Failed(
                f"your model server at {self.p.predict_url} {problem} ({self.errors} of {self.sent} "
                "prediction requests failed): the check could not send it traffic"
            )

    def _monitoring(self, who: str, url: str) -> Any:
        """The JSON answer of our (or the learner's) Prometheus or Alertmanager."""
        try:
            status, raw = request(self.ctx.reach(url), timeout=self._timeout())
            if status == 200:
                return json.loads(raw)
            problem = f"answered HTTP {status}"
        except HTTP_ERRORS as exc:
            problem = f"is unreachable ({exc})"
        except ValueError:
            problem = "answered malformed JSON"
        self._monitoring_problem(f"{who} at {url} {problem}")

    def _monitoring_problem(self, message: str) -> NoReturn:
        if self.p.monitoring == "labctl":
            raise GraderError(message)
        raise Failed(f"your {message}")

    def _matches(self, labels: Any) -> bool:
        wanted = {"alertname": self.p.alert, **self.p.alert_labels}
        return isinstance(labels, dict) and all(labels.get(k) == v for k, v in wanted.items())

    def _prometheus_state(self) -> str:
        answer = self._monitoring("Prometheus", f"{self.prometheus}/api/v1/alerts")
        try:
            states = {a["state"] for a in answer["data"]["alerts"] if self._matches(a.get("labels"))}
        except (KeyError, TypeError):
            self._monitoring_problem(
                f"Prometheus at {self.prometheus} answered /api/v1/alerts without alerts"
            )
        return "firing" if "firing" in states else "pending" if "pending" in states else "inactive"

    def _in_alertmanager(self) -> bool:
        answer = self._monitoring("Alertmanager", f"{self.alertmanager}/api/v2/alerts")
        if not isinstance(answer, list):
            self._monitoring_problem(
                f"Alertmanager at {self.alertmanager} answered /api/v2/alerts without a list"
            )
        # NB: /api/v2/alerts lists only unresolved alerts (silenced and inhibited ones too).
        return any(self._matches(a.get("labels")) for a in answer if isinstance(a, dict))

    def _alert_rules(self) -> list[dict[str, Any]]:
        answer = self._monitoring("Prometheus", f"{self.prometheus}/api/v1/rules?type=alert")
        try:
            return [r for g in answer["data"]["groups"] for r in g["rules"] if r.get("type") == "alerting"]
        except (KeyError, TypeError):
            self._monitoring_problem(f"Prometheus at {self.prometheus} answered /api/v1/rules without groups")

    def _preflight(self) -> None:
        rules = self._alert_rules()
        mine = [r for r in rules if r.get("name") == self.p.alert]
        if not mine:
            names = ", ".join(sorted({str(r.get("name")) for r in rules})) or "none"
            raise Failed(
                f"Prometheus at {self.prometheus} has no alerting rule named {self.p.alert} loaded "
                f"(alerting rules loaded: {names}): check that your rule file passes promtool and is "
                "where Prometheus reads rules"
            )
        self.rule = {k: mine[0].get(k) for k in ("query", "duration", "labels", "health", "lastError")}
        self._monitoring("Alertmanager", f"{self.alertmanager}/api/v2/status")
        if self.p.metrics_url:
            self._check_metrics(self.p.metrics_url)

    def _check_metrics(self, url: str) -> None:
        from prometheus_client.parser import text_string_to_metric_families

        try:
            status, raw = request(self.ctx.reach(url), timeout=self._timeout())
        except HTTP_ERRORS as exc:
            raise Failed(f"your model server's metrics at {url} are unreachable ({exc})") from None
        try:
            if status != 200:
                raise ValueError(f"HTTP {status}")
            families = list(text_string_to_metric_families(raw.decode()))
        except (ValueError, UnicodeDecodeError) as exc:
            raise Failed(
                f"your model server's metrics at {url} are not in the Prometheus text format ({exc}): "
                "Prometheus cannot scrape them; serve them with prometheus-client"
            ) from None
        self.rule["metric_families"] = len(families)

    def _not_fired(self) -> str:
        p, phase = self.p, self.phases[-1]
        head = (
            f"alert {p.alert} did not fire within {p.fire_within_s:g} s of drifted traffic ({self._shift()})"
        )
        if self.seen.prometheus == "firing":
            self._monitoring_problem(
                f"Prometheus at {self.prometheus} fired {p.alert} but Alertmanager at {self.alertmanager} "
                "never received it: check `alerting.alertmanagers` in prometheus.yml"
            )
        if "first_prometheus_pending_s" in phase:
            return (
                f"{head}: it went pending {phase['first_prometheus_pending_s']:.1f} s in but its `for:` "
                f"({self.rule.get('duration')} s) kept it from firing in time"
            )
        return f"{head}: {self._diagnosis()}"

    def _not_resolved(self) -> str:
        where = (
            "still firing in Prometheus"
            if self.seen.prometheus != "inactive"
            else "still active in Alertmanager"
        )
        return (
            f"alert {self.p.alert} did not resolve within {self.p.resolve_within_s:g} s after traffic was "
            f"clean again ({where}): does its expression look at recent data only (e.g. a rate over a "
            "short window)?"
        )

    def _diagnosis(self) -> str:
        """Why an alert may never have gone pending: a broken rule or scrape, else the threshold."""
        try:
            mine = [r for r in self._alert_rules() if r.get("name") == self.p.alert]
            if mine and mine[0].get("health") not in (None, "ok", "unknown"):
                return f"its rule fails to evaluate: {mine[0].get('lastError')}"
            targets = self._monitoring("Prometheus", f"{self.prometheus}/api/v1/targets?state=active")
            down = [t for t in targets["data"]["activeTargets"] if t.get("health") != "up"]
        except (Failed, GraderError, KeyError, TypeError):
            return "its expression never became true; is the threshold too high?"
        if down:
            return "; ".join(
                f"scrape target {t.get('scrapeUrl')} is down: {t.get('lastError')}" for t in down[:3]
            )
        return "its expression never became true while the feature drifted; is the threshold too high?"
