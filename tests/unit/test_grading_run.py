"""Grading a set of learners: scores per learner, and the prometheus metrics a scrape would see."""

from __future__ import annotations

from prometheus_client import REGISTRY

from graders.core import Status
from labctl.grading.plan import GradingPlan
from labctl.grading.run import grade
from tests.helpers import checks  # noqa: F401  (registers test.behave)

LAB = "foundation/metrics-test"


def learner(i: int, behaviour: str) -> dict:
    return {
        "metadata": {"name": f"c-l{i}"},
        "spec": {"cohort": "c", "email": f"l{i}@uni.edu"},
        "status": {"namespace": f"c-l{i}"},
        "_behaviour": behaviour,
    }


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_grading_scores_each_learner_and_counts_it() -> None:
    plan = GradingPlan.model_validate(
        {
            "lab": LAB,
            "passMark": 1.0,
            "checks": [
                {"name": "works", "check": "test.behave", "params": {"behaviour": "pass"}},
                {"name": "placed", "check": "test.behave", "params": {"behaviour": "fail"}},
            ],
        }
    )
    before = sample("labctl_grading_checks_total", check="placed", status="failed")
    done = []
    graded = grade(
        None,
        plan,
        [learner(i, "pass") for i in range(3)],
        graded_by="t",
        record_attempts=False,
        progress=done.append,
    )
    assert [g.score.status for g in graded] == [Status.FAILED] * 3
    assert graded[0].score.reasons == ("score 1/2 is below the pass mark of 100%",)
    assert sum(done) == 6
    assert sample("labctl_grading_checks_total", check="placed", status="failed") - before == 3
    assert sample("labctl_grading_checks_total", check="works", status="passed") >= 3
    assert sample("labctl_grading_runs_total", lab=LAB) >= 1
    assert sample("labctl_grading_pass_rate", lab=LAB) == 0.0
    assert sample("labctl_grading_check_duration_seconds_count", check="works") >= 3
