"""What the pages show, computed from the store: pure functions, no I/O.

A grid cell's state is the session's, said as `labctl cohort status` says it
(:func:`labctl.cohorts.operations.session_state`); a lab's pass counts and scores are the gradebook's
(:func:`labctl.grading.records.learner_grades`, the grades `labctl gradebook export` writes).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from labctl.cohorts.operations import session_state
from labctl.dashboard.store import Store
from labctl.grading.records import learner_grades
from labctl.grading.reports import LearnerGrade, check_names, points

# Order for sorting a lab column and for the legend: furthest along first.
STATES = ("passed", "failed", "error", "in progress", "not started", "expired", "stopped", "refused")
SYMBOLS = {
    "passed": "✓",
    "failed": "✗",
    "error": "!",
    "in progress": "…",
    "not started": "\u2013",  # an en dash: nothing yet
    "expired": "⌛",
    "stopped": "■",
    "refused": "⊘",
}


@dataclass(frozen=True)
class Cell:
    """One learner at one lab."""

    state: str
    score: float | None = None
    max_score: float | None = None
    attempts: int = 0
    last_activity: str | None = None  # RFC 3339

    @property
    def css(self) -> str:
        return "s-" + self.state.replace(" ", "-")

    @property
    def text(self) -> str:
        symbol = SYMBOLS.get(self.state, "?")
        if self.score is None or self.max_score is None:
            return symbol
        return f"{symbol} {points(self.score)}/{points(self.max_score)}"

    @property
    def title(self) -> str:
        parts = [self.state]
        if self.attempts:
            parts.append(f"{self.attempts} attempt{'s' if self.attempts != 1 else ''}")
        if self.last_activity:
            parts.append(f"last activity {self.last_activity}")
        return ", ".join(parts)


def cell(store: Store, learner: dict[str, Any], lab: str) -> Cell:
    """The learner's state at ``lab``: their session's, or an instructor's grading when there is none."""
    session = store.sessions.get((store.namespace_of(learner), lab))
    attempt = store.attempts.get((learner["metadata"]["name"], lab))
    graded = attempt["spec"] if attempt else None
    if session is not None:
        state = session_state(session["phase"])
    elif graded is not None:
        state = str(graded["status"])
    else:
        return Cell("not started")
    if state == "failed" and graded is not None and graded["status"] == "error":
        state = "error"  # the last check could not look: not the learner's failure
    score = max_score = None
    if session is not None and session["attempts"]:
        score, max_score = session["score"], session["maxScore"]
    elif graded is not None:
        score, max_score = float(graded["score"]), float(graded["maxScore"])
    attempts = max(session["attempts"] if session else 0, int(graded["attempt"]) if graded else 0)
    times = [
        t
        for t in (
            session and session["lastCheckAt"],
            session and session["startedAt"],
            graded and graded["gradedAt"],
        )
        if t
    ]
    return Cell(state, score, max_score, attempts, max(times) if times else None)


def cohort_labs(store: Store, cohort: dict[str, Any], learners: Sequence[dict[str, Any]]) -> list[str]:
    """The cohort's labs, then any other lab its learners started or were graded at."""
    namespaces = {store.namespace_of(lr) for lr in learners}
    names = {lr["metadata"]["name"] for lr in learners}
    with store.lock:
        started = {lab for ns, lab in store.sessions if ns in namespaces}
        graded = {lab for learner, lab in store.attempts if learner in names}
    return list(dict.fromkeys([*cohort["labs"], *sorted(started | graded)]))


@dataclass
class Row:
    learner: dict[str, Any]
    cells: list[Cell]

    @property
    def name(self) -> str:
        return str(self.learner["metadata"]["name"])

    @property
    def email(self) -> str:
        return str(self.learner["spec"]["email"])

    @property
    def display_name(self) -> str:
        return str(self.learner["spec"].get("displayName") or "")

    @property
    def environment(self) -> str:
        return str(self.learner["status"].get("phase") or "Pending")

    @property
    def passed(self) -> int:
        return sum(c.state == "passed" for c in self.cells)

    @property
    def last_activity(self) -> str:
        return max((c.last_activity for c in self.cells if c.last_activity), default="")


@dataclass
class Grid:
    cohort: dict[str, Any]
    labs: list[str]
    rows: list[Row]
    total: int  # learners before filtering
    counts: list[Counter[str]] = field(default_factory=list)  # per lab, over every learner


def column_counts(store: Store, learners: Sequence[dict[str, Any]], lab: str) -> Counter[str]:
    """How many of ``learners`` are in each state at ``lab``: a grid column's footer."""
    with store.lock:
        return Counter(cell(store, lr, lab).state for lr in learners)


SORTS = ("learner", "passed", "activity")


