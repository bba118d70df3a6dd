"""Gradebook exports: Canvas, Moodle and plain CSV, row by row as each format documents them."""

from __future__ import annotations

import csv
import io
import random

import pytest

from graders.core import CheckResult, Status
from labctl.grading.gradebook import Assignment, export_gradebook, resolve_assignments
from labctl.grading.reports import LearnerGrade

SERVE, TRACK = "professional/serve-model", "foundations/track-runs"


def result(
    check: str, status: str, points: float, max_points: float = 1.0, feedback: str = ""
) -> CheckResult:
    return CheckResult(check, Status(status), points, max_points, feedback)


def grade(learner: str, lab: str, *results: CheckResult, attempt: int = 1, **kw: object) -> LearnerGrade:
    fields: dict[str, object] = {
        "cohort": "c1",
        "lab": lab,
        "learner": learner,
        "name": learner.split("@")[0].title(),
        "learner_id": f"s-{learner[0]}",
        "attempt": attempt,
        "graded_at": "2024-05-01T12:00:00Z" if attempt else "",
        "results": results,
    }
    return LearnerGrade(**{**fields, **kw})  # type: ignore[arg-type]


def gradebook() -> list[LearnerGrade]:
    """ada passes both labs; bob has partial credit and a grader error; carol attempted only one lab."""
    return [
        grade("ada@uni.edu", SERVE, result("predict", "passed", 2, 2), result("alert", "passed", 2, 2)),
        grade("ada@uni.edu", TRACK, result("runs", "passed", 1)),
        grade(
            "bob@uni.edu",
            SERVE,
            result("predict", "passed", 2, 2),
            result("alert", "failed", 1, 2, feedback="alert fired after 9 min; it must fire within 5"),
        ),
        grade("bob@uni.edu", TRACK, result("runs", "error", 0, feedback="our MLflow did not answer")),
        grade("carol@uni.edu", SERVE, attempt=0),
        grade("carol@uni.edu", TRACK, result("runs", "failed", 0, feedback="no run in experiment 'track'")),
        grade(
            "=cmd|' /C calc'!A0@evil.edu",
            TRACK,
            result("runs", "passed", 1),
            name="@SUM(1+1)*cmd",
            learner_id="-2+3",
        ),
    ]


ASSIGNMENTS = [Assignment(SERVE, "Serve a model", points=100, lms_id="4757"), Assignment(TRACK, "Track runs")]


def rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_canvas_header_points_possible_and_rows() -> None:
    table = rows(export_gradebook(gradebook(), fmt="canvas", assignments=ASSIGNMENTS))
    assert table[0] == [
        "Student",
        "ID",
        "SIS User ID",
        "SIS Login ID",
        "Section",
        "Serve a model (4757)",
        "Track runs",
    ]
    assert table[1] == ["    Points Possible", "", "", "", "", "100", "1"]
    body = {row[3]: row for row in table[2:]}
    assert list(body) == ["'=cmd|' /C calc'!A0@evil.edu", "ada@uni.edu", "bob@uni.edu", "carol@uni.edu"]
    assert body["ada@uni.edu"] == ["Ada", "", "s-a", "ada@uni.edu", "c1", "100", "1"]
    # bob: 3/4 on SERVE scaled to the 100-point assignment; his TRACK grade errored: empty, not 0.
    assert body["bob@uni.edu"][5:] == ["75", ""]
    # carol never attempted SERVE (empty, not 0) and failed TRACK with 0 points (a real 0).
    assert body["carol@uni.edu"][5:] == ["", "0"]


def test_canvas_rows_are_guarded_against_formulas() -> None:
    table = rows(export_gradebook(gradebook(), fmt="canvas", assignments=ASSIGNMENTS))
    evil = table[2]
    assert evil[:4] == ["'@SUM(1+1)*cmd", "", "'-2+3", "'=cmd|' /C calc'!A0@evil.edu"]
    cells = [cell for row in table for cell in row]
    assert not [c for c in cells if c.startswith(("=", "+", "-", "@", "\t", "\r"))]


