"""A grading's check results as the learner sees them: per task, with the next hint revealed."""

from __future__ import annotations

from collections.abc import Sequence

from graders.core import CheckResult, Status
from labctl.api.labs import CheckState, LabFile, TaskState, TaskStatus


def initial_tasks(lab: LabFile) -> list[TaskStatus]:
    """Every task pending, with its points: what `lab status` shows before the first check."""
    return [TaskStatus(id=t.id, title=t.title, max_points=sum(c.points for c in t.checks)) for t in lab.tasks]


def task_results(
    lab: LabFile, results: Sequence[CheckResult], before: Sequence[TaskStatus] = ()
) -> list[TaskStatus]:
    """Tasks with this grading's results. A task passes when all its checks pass; each check that
    failed reveals one more of the task's hints (one at a time, never all at once)."""
    by_name = {r.check: r for r in results}
    shown = {t.id: t.hints_shown for t in before}
    tasks = []
    for task in lab.tasks:
        checks = []
        for c in task.checks:
            r = by_name.get(c.name)
            status = r.status if r is not None else Status.ERROR
            feedback = r.feedback if r is not None else "not graded"
            if status is Status.FAILED:
                feedback = f"{c.failure}\n{feedback}".strip()
            checks.append(
                CheckState(
                    name=c.name,
                    status=status.value,
                    points=r.points if r is not None else 0.0,
                    max_points=c.points,
                    feedback=feedback[:8000],
                )
            )
        states = {c.status for c in checks}
        state: TaskState = "passed" if states == {"passed"} else "error" if "error" in states else "failed"
        hints = shown.get(task.id, 0) + (1 if state == "failed" else 0)
        tasks.append(
            TaskStatus(
                id=task.id,
                title=task.title,
                state=state,
                points=round(sum(c.points for c in checks), 4),
                max_points=sum(c.max_points for c in checks),
                checks=checks,
                hints_shown=min(hints, len(task.hints)),
            )
        )
    return tasks


def next_hint(lab: LabFile, tasks: Sequence[TaskStatus]) -> str | None:
    """The newest hint revealed for the first task not yet passed."""
    for task, state in zip(lab.tasks, tasks, strict=False):
        if state.state != "passed":
            return task.hints[state.hints_shown - 1] if state.hints_shown and task.hints else None
    return None
