"""Grade one lab for a cohort (or some of its learners): run the plan, score, record, report."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from graders.core import CheckResult, Status, as_is
from graders.engine import Job, run_jobs
from labctl.grading import metrics, submissions
from labctl.grading.plan import GradingPlan
from labctl.grading.records import record
from labctl.grading.scoring import Score, score_attempt
from labctl.kube import Kube
from labctl.provision.naming import learner_namespace


@dataclass(frozen=True)
class Graded:
    """One learner's freshly graded attempt."""

    learner: dict[str, Any]
    attempt: int
    results: tuple[CheckResult, ...]
    score: Score
    graded_at: str

    @property
    def email(self) -> str:
        return str(self.learner["spec"]["email"])


def place_of(learner: dict[str, Any]) -> dict[str, str]:
    """What a plan's ``{placeholders}`` become for this learner."""
    return {
        "namespace": learner_namespace(learner),
        "learner": learner["metadata"]["name"],
        "email": learner["spec"]["email"],
        "cohort": learner["spec"]["cohort"],
    }


def grade(
    kube: Kube,
    plan: GradingPlan,
    learners: Sequence[dict[str, Any]],
    *,
    graded_by: str,
    concurrency: int = 16,
    record_attempts: bool = True,
    progress: Callable[[int], None] = lambda _n: None,
    reach: Callable[[str], str] = as_is,
    places: Callable[[dict[str, Any]], dict[str, str]] = place_of,
) -> list[Graded]:
    """Run ``plan`` for every learner (bounded concurrency), record each attempt, return them all.
    ``reach``: how checks connect to learners' Services (labctl.grading.reach); ``places``: what
    the plan's placeholders become for a learner (a published lab's add hidden data, seeds...)."""
    by_name = {lr["metadata"]["name"]: lr for lr in learners}
    jobs = [Job(name, places(lr)["namespace"], plan.calls(places(lr))) for name, lr in by_name.items()]
    planned = [c.name for c in plan.checks]
    metrics.GRADING_RUNS.labels(plan.lab).inc()

    def observe(_job: Job, result: CheckResult) -> None:
        metrics.CHECKS.labels(result.check, result.status.value).inc()
        metrics.CHECK_SECONDS.labels(result.check).observe(result.duration_s)
        progress(1)

    graded: list[Graded] = []
    ran = run_jobs(
        jobs,
        kube=kube,
        concurrency=concurrency,
        on_result=observe,
        reach=reach,
        fetch_submission=submissions.fetch_for_check,
    )
    for job, results in ran:
        score = score_attempt(results, planned=planned, required=plan.required, pass_mark=plan.pass_mark)
        learner = by_name[job.learner]
        attempt, graded_at = 0, dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
        if record_attempts:
            saved = record(
                kube, learner, plan.lab, results, score, pass_mark=plan.pass_mark, graded_by=graded_by
            )
            attempt, graded_at = int(saved["spec"]["attempt"]), str(saved["spec"]["gradedAt"])
        metrics.ATTEMPTS.labels(plan.lab, score.status.value).inc()
        graded.append(Graded(learner, attempt, tuple(results), score, graded_at))
    if graded:
        passed = sum(g.score.status is Status.PASSED for g in graded)
        metrics.PASS_RATE.labels(plan.lab).set(passed / len(graded))
    return graded
