"""Grading plans are validated whole before any learner is graded; placeholders are filled per learner."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.core.errors import UsageError
from labctl.grading.plan import fill, load_plan, plan_for_lab
from tests.helpers import checks  # noqa: F401  (registers test.behave)

GOOD = """
lab: professional/serve-model
passMark: 0.7
checks:
  - name: answers
    check: test.behave
    points: 3
    required: true
    params: {behaviour: pass}
  - name: in-namespace
    check: test.behave
    timeoutSeconds: 5
    params: {behaviour: "{namespace}"}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "grading.yaml"
    path.write_text(text)
    return path


def test_a_good_plan_gives_each_learner_their_own_calls(tmp_path: Path) -> None:
    plan = load_plan(write(tmp_path, GOOD.replace('"{namespace}"', "fail")))
    assert plan.required == {"answers"}
    calls = plan.calls({"namespace": "c-a", "learner": "c-a", "email": "a@x.io", "cohort": "c"})
    assert [(c.title, c.max_points, c.timeout_s) for c in calls] == [
        ("answers", 3, 60),
        ("in-namespace", 1, 5),
    ]


def test_placeholders_are_filled_everywhere_and_unknown_ones_refused() -> None:
    place = {"namespace": "c-a", "learner": "c-a", "email": "a@x.io", "cohort": "c"}
    assert fill({"url": "http://mlflow.{namespace}.svc:5000", "tags": ["{email}", 3]}, place) == {
        "url": "http://mlflow.c-a.svc:5000",
        "tags": ["a@x.io", 3],
    }
    with pytest.raises(KeyError, match="unknown placeholder"):
        fill("{password}", place)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lab: nope\nchecks: []", "lab: String should match pattern"),
        (GOOD.replace("test.behave", "test.missing", 1), "checks[0] (answers): unknown check 'test.missing'"),
        (
            GOOD.replace("{behaviour: pass}", "{behaviour: 7}"),
            "checks[0] (answers): check test.behave: bad parameters",
        ),
        (GOOD.replace('"{namespace}"', '"{secret}"'), "unknown placeholder(s) secret"),
        (GOOD.replace("in-namespace", "answers"), "check name 'answers' used twice"),
        (GOOD.replace("points: 3", "points: -1"), "checks.0.points: Input should be greater than 0"),
        ("- a\n- b\n", "expected a mapping"),
        ("lab: [unclosed", "not valid YAML"),
    ],
)
def test_bad_plans_name_the_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(UsageError) as err:
        load_plan(path)
    assert str(path) in str(err.value)
    assert message in str(err.value)


def test_a_plan_must_be_for_the_lab_asked(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace('"{namespace}"', "pass"))
    with pytest.raises(UsageError, match="the plan is for 'professional/serve-model', not 'advanced/x'"):
        plan_for_lab("advanced/x", path)
    with pytest.raises(UsageError, match="has no grading plan"):
        plan_for_lab("advanced/does-not-exist")
