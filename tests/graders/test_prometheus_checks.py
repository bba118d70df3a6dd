"""prometheus.* checks against real processes: promtool, Prometheus, Alertmanager, a model server.

The drift scenarios run with 1 s scrape/evaluation intervals and budgets of seconds; each
scenario gets a fresh Prometheus and Alertmanager (no alert history from another test) while
one drift server, the learner's model server, serves the whole module.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from graders._prometheus_drift import DriftAlertParams, Reference, Traffic
from graders.core import Context, Status
from graders.engine import CheckCall, run_check
from tests.graders.prom_fixtures import Monitoring, drift_rules, drift_server, monitoring
from tests.helpers.processes import free_port

GOOD = 1.76  # one training std of petal length away from the training mean
TOO_SENSITIVE = 0.001  # clean traffic's own sampling noise is bigger than this
TOO_HIGH = 10.0  # +3 std moves the mean ~5.3 cm: never reached


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with drift_server(tmp_path_factory.mktemp("drift-server")) as url:
        yield url


@pytest.fixture(scope="module")
def idle_monitoring(server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitoring]:
    """Monitoring for the checks that stop early; ``Stuck`` fires whatever the traffic."""
    rules = yaml.safe_load(drift_rules(GOOD))
    rules["groups"][0]["rules"].append({"alert": "Stuck", "expr": "vector(1) > 0"})
    tmp = tmp_path_factory.mktemp("idle")
    with monitoring(tmp, rules=yaml.safe_dump(rules), scrape=f"{server}/metrics") as mon:
        yield mon


def drift(mon: Monitoring, server: str, timeout_s: float = 90, **overrides: Any) -> Any:
    params = {
        "prometheus_url": mon.prometheus,
        "alertmanager_url": mon.alertmanager,
        "alert": "DataDrift",
        "predict_url": f"{server}/v1/models/iris:predict",
        "dataset": "iris",
        "feature": "petal length (cm)",
        "clean_s": 6,
        "fire_within_s": 25,
        "resolve_within_s": 25,
        **overrides,
    }
    return run_check(
        CheckCall("prometheus.drift_alert", params, max_points=3, timeout_s=timeout_s), Context()
    )


def test_good_rule_stays_quiet_fires_and_resolves(server: str, tmp_path: Path) -> None:
    with monitoring(tmp_path, rules=drift_rules(GOOD), scrape=f"{server}/metrics") as mon:
        result = drift(mon, server, metrics_url=f"{server}/metrics")
    assert result.status is Status.PASSED, (result.feedback, result.evidence)
    assert result.feedback.startswith("alert DataDrift stayed quiet through 6 s of clean traffic, fired ")
    assert "(petal length (cm) +3 std) and resolved" in result.feedback
    phases = {p["phase"]: p for p in result.evidence["phases"]}
    assert set(phases) == {"settle", "clean", "drift", "recover"}
    assert not any(k.startswith("first_") for k in phases["clean"])
    assert 0 < phases["drift"]["first_prometheus_firing_s"] <= 25
    assert phases["drift"]["first_alertmanager_received_s"] >= phases["drift"]["first_prometheus_firing_s"]
    assert 0 < phases["recover"]["first_prometheus_resolved_s"] <= 25
    assert phases["recover"]["first_alertmanager_cleared_s"] <= 25
    assert [e.get("prometheus") for e in result.evidence["events"] if "prometheus" in e] == [
        "pending",
        "firing",
        "resolved",
    ]
    assert result.evidence["requests"]["failed"] == 0


def test_too_sensitive_rule_fails_as_a_false_positive(server: str, tmp_path: Path) -> None:
    with monitoring(tmp_path, rules=drift_rules(TOO_SENSITIVE, for_="1s"), scrape=f"{server}/metrics") as mon:
        result = drift(mon, server, partial_credit=True)
    assert result.status is Status.FAILED, result.evidence
    assert result.feedback.startswith("alert DataDrift fired during clean traffic (false positive): it was ")
    assert "too tight for normal variation" in result.feedback
    assert result.points == 0
    assert [p["phase"] for p in result.evidence["phases"]] == ["settle", "clean"]


def test_rule_with_a_threshold_too_high_never_fires(server: str, tmp_path: Path) -> None:
    with monitoring(tmp_path, rules=drift_rules(TOO_HIGH), scrape=f"{server}/metrics") as mon:
        result = drift(mon, server, clean_s=4, fire_within_s=10, partial_credit=True)
    assert result.status is Status.FAILED, result.evidence
    assert result.feedback.startswith(
        "alert DataDrift did not fire within 10 s of drifted traffic (petal length (cm) +3 std): "
        "its expression never became true while the feature drifted; is the threshold too high?"
    )
    assert result.points == pytest.approx(1.0)  # the clean phase of three passed
    assert result.evidence["events"] == []


def test_unscrapable_metrics_are_named_when_the_alert_does_not_fire(server: str, tmp_path: Path) -> None:
    with monitoring(tmp_path, rules=drift_rules(GOOD), scrape=f"{server}/malformed/metrics") as mon:
        result = drift(mon, server, clean_s=1, fire_within_s=4)
    assert result.status is Status.FAILED
    assert "did not fire within 4 s of drifted traffic" in result.feedback
    assert f"scrape target {server}/malformed/metrics is down: " in result.feedback


def test_malformed_predictions_fail_with_feedback(server: str, idle_monitoring: Monitoring) -> None:
    url = f"{server}/malformed/v1/models/iris:predict"
    result = drift(idle_monitoring, server, predict_url=url)
    assert result.status is Status.FAILED
    assert result.feedback.startswith(f"your model server at {url} answered malformed JSON")
    assert "3 of 3 prediction requests failed" in result.feedback


def test_malformed_metrics_fail_before_any_traffic(server: str, idle_monitoring: Monitoring) -> None:
    result = drift(idle_monitoring, server, metrics_url=f"{server}/malformed/metrics")
    assert result.status is Status.FAILED
    assert f"metrics at {server}/malformed/metrics are not in the Prometheus text format" in result.feedback
    assert result.evidence["requests"]["sent"] == 0


def test_an_alert_prometheus_has_not_loaded_fails(server: str, idle_monitoring: Monitoring) -> None:
    result = drift(idle_monitoring, server, alert="ModelDrift")
    assert result.status is Status.FAILED
    assert (
        "has no alerting rule named ModelDrift loaded (alerting rules loaded: DataDrift, Stuck)"
        in result.feedback
    )


def test_an_alert_that_never_resolves_before_the_check_fails(
    server: str, idle_monitoring: Monitoring
) -> None:
    result = drift(idle_monitoring, server, alert="Stuck", clean_s=1, fire_within_s=1, resolve_within_s=2)
    assert result.status is Status.FAILED
    assert result.feedback == (
        "alert Stuck was already active before the check and did not resolve within 2 s of clean traffic"
    )
    assert [p["phase"] for p in result.evidence["phases"]] == ["settle"]


def test_unreachable_labctl_monitoring_is_a_grader_error(server: str, idle_monitoring: Monitoring) -> None:
    gone = f"http://127.0.0.1:{free_port()}"
    result = drift(idle_monitoring, server, prometheus_url=gone)
    assert result.status is Status.ERROR
    assert result.feedback.startswith(
        f"grader error: Prometheus at {gone}/api/v1/rules?type=alert is unreachable"
    )
    result = drift(idle_monitoring, server, alertmanager_url=gone)
    assert result.status is Status.ERROR
    assert f"Alertmanager at {gone}/api/v2/status is unreachable" in result.feedback


def test_unreachable_learner_monitoring_is_the_learners_failure(
    server: str, idle_monitoring: Monitoring
) -> None:
    gone = f"http://127.0.0.1:{free_port()}"
    result = drift(idle_monitoring, server, prometheus_url=gone, monitoring="learner")
    assert result.status is Status.FAILED
    assert result.feedback.startswith(f"your Prometheus at {gone}/api/v1/rules?type=alert is unreachable")


def test_phases_longer_than_the_timeout_are_a_grader_error(server: str, idle_monitoring: Monitoring) -> None:
    result = drift(idle_monitoring, server, timeout_s=30)
    assert result.status is Status.ERROR
    assert "is shorter than its phases (56 s): raise timeout_s" in result.feedback


def test_traffic_is_seeded_and_shifts_only_the_drifted_feature() -> None:
    reference = Reference(["a", "b"], [[float(i), float(10 * i)] for i in range(100)])
    params = DriftAlertParams.model_validate(
        {
            "prometheus_url": "-",
            "alertmanager_url": "-",
            "alert": "A",
            "predict_url": "-",
            "reference_csv": "x",
        }
        | {"feature": "b", "rows_per_request": 500, "shift_std": 3.0, "seed": 5}
    )
    clean, drifted = Traffic(params, reference).draw(False), Traffic(params, reference).draw(True)
    std_b = statistics.pstdev(r[1] for r in reference.rows)
    assert [r[0] for r in clean] == [r[0] for r in drifted]  # same draws, same seed
    assert all(d[1] == pytest.approx(c[1] + 3.0 * std_b) for c, d in zip(clean, drifted, strict=True))
    assert statistics.mean(r[1] for r in clean) == pytest.approx(495, abs=4 * std_b / 500**0.5)


# --- prometheus.rules_valid --------------------------------------------------------------------


def rules_valid(**params: Any) -> Any:
    return run_check(CheckCall("prometheus.rules_valid", params), Context())


def test_valid_rules_pass_and_name_the_alert(tmp_path: Path) -> None:
    path = tmp_path / "drift.yaml"
    path.write_text(drift_rules(GOOD))
    result = rules_valid(path=str(path), alert="DataDrift")
    assert result.status is Status.PASSED, result.feedback
    assert result.feedback == "alert rules valid (promtool): 1 alert(s) in 1 file(s), alert DataDrift defined"
    assert result.evidence["alerts"] == ["DataDrift"]


def test_invalid_rules_quote_promtool(tmp_path: Path) -> None:
    (tmp_path / "ok.yaml").write_text(drift_rules(GOOD, alert="Other"))
    broken = tmp_path / "drift.yml"
    broken.write_text(drift_rules(GOOD).replace("abs(", "abs(("))
    result = rules_valid(path=str(tmp_path), alert="DataDrift")
    assert result.status is Status.FAILED
    assert result.feedback.startswith("promtool check rules rejected your rules:\n")
    assert (
        f'{broken}: 5:11: group "drift", rule 1, "DataDrift": could not parse expression' in result.feedback
    )
    assert "unclosed left parenthesis" in result.feedback
    assert "rules-" not in result.feedback  # our temporary names never reach the learner


def test_rules_without_the_named_alert_fail(tmp_path: Path) -> None:
    path = tmp_path / "drift.yaml"
    path.write_text(drift_rules(GOOD, alert="Drift"))
    result = rules_valid(path=str(path), alert="DataDrift")
    assert result.status is Status.FAILED
    assert result.feedback == (
        f"no alerting rule named DataDrift in {path} (alerts defined: Drift); add one with `alert: DataDrift`"
    )


def test_a_missing_rules_file_fails(tmp_path: Path) -> None:
    result = rules_valid(path=str(tmp_path / "nowhere.yaml"))
    assert result.status is Status.FAILED
    assert result.feedback.startswith(f"no rule file at {tmp_path / 'nowhere.yaml'}")
