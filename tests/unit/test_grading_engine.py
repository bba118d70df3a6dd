"""The engine turns everything a check can do into a result: never a crash, never a false pass."""

from __future__ import annotations

import time

import pytest

from graders.core import Context, Status
from graders.engine import CheckCall, Job, run_check, run_jobs
from labctl.grading.scoring import score_attempt
from tests.helpers import checks  # noqa: F401  (registers test.behave)


def run(behaviour: str, **extra: object) -> object:
    call = CheckCall("test.behave", {"behaviour": behaviour, **extra}, max_points=4, timeout_s=1, retries=2)
    return run_check(call, Context(learner=f"l-{time.monotonic_ns()}", namespace="ns-a"), backoff_s=0.01)


def test_pass_and_fail_carry_points_and_feedback() -> None:
    passed = run("pass")
    assert (passed.status, passed.points, passed.max_points) == (Status.PASSED, 4, 4)
    assert passed.evidence == {"seen": "ns-a"}
    failed = run("fail")
    assert (failed.status, failed.points, failed.feedback) == (
        Status.FAILED,
        0,
        "accuracy 0.50 is below the required 0.80",
    )


def test_partial_credit_scales_the_points() -> None:
    result = run("partial")
    assert result.status is Status.FAILED and result.points == 3.0


@pytest.mark.parametrize(
    ("behaviour", "feedback"),
    [
        ("crash", "check crashed: ZeroDivisionError: division by zero"),
        ("grader", "grader error: tracking server of the cohort is unreachable"),
        ("hang", "check did not finish within 1s"),
        ("not-an-outcome", "check returned str, not an Outcome"),
    ],
)
def test_everything_else_is_an_error_worth_zero_and_never_a_pass(behaviour: str, feedback: str) -> None:
    started = time.monotonic()
    result = run(behaviour)
    assert (result.status, result.points, result.feedback) == (Status.ERROR, 0, feedback)
    assert time.monotonic() - started < 3  # a hung check is abandoned, not waited for


def test_transient_grader_errors_are_retried() -> None:
    ok = run("flaky", flaky_failures=2)
    assert (ok.status, ok.attempts) == (Status.PASSED, 3)
    gave_up = run("flaky", flaky_failures=5)
    assert gave_up.status is Status.ERROR and gave_up.attempts == 3
    assert gave_up.feedback == "grader error after 3 attempts: connection reset"


def test_unknown_checks_and_bad_params_are_errors_naming_the_problem() -> None:
    unknown = run_check(CheckCall("test.nope"), Context())
    assert unknown.status is Status.ERROR
    assert "unknown check 'test.nope'; checks of that kind: test.behave" in unknown.feedback
    bad = run_check(CheckCall("test.behave", {"behaviour": "pass", "flaky_failures": "many"}), Context())
    assert bad.status is Status.ERROR
    assert "flaky_failures: Input should be a valid integer" in bad.feedback
    extra = run_check(CheckCall("test.behave", {"behaviour": "pass", "colour": "red"}), Context())
    assert "colour: Extra inputs are not permitted" in extra.feedback


def test_run_jobs_yields_every_job_in_order_with_bounded_concurrency() -> None:
    jobs = [
        Job(f"learner-{i}", f"ns-{i}", (CheckCall("test.behave", {"behaviour": "pass"}, name=f"c{i}"),))
        for i in range(20)
    ]
    seen: list[str] = []
    out = list(run_jobs(jobs, concurrency=4, on_result=lambda job, _r: seen.append(job.learner)))
    assert [job.learner for job, _ in out] == [f"learner-{i}" for i in range(20)]
    assert [results[0].evidence["seen"] for _, results in out] == [f"ns-{i}" for i in range(20)]
    assert sorted(seen) == sorted(j.learner for j in jobs)


def result(name: str, status: Status, points: float, max_points: float = 1) -> object:
    from graders.core import CheckResult

    return CheckResult(name, status, points, max_points, "")


def test_scoring_pass_mark_required_checks_and_errors() -> None:
    planned = ["a", "b", "c"]
    good = [result("a", Status.PASSED, 2, 2), result("b", Status.PASSED, 1), result("c", Status.FAILED, 0)]
    score = score_attempt(good, planned=planned, required={"a"}, pass_mark=0.75)
    assert (score.status, score.score, score.max_score) == (Status.PASSED, 3, 4)

    gated = score_attempt(good, planned=planned, required={"c"}, pass_mark=0.5)
    assert gated.status is Status.FAILED and gated.reasons == ("required check c did not pass",)

    low = score_attempt(good, planned=planned, required=set(), pass_mark=0.8)
    assert low.status is Status.FAILED and low.reasons == ("score 3/4 is below the pass mark of 80%",)

    errored = [*good[:2], result("c", Status.ERROR, 0)]
    assert score_attempt(errored, planned=planned, required=set(), pass_mark=0).status is Status.ERROR

    partial = score_attempt(good[:2], planned=planned, required=set(), pass_mark=0)
    assert partial.status is Status.ERROR and partial.reasons == ("no result for c",)