def grid(
    store: Store,
    cohort: dict[str, Any],
    *,
    query: str = "",
    state: str = "",
    lab: str = "",
    sort: str = "learner",
    descending: bool = False,
) -> Grid:
    """The cohort's learners x labs, filtered (search text, a state, optionally at one lab) and sorted
    (by learner, labs passed, last activity, or a lab column)."""
    learners = store.learners_of(cohort["name"])
    labs = cohort_labs(store, cohort, learners)
    with store.lock:
        rows = [Row(lr, [cell(store, lr, x) for x in labs]) for lr in learners]
    counts = [Counter(r.cells[i].state for r in rows) for i in range(len(labs))]
    shown = rows
    if query:
        needle = query.casefold()
        shown = [r for r in shown if needle in r.email.casefold() or needle in r.display_name.casefold()]
    column = labs.index(lab) if lab in labs else None
    if state:
        if column is None:
            shown = [r for r in shown if any(c.state == state for c in r.cells)]
        else:
            shown = [r for r in shown if r.cells[column].state == state]
    shown = sorted(shown, key=_sort_key(sort, labs), reverse=descending)
    return Grid(cohort, labs, shown, len(rows), counts)


def _sort_key(sort: str, labs: list[str]) -> Any:
    if sort == "passed":
        return lambda r: (r.passed, r.email)
    if sort == "activity":
        return lambda r: (r.last_activity, r.email)
    if sort.startswith("lab:") and sort[4:] in labs:
        i = labs.index(sort[4:])
        order = {s: n for n, s in enumerate(reversed(STATES))}
        return lambda r: (order.get(r.cells[i].state, -1), r.cells[i].score or 0, r.email)
    return lambda r: r.email


# --- a lab's results: the gradebook's numbers ----------------------------------------------------


@dataclass(frozen=True)
class CheckRate:
    check: str
    passed: int
    graded: int

    @property
    def rate(self) -> float:
        return self.passed / self.graded if self.graded else 0.0


@dataclass(frozen=True)
class LabStats:
    lab: str
    statuses: dict[str, int]  # passed / failed / error / missing, as the gradebook's status column
    checks: list[CheckRate]  # latest attempts: how many passed each check
    histogram: list[tuple[str, int]]  # score bucket label -> learners (passed or failed)
    max_score: float
    mean_score: float | None


def lab_grades(store: Store, cohort: str, lab: str) -> list[LearnerGrade]:
    """Every learner's latest grade at ``lab``, exactly as `labctl gradebook export` computes it."""
    learners = store.learners_of(cohort)
    with store.lock:
        attempts = [a for (_, x), a in store.attempts.items() if x == lab and a["spec"]["cohort"] == cohort]
    return learner_grades(learners, attempts, [lab])


def lab_stats(grades: Sequence[LearnerGrade], lab: str) -> LabStats:
    statuses = Counter(g.status for g in grades)
    attempted = [g for g in grades if g.status != "missing"]
    checks = []
    for name in check_names(attempted):
        results = [r for g in attempted for r in g.results if r.check == name]
        checks.append(CheckRate(name, sum(r.passed for r in results), len(results)))
    scored = [g for g in grades if g.status in ("passed", "failed")]
    top = max((g.max_score for g in scored), default=0.0)
    return LabStats(
        lab=lab,
        statuses={s: statuses.get(s, 0) for s in ("passed", "failed", "error", "missing")},
        checks=checks,
        histogram=histogram([g.score for g in scored], top),
        max_score=top,
        mean_score=sum(g.score for g in scored) / len(scored) if scored else None,
    )


def histogram(scores: Sequence[float], top: float, *, bins: int = 10) -> list[tuple[str, int]]:
    """Learners per score: one bar per point when a lab is worth few points, else ``bins`` ranges."""
    if top <= 0:
        return []
    if top <= bins and float(top).is_integer():
        counts = Counter(int(s) for s in scores)
        return [(str(p), counts.get(p, 0)) for p in range(int(top) + 1)]
    width = top / bins
    counts = Counter(min(int(s / width), bins - 1) for s in scores)
    return [(f"{points(i * width)}\u2013{points((i + 1) * width)}", counts.get(i, 0)) for i in range(bins)]


# --- the cohorts page ----------------------------------------------------------------------------


def cohort_rows(store: Store) -> list[dict[str, Any]]:
    with store.lock:
        cohorts = sorted(store.cohorts.values(), key=lambda c: c["name"])
        rows = []
        for c in cohorts:
            learners = [lr for lr in store.learners.values() if lr["spec"]["cohort"] == c["name"]]
            ready = sum(lr["status"].get("phase") == "Ready" for lr in learners)
            rows.append({**c, "learners": len(learners), "ready_now": ready})
    return rows
