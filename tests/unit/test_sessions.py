"""Lab sessions' pure rules: gates, expiry, cooldown, seeds, per-task results and hints, publishing."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from graders.core import CheckResult, Status
from labctl.api.labs import LabFile, LabSessionStatus, LabSpec, lab_object_name, session_name
from labctl.catalog.load import read_folder
from labctl.catalog.publish import render
from labctl.sessions import gates
from labctl.sessions.plan import place_of, plan_of
from labctl.sessions.results import initial_tasks, next_hint, task_results

HELLO = Path(__file__).parents[1] / "cluster" / "labs" / "foundation" / "hello-config"


def lab(**changes: object) -> LabFile:
    folder, problems = read_folder(HELLO)
    assert folder is not None and not problems
    return folder.lab.model_copy(update=changes)


def result(name: str, status: Status, points: float = 0.0) -> CheckResult:
    return CheckResult(name, status, points, 1.0, f"{name} said {status.value}")


def test_levels_are_taken_in_order_and_prerequisites_passed_first() -> None:
    advanced = lab(id="advanced/x", level="advanced", prerequisites=["foundation/hello-config"])
    refusal = gates.start_refusal(advanced, cohort_level="professional", passed=set())
    assert refusal is not None and "is an advanced lab and your cohort is at professional level" in refusal
    refusal = gates.start_refusal(advanced, cohort_level="advanced", passed=set())
    assert refusal is not None and "needs foundation/hello-config passed first" in refusal
    assert gates.start_refusal(advanced, cohort_level="advanced", passed={"foundation/hello-config"}) is None
    assert gates.start_refusal(advanced, cohort_level="foundation", passed=set(), override=True) is None


@pytest.mark.parametrize(("duration", "seconds"), [("30m", 1800), ("2h", 7200), ("1h30m", 5400)])
def test_sessions_last_the_labs_duration(duration: str, seconds: int) -> None:
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert gates.expires_at(start, lab(duration=duration)) == start + dt.timedelta(seconds=seconds)


def test_cooldown_counts_from_the_last_check() -> None:
    now = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
    assert gates.cooldown_left(None, now, 30) == 0
    assert gates.cooldown_left(now - dt.timedelta(seconds=10), now, 30) == 20
    assert gates.cooldown_left(now - dt.timedelta(seconds=40), now, 30) == 0


def test_seeds_differ_per_learner_and_lab_and_never_change() -> None:
    assert gates.seed("ns-a", "foundation/x") == gates.seed("ns-a", "foundation/x")
    assert len({gates.seed(n, lab_id) for n in ("ns-a", "ns-b") for lab_id in ("f/x", "f/y")}) == 4


def test_results_go_to_their_tasks_and_reveal_one_hint_per_failure() -> None:
    hello = lab()
    tasks = initial_tasks(hello)
    assert [(t.id, t.state, t.max_points) for t in tasks] == [
        ("config", "pending", 3.0),
        ("service", "pending", 1.0),
    ]
    failed = [
        result("greeting", Status.FAILED),
        result("seeded", Status.FAILED),
        result("service", Status.PASSED, 1),
    ]
    tasks = task_results(hello, failed, tasks)
    assert [(t.state, t.points, t.hints_shown) for t in tasks] == [("failed", 0, 1), ("passed", 1, 0)]
    assert (
        tasks[0].checks[0].feedback.startswith("The ConfigMap greeting must exist")
    )  # the lab's message first
    assert next_hint(hello, tasks) == hello.tasks[0].hints[0]
    tasks = task_results(hello, failed, tasks)
    assert next_hint(hello, tasks) == hello.tasks[0].hints[1]
    tasks = task_results(hello, failed, tasks)  # no third hint: the last one stays
    assert tasks[0].hints_shown == 2
    errored = task_results(hello, [result("greeting", Status.ERROR)], tasks)
    assert errored[0].state == "error" and errored[1].checks[0].feedback == "not graded"


def test_a_published_lab_holds_what_learners_may_see_and_no_more() -> None:
    folder, _ = read_folder(HELLO)
    assert folder is not None
    rendered = render(folder)
    spec = rendered.lab["spec"]
    assert (
        rendered.name
        == lab_object_name("foundation/hello-config", "1.0.0")
        == "foundation.hello-config.v1-0-0"
    )
    assert spec["files"] == {"greeting.env": "message=hello\n"}
    assert "42" not in json.dumps(rendered.lab)  # the hidden answer stays out of the Lab
    assert rendered.hidden is not None and rendered.hidden["metadata"]["namespace"] == "labctl-system"
    assert render(folder).lab["spec"]["digest"] == spec["digest"]  # same content, same digest
    assert session_name("foundation/hello-config") == "foundation.hello-config"


def test_a_published_labs_plan_fills_every_placeholder_per_learner(tmp_path: Path) -> None:
    folder, _ = read_folder(HELLO)
    assert folder is not None
    spec = LabSpec.model_validate(render(folder).lab["spec"])
    plan = plan_of(spec)
    assert [c.name for c in plan.checks] == ["greeting", "seeded", "service"]
    learner = {"metadata": {"name": "c-ada"}, "spec": {"email": "a@b.c", "cohort": "c"}, "status": {}}
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    place = place_of(learner, spec.id, hidden=tmp_path, session_start=start)
    calls = plan.calls(place)
    assert calls[1].params["fields"]["data.seed"] == str(gates.seed("c-ada", spec.id))
    assert place["session_start"] == "2026-01-01T00:00:00+00:00" and place["hidden"] == str(tmp_path)
    assert LabSessionStatus().phase is None
