"""Grade attempts render to valid, self-contained records and read back into report grades."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from pydantic import ValidationError

from graders.core import CheckResult, Status
from labctl.cli.check import parse_params
from labctl.core.errors import UsageError
from labctl.grading import records
from labctl.grading.scoring import score_attempt

LEARNER = {
    "apiVersion": "labctl.dev/v1alpha1",
    "kind": "Learner",
    "metadata": {"name": "c1-ann-0123456789", "uid": "u-1"},
    "spec": {"cohort": "c1", "email": "ann@uni.edu", "displayName": "Ann", "id": "s1"},
}
LAB = "professional/serve-model"


def attempt(n: int, points: float, *, evidence: dict | None = None) -> dict:
    results = [
        CheckResult("answers", Status.PASSED if points else Status.FAILED, points, 2, "fb", evidence or {}),
        CheckResult("fast", Status.PASSED, 1, 1, "ok"),
    ]
    score = score_attempt(results, planned=["answers", "fast"], required={"answers"}, pass_mark=0.5)
    return records.render_attempt(
        LEARNER,
        LAB,
        n,
        results,
        score,
        pass_mark=0.5,
        graded_by="grader@example",
        graded_at=dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC),
        required=["answers"],
    )


def test_an_attempt_is_named_labelled_owned_and_complete() -> None:
    obj = attempt(3, 2)
    assert obj["metadata"]["name"] == "c1-ann-0123456789.professional.serve-model.3"
    assert obj["metadata"]["labels"]["labctl.dev/lab"] == "professional.serve-model"
    assert obj["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    spec = obj["spec"]
    assert (spec["status"], spec["score"], spec["maxScore"], spec["required"]) == (
        "passed",
        3,
        3,
        ["answers"],
    )
    assert spec["results"][0]["maxPoints"] == 2


def test_huge_evidence_is_truncated_not_refused() -> None:
    obj = attempt(1, 2, evidence={"blob": "x" * 100_000})
    kept = json.loads(obj["spec"]["results"][0]["evidence"])
    assert kept["truncated"] is True and len(obj["spec"]["results"][0]["evidence"]) <= records.MAX_EVIDENCE


def test_records_read_back_into_grades_with_the_latest_attempt_and_missing_labs() -> None:
    history = [attempt(1, 0), attempt(2, 2)]
    grades = records.learner_grades([LEARNER], history, [LAB, "advanced/drift"])
    by_lab = {g.lab: g for g in grades}
    assert (by_lab[LAB].attempt, by_lab[LAB].status, by_lab[LAB].score) == (2, "passed", 3)
    assert by_lab["advanced/drift"].status == "missing"
    assert records.results_of(history[0])[0].status is Status.FAILED


def test_a_record_refuses_an_invalid_lab() -> None:
    with pytest.raises(ValidationError):
        records.render_attempt(
            LEARNER,
            "Serve Model",
            1,
            [],
            score_attempt([], planned=[], required=[], pass_mark=0),
            pass_mark=0,
            graded_by="",
            graded_at=dt.datetime.now(dt.UTC),
        )


def test_check_params_from_the_command_line_are_typed_yaml_scalars() -> None:
    assert parse_params(("threshold=0.8", "url=http://x:1/v1", "tags={a: b}", "names=[x, y]", "empty=")) == {
        "threshold": 0.8,
        "url": "http://x:1/v1",
        "tags": {"a": "b"},
        "names": ["x", "y"],
        "empty": "",
    }
    with pytest.raises(UsageError, match="expected key=value"):
        parse_params(("novalue",))
    with pytest.raises(UsageError, match="given twice"):
        parse_params(("a=1", "a=2"))
