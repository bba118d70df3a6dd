"""Gradebook exports: every learner's latest grade at every lab, one row per learner.

``canvas`` and ``moodle`` are the CSVs those LMSs import; ``csv`` is a plain sheet for people.
In the LMS files a missing or errored grade is an empty cell, never a zero: an import must not
write 0 over a lab the learner has yet to attempt, nor over one our grader failed to see (that
one gets re-graded). The plain CSV says which is which in a status column.

Every cell goes through :func:`labctl.grading.reports.safe_cell`: names, emails and titles that
start like a spreadsheet formula are prefixed with ``'``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from labctl.grading.reports import LearnerGrade, csv_text, ordered, points

FORMATS = ("canvas", "moodle", "csv")
CANVAS_IDENTITY = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
CANVAS_POINTS_POSSIBLE = "    Points Possible"  # Canvas's own spelling, four leading spaces
MOODLE_IDENTITY = "Email address"  # map it to "Email address" in Moodle's import preview
GRADED = ("passed", "failed")  # the statuses that carry a grade an LMS may record

Rows = list[list[str]]


@dataclass(frozen=True)
class Assignment:
    """One gradebook column: a lab as the LMS knows it.

    ``points`` is what the LMS grades out of; a lab's score is scaled to it (7/10 on a
    100-point assignment is 70). Without it the lab's own maximum is used. ``lms_id`` is the
    LMS's assignment id: Canvas matches ``Title (id)`` to an existing assignment and creates a
    new one for a bare title.
    """

    lab: str
    title: str = ""
    points: float | None = None
    lms_id: str = ""

    @property
    def heading(self) -> str:
        return self.title or self.lab


@dataclass(frozen=True)
class _Learner:
    email: str
    name: str
    learner_id: str
    sections: str


def export_gradebook(
    grades: Iterable[LearnerGrade],
    *,
    fmt: str,
    assignments: Sequence[Assignment] | None = None,
    feedback: bool = True,
) -> str:
    """The gradebook in ``fmt`` (one of :data:`FORMATS`) as CSV text."""
    renderers: dict[str, Callable[[list[LearnerGrade], list[Assignment]], Rows]] = {
        "canvas": _canvas,
        "moodle": lambda g, a: _moodle(g, a, feedback=feedback),
        "csv": _plain,
    }
    if fmt not in renderers:
        raise ValueError(f"unknown gradebook format {fmt!r}; choose one of {', '.join(FORMATS)}")
    grades = ordered(grades)
    return csv_text(renderers[fmt](grades, resolve_assignments(grades, assignments)))


def resolve_assignments(
    grades: Sequence[LearnerGrade], assignments: Sequence[Assignment] | None = None
) -> list[Assignment]:
    """The columns: the given assignments (points filled in), or one per lab found, by lab id."""
    if assignments is None:
        assignments = [Assignment(lab) for lab in sorted({g.lab for g in grades})]
    resolved = []
    for a in assignments:
        if a.points is None:
            maxima = [g.max_score for g in grades if g.lab == a.lab and g.status in GRADED]
            a = Assignment(a.lab, a.title, max(maxima) if maxima else None, a.lms_id)
        resolved.append(a)
    return resolved


def _learners(grades: Sequence[LearnerGrade]) -> list[_Learner]:
    """One per email (case-insensitive), by email; the first grade with a name or id supplies it."""
    found: dict[str, list[LearnerGrade]] = {}
    for g in grades:
        found.setdefault(g.learner.lower(), []).append(g)
    learners = []
    for key in sorted(found):
        mine = found[key]
        learners.append(
            _Learner(
                email=mine[0].learner,
                name=next((g.name for g in mine if g.name), ""),
                learner_id=next((g.learner_id for g in mine if g.learner_id), ""),
                sections=", ".join(sorted({g.cohort for g in mine})),
            )
        )
    return learners


def _grid(grades: Sequence[LearnerGrade]) -> dict[tuple[str, str], LearnerGrade]:
    """(email, lab) -> grade; given several, the latest attempt wins."""
    grid: dict[tuple[str, str], LearnerGrade] = {}
    for g in grades:
        key = (g.learner.lower(), g.lab)
        if key not in grid or g.attempt > grid[key].attempt:
            grid[key] = g
    return grid


def _lms_score(grade: LearnerGrade | None, assignment: Assignment) -> str:
    """The score an LMS should record, scaled to the assignment; empty when there is none."""
    if grade is None or grade.status not in GRADED:
        return ""
    if assignment.points is None or not grade.max_score:
        return points(grade.score)
    return points(grade.score / grade.max_score * assignment.points)


def _canvas(grades: list[LearnerGrade], assignments: list[Assignment]) -> Rows:
    grid = _grid(grades)
    titles = [f"{a.heading} ({a.lms_id})" if a.lms_id else a.heading for a in assignments]
    possible = ["" if a.points is None else points(a.points) for a in assignments]
    rows: Rows = [
        [*CANVAS_IDENTITY, *titles],
        [CANVAS_POINTS_POSSIBLE, "", "", "", "", *possible],
    ]
    for learner in _learners(grades):
        # Canvas matches students by SIS User ID or SIS Login ID; labctl has no Canvas user ID.
        identity = [learner.name or learner.email, "", learner.learner_id, learner.email, learner.sections]
        rows.append(identity + [_lms_score(grid.get((learner.email.lower(), a.lab)), a) for a in assignments])
    return rows


def _feedback(grade: LearnerGrade | None) -> str:
    if grade is None or grade.status not in GRADED:
        return ""  # Moodle overwrites the grade with the feedback: both stay empty together
    text = f"{grade.status}: {points(grade.score)}/{points(grade.max_score)} points"
    if grade.status == "failed":
        text += " (" + "; ".join(grade.reasons) + ")"
    details = [f"{r.check}: {r.feedback}" for r in grade.results if not r.passed and r.feedback]
    return "\n".join([text, *details])


def _moodle(grades: list[LearnerGrade], assignments: list[Assignment], *, feedback: bool) -> Rows:
    grid = _grid(grades)
    header: list[str] = [MOODLE_IDENTITY]
    for a in assignments:
        header += [a.heading, f"{a.heading} feedback"] if feedback else [a.heading]
    rows = [header]
    for learner in _learners(grades):
        row: list[str] = [learner.email]
        for a in assignments:
            grade = grid.get((learner.email.lower(), a.lab))
            row += [_lms_score(grade, a), _feedback(grade)] if feedback else [_lms_score(grade, a)]
        rows.append(row)
    return rows


def _plain(grades: list[LearnerGrade], assignments: list[Assignment]) -> Rows:
    grid = _grid(grades)
    header: list[str] = ["learner", "email", "id"]
    for a in assignments:
        header += [f"{a.heading} score", f"{a.heading} status"]
    rows = [header]
    for learner in _learners(grades):
        row: list[str] = [learner.name, learner.email, learner.learner_id]
        for a in assignments:
            grade = grid.get((learner.email.lower(), a.lab))
            status = grade.status if grade else "missing"
            row += [points(grade.score) if grade and status in GRADED else "", status]
        rows.append(row)
    return rows