def test_moodle_identifier_grade_and_feedback_columns() -> None:
    table = rows(export_gradebook(gradebook(), fmt="moodle", assignments=ASSIGNMENTS))
    assert table[0] == [
        "Email address",
        "Serve a model",
        "Serve a model feedback",
        "Track runs",
        "Track runs feedback",
    ]
    body = {row[0]: row[1:] for row in table[1:]}
    assert body["ada@uni.edu"] == ["100", "passed: 4/4 points", "1", "passed: 1/1 points"]
    bob_serve, bob_serve_feedback, bob_track, bob_track_feedback = body["bob@uni.edu"]
    assert bob_serve == "75"
    assert bob_serve_feedback == "passed: 3/4 points\nalert: alert fired after 9 min; it must fire within 5"
    assert (bob_track, bob_track_feedback) == ("", "")  # error: no grade and no feedback to overwrite one
    assert body["carol@uni.edu"] == [
        "",
        "",
        "0",
        "failed: 0/1 points (score 0/1 is below the pass mark of 60%)\nruns: no run in experiment 'track'",
    ]


def test_moodle_without_feedback_columns() -> None:
    table = rows(export_gradebook(gradebook(), fmt="moodle", assignments=ASSIGNMENTS, feedback=False))
    assert table[0] == ["Email address", "Serve a model", "Track runs"]
    assert {row[0]: row[1:] for row in table[1:]}["bob@uni.edu"] == ["75", ""]


def test_plain_csv_flags_errors_and_missing() -> None:
    table = rows(export_gradebook(gradebook(), fmt="csv"))  # columns from the grades: by lab id
    assert table[0] == [
        "learner",
        "email",
        "id",
        f"{TRACK} score",
        f"{TRACK} status",
        f"{SERVE} score",
        f"{SERVE} status",
    ]
    body = {row[1]: row for row in table[1:]}
    assert body["bob@uni.edu"] == ["Bob", "bob@uni.edu", "s-b", "", "error", "3", "passed"]
    assert body["carol@uni.edu"] == ["Carol", "carol@uni.edu", "s-c", "0", "failed", "", "missing"]
    # No grade at all for a lab is missing too.
    assert body["'=cmd|' /C calc'!A0@evil.edu"][5:] == ["", "missing"]


def test_default_assignments_take_the_labs_maximum() -> None:
    assert resolve_assignments(gradebook()) == [Assignment(TRACK, points=1.0), Assignment(SERVE, points=4.0)]
    only_missing = resolve_assignments([grade("carol@uni.edu", SERVE, attempt=0)])
    assert only_missing == [Assignment(SERVE, points=None)]
    table = rows(export_gradebook([grade("carol@uni.edu", SERVE, attempt=0)], fmt="canvas"))
    assert table[1] == ["    Points Possible", "", "", "", "", ""]


def test_latest_attempt_wins_and_learners_merge_case_insensitively() -> None:
    grades = [
        grade("Ada@Uni.edu", SERVE, result("predict", "failed", 0, 2), attempt=1),
        grade("ada@uni.edu", SERVE, result("predict", "passed", 2, 2), attempt=2),
    ]
    table = rows(export_gradebook(grades, fmt="csv"))
    assert table[1:] == [["Ada", "Ada@Uni.edu", "s-A", "2", "passed"]]


@pytest.mark.parametrize("fmt", ["canvas", "moodle", "csv"])
def test_exports_do_not_depend_on_input_order(fmt: str) -> None:
    grades = gradebook()
    shuffled = grades[:]
    random.Random(3).shuffle(shuffled)
    assert shuffled != grades
    expected = export_gradebook(grades, fmt=fmt, assignments=ASSIGNMENTS)
    assert export_gradebook(shuffled, fmt=fmt, assignments=ASSIGNMENTS) == expected


def test_unknown_format_is_refused() -> None:
    with pytest.raises(
        ValueError, match=r"unknown gradebook format 'blackboard'; choose one of canvas, moodle, csv"
    ):
        export_gradebook(gradebook(), fmt="blackboard")
