"""``labctl grade``: grade one lab for a cohort; ``labctl grades``: the recorded history.

``grade`` exits 0 when every learner got a decided grade (passed or failed), 3 when any
attempt is ``error`` (the grader could not see everything: grade again).
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable
from pathlib import Path

import click
import yaml
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from graders.core import Status
from labctl.catalog.publish import newest
from labctl.cli.common import kube_options, reach_option
from labctl.cli.output import emit, err_console, output_choice, output_option
from labctl.cohorts import operations as cohorts
from labctl.core.errors import UsageError
from labctl.grading import records, reports
from labctl.grading.gradebook import Assignment, export_gradebook
from labctl.grading.plan import GradingPlan, plan_for_lab
from labctl.grading.reach import Mode as ReachMode
from labctl.grading.reach import reaching
from labctl.grading.reports import LearnerGrade
from labctl.grading.run import Graded, grade, place_of
from labctl.kube import Kube
from labctl.sessions.plan import published_grading


def _identity(kube: Kube) -> str:
    """Who is grading, as the API server sees them (recorded with every attempt)."""
    try:
        review = kube.create({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
        return str(((review.get("status") or {}).get("userInfo") or {}).get("username") or "")
    except Exception:  # older servers: the record simply says nothing
        return ""


def as_grades(graded: list[Graded], plan: GradingPlan) -> list[LearnerGrade]:
    """Freshly graded attempts in the shape every report takes."""
    return [
        LearnerGrade(
            cohort=g.learner["spec"]["cohort"],
            lab=plan.lab,
            learner=g.email,
            name=g.learner["spec"].get("displayName") or "",
            learner_id=g.learner["spec"].get("id") or "",
            namespace=g.learner["metadata"]["name"],
            attempt=g.attempt or 1,
            graded_at=g.graded_at,
            results=g.results,
            required=plan.required,
            pass_mark=plan.pass_mark,
            planned=tuple(c.name for c in plan.checks),
        )
        for g in graded
    ]


REPORT_FORMATS = ["table", "json", "yaml", "csv", "junit", "html", "gradescope"]


def write_report(grades: list[LearnerGrade], output: str, out: Path | None, title: str) -> None:
    """Render ``grades`` as ``output``; to ``out`` if given (a directory for gradescope), else stdout."""
    if output == "table" and out is None:
        emit(reports.grade_rows(grades), output="table", columns=list(reports.GRADE_COLUMNS))
        return
    if output == "gradescope":
        if out is None:
            raise UsageError("-o gradescope writes one results.json per learner: give --out DIR")
        for g in grades:
            folder = out / g.learner
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "results.json").write_text(reports.render_gradescope(g))
        err_console.print(f"wrote {len(grades)} results.json files under {out}")
        return
    renderers: dict[str, Callable[[list[LearnerGrade]], str]] = {
        "table": reports.render_csv,
        "json": reports.render_json,
        "yaml": lambda gs: yaml.safe_dump(json.loads(reports.render_json(gs)), sort_keys=False),
        "csv": reports.render_csv,
        "junit": reports.render_junit,
        "html": lambda gs: reports.render_html(gs, title=title),
    }
    text = renderers[output](grades)
    if out is None:
        click.echo(text, nl=not text.endswith("\n"))
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    err_console.print(f"wrote {out}")


@click.command("grade")
@click.option("--cohort", "cohort_name", required=True, help="The cohort to grade.")
@click.option("--lab", required=True, help="The lab, e.g. professional/serve-model.")
@click.option("--learner", "emails", multiple=True, help="Only these learners (e-mail; repeat).")
@click.option(
    "--plan", "plan_file", type=click.Path(dir_okay=False, path_type=Path), help="Grading plan YAML."
)
@click.option("--concurrency", type=click.IntRange(1, 256), default=16, show_default=True)
@reach_option
@output_choice(REPORT_FORMATS, help="Report format.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Write the report here (a DIR for gradescope).",
)
@kube_options
def grade_cmd(
    kube: Kube,
    cohort_name: str,
    lab: str,
    emails: tuple[str, ...],
    plan_file: Path | None,
    concurrency: int,
    reach_mode: ReachMode,
    output: str,
    out: Path | None,
) -> None:
    """Grade LAB for every learner of a cohort; each grading is recorded as a new attempt."""
    with contextlib.ExitStack() as stack:
        published = None if plan_file else stack.enter_context(published_grading(kube, lab))
        # A published lab grades with its own checks and hidden data; else a plan file (or
        # labs/<lab>/grading.yaml). A bad plan stops here, before any learner is graded.
        plan, places = published or (
            plan_for_lab(lab, plan_file, known=() if plan_file else [s.id for s in newest(kube)]),
            place_of,
        )
        cohorts.get_cohort(kube, cohort_name)
        learners = cohorts.learners(kube, cohort_name)
        if emails:
            wanted = {e.casefold() for e in emails}
            unknown = wanted - {lr["spec"]["email"].casefold() for lr in learners}
            if unknown:
                raise UsageError(f"not in cohort {cohort_name}: {', '.join(sorted(unknown))}")
            learners = [lr for lr in learners if lr["spec"]["email"].casefold() in wanted]
        total = len(learners) * len(plan.checks)
        columns = (TextColumn(f"grading {lab}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        progress = Progress(
            *columns, console=err_console, transient=True, disable=not err_console.is_terminal
        )
        with progress as bar, reaching(kube, reach_mode) as reach:
            task = bar.add_task("checks", total=total)
            graded = grade(
                kube,
                plan,
                learners,
                graded_by=_identity(kube),
                concurrency=concurrency,
                progress=lambda n: bar.advance(task, n),
                reach=reach,
                places=places,
            )
    write_report(as_grades(graded, plan), output, out, title=f"{cohort_name} · {lab}")
    if any(g.score.status is Status.ERROR for g in graded):
        sys.exit(3)


@click.command("grades")
@click.option("--cohort", "cohort_name", required=True, help="The cohort.")
@click.option("--lab", default=None, help="Only this lab.")
@click.option("--learner", "email", default=None, help="Only this learner (e-mail): every attempt.")
@output_option
@kube_options
def grades_cmd(kube: Kube, cohort_name: str, lab: str | None, email: str | None, output: str) -> None:
    """Recorded grade attempts: the latest per learner and lab, or one learner's whole history."""
    learner = cohorts.find_learner(kube, cohort_name, email)["metadata"]["name"] if email else None
    attempts = records.history(kube, cohort=cohort_name, lab=lab, learner=learner)
    shown = (
        attempts
        if email
        else sorted(records.latest(attempts).values(), key=lambda a: (a["spec"]["email"], a["spec"]["lab"]))
    )
    rows = [
        {
            "learner": a["spec"]["email"],
            "lab": a["spec"]["lab"],
            "attempt": a["spec"]["attempt"],
            "status": a["spec"]["status"],
            "score": a["spec"]["score"],
            "max_score": a["spec"]["maxScore"],
            "graded_at": a["spec"]["gradedAt"],
        }
        for a in shown
    ]
    if output == "table":
        emit(rows, output=output, title="grade attempts")
    else:
        emit([json.loads(json.dumps(r, default=str)) for r in rows], output=output)


@click.group()
def gradebook() -> None:
    """Gradebooks for learning-management systems."""


@gradebook.command("export")
@click.option("--cohort", "cohort_name", required=True, help="The cohort.")
@click.option(
    "--format", "fmt", type=click.Choice(["canvas", "moodle", "csv"]), default="csv", show_default=True
)
@click.option("--lab", "labs", multiple=True, help="Labs to include, in order (default: the cohort's labs).")
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write here, not stdout."
)
@kube_options
def export_cmd(kube: Kube, cohort_name: str, fmt: str, labs: tuple[str, ...], out: Path | None) -> None:
    """One row per learner, a column per lab, importable into Canvas or Moodle."""
    cohort = cohorts.get_cohort(kube, cohort_name)
    attempts = records.history(kube, cohort=cohort_name)
    columns = (
        list(labs) or list(cohort["spec"].get("labs") or []) or sorted({a["spec"]["lab"] for a in attempts})
    )
    if not columns:
        raise UsageError(f"cohort {cohort_name} has no labs and no grades yet: nothing to export (--lab)")
    grades = records.learner_grades(cohorts.learners(kube, cohort_name), attempts, columns)
    text = export_gradebook(grades, fmt=fmt, assignments=[Assignment(lab) for lab in columns])
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text)
        err_console.print(f"wrote {out} ({len(grades) // len(columns)} learners, {len(columns)} labs)")
