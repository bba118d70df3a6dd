"""Grade reports: learners' latest attempts at a lab, rendered for people, CI and Gradescope.

Every renderer is a pure function of its input: no clock, no hostname lookup, no I/O. Output is
ordered by cohort, lab, learner email and then the plan's check order, so the same grades always
give byte-identical text (reports can be diffed and committed).

Text that came from learners or from checks (names, emails, feedback, evidence) is escaped for
the format it lands in: HTML-escaped in the report, XML-escaped and stripped of characters XML
cannot carry in JUnit, and guarded against spreadsheet formulas in CSV.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal
from xml.etree import ElementTree as ET

from graders.core import CheckResult, Status
from labctl.grading.scoring import Score, score_attempt

# The GradingPlan default: a lab passes at 60% of its points, every required check passed.
# Labs that must be all-or-nothing say so in their plan (passMark: 1.0 or required checks).
PASS_MARK = 0.6

GradeStatus = Literal["passed", "failed", "error", "missing"]
REGRADE_NOTE = "could not be graded (a problem on our side, not in your work); it will be re-graded"


@dataclass(frozen=True)
class LearnerGrade:
    """One learner's latest attempt at one lab (``attempt == 0``: no attempt yet, status missing).

    The status is derived with :func:`labctl.grading.scoring.score_attempt`, the rule grading
    records with: any check in error (or a planned check without a result) makes the grade
    ``error``, never a pass; otherwise it passes when ``score / max_score >= pass_mark`` and
    every check in ``required`` passed.
    """

    cohort: str
    lab: str
    learner: str  # email
    name: str = ""
    learner_id: str = ""
    namespace: str = ""
    attempt: int = 0
    graded_at: str = ""  # RFC 3339
    results: tuple[CheckResult, ...] = ()
    required: frozenset[str] = frozenset()
    pass_mark: float = PASS_MARK
    planned: tuple[str, ...] = ()  # the plan's check names, in order; a missing result is an error

    def __post_init__(self) -> None:
        if self.attempt == 0 and self.results:
            raise ValueError(f"{self.learner} at {self.lab}: results given for attempt 0 (no attempt)")
        if self.graded_at:
            parse_time(self.graded_at)  # fail here, not halfway through a report

    @cached_property
    def scored(self) -> Score | None:
        if self.attempt == 0:
            return None
        if not self.results:
            # Nothing was graded: a pass mark of 0 must not turn that into a pass.
            return Score(Status.ERROR, 0.0, 0.0, ("no check results were recorded",))
        planned = dict.fromkeys([*self.planned, *(r.check for r in self.results), *sorted(self.required)])
        return score_attempt(self.results, planned=planned, required=self.required, pass_mark=self.pass_mark)

    @property
    def status(self) -> GradeStatus:
        return "missing" if self.scored is None else self.scored.status.value

    @property
    def score(self) -> float:
        return self.scored.score if self.scored else 0.0

    @property
    def max_score(self) -> float:
        return self.scored.max_score if self.scored else 0.0

    @property
    def reasons(self) -> tuple[str, ...]:
        return self.scored.reasons if self.scored else ("no attempt yet",)


def parse_time(text: str) -> dt.datetime:
    """An RFC 3339 time, as an aware UTC datetime (naive input is taken as UTC)."""
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an RFC 3339 time: {text!r}") from None
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)


def points(value: float) -> str:
    """Points as people write them: ``2``, ``1.5``, ``0.67`` (two decimals at most, like Canvas)."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def ordered(grades: Iterable[LearnerGrade]) -> list[LearnerGrade]:
    return sorted(grades, key=lambda g: (g.cohort, g.lab, g.learner.lower(), g.learner))


def check_names(grades: Iterable[LearnerGrade]) -> list[str]:
    """Check names in plan order (first appearance), across all grades."""
    names: dict[str, None] = {}
    for grade in ordered(grades):
        names.update(dict.fromkeys([*grade.planned, *(r.check for r in grade.results)]))
    return list(names)


# --- table / JSON / CSV (`labctl grade -o table|json|csv`) -------------------------------------

GRADE_COLUMNS = ("learner", "name", "attempt", "score", "max_score", "percent", "status", "checks", "note")


def grade_rows(grades: Iterable[LearnerGrade]) -> list[dict[str, Any]]:
    """One row per learner, for the table view and the CSV (values are display strings)."""
    rows = []
    for g in ordered(grades):
        done = g.status != "missing"
        passed = sum(r.status is Status.PASSED for r in g.results)
        errors = sum(r.status is Status.ERROR for r in g.results)
        checks = f"{passed}/{len(g.results)} passed" + (f", {errors} error" if errors else "") if done else ""
        note = "re-grade: " if g.status == "error" else ""
        rows.append(
            {
                "learner": g.learner,
                "name": g.name,
                "attempt": g.attempt if done else "",
                "score": points(g.score) if done else "",
                "max_score": points(g.max_score) if done else "",
                "percent": f"{g.score / g.max_score:.0%}" if done and g.max_score else "",
                "status": g.status,
                "checks": checks,
                "note": note + "; ".join(g.reasons) if g.status != "passed" else "",
            }
        )
    return rows


def render_json(grades: Iterable[LearnerGrade]) -> str:
    """Everything, for machines: the row fields as numbers, plus every check's result."""
    out = []
    for g in ordered(grades):
        done = g.status != "missing"
        out.append(
            {
                "cohort": g.cohort,
                "lab": g.lab,
                "learner": g.learner,
                "name": g.name,
                "learnerId": g.learner_id,
                "namespace": g.namespace,
                "attempt": g.attempt if done else None,
                "gradedAt": g.graded_at or None,
                "status": g.status,
                "score": g.score if done else None,
                "maxScore": g.max_score if done else None,
                "passMark": g.pass_mark,
                "required": sorted(g.required),
                "reasons": list(g.reasons) if g.status != "passed" else [],
                "results": [r.to_dict() for r in g.results],
            }
        )
    return json.dumps(out, indent=2, default=str) + "\n"


def render_csv(grades: Iterable[LearnerGrade]) -> str:
    """The table's columns plus one column of points per check (``error`` where it errored)."""
    grades = ordered(grades)
    names = check_names(grades)
    lines: list[list[object]] = [[*GRADE_COLUMNS, "cohort", "lab", "graded_at", *names]]
    for g, row in zip(grades, grade_rows(grades), strict=True):
        by_check = {r.check: r for r in g.results}
        per_check = [_points_cell(by_check.get(name)) for name in names]
        lines.append([*row.values(), g.cohort, g.lab, g.graded_at, *per_check])
    return csv_text(lines)


def _points_cell(result: CheckResult | None) -> str:
    if result is None:
        return ""
    return "error" if result.status is Status.ERROR else points(result.points)


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    """A CSV cell a spreadsheet will not run: text starting like a formula gets a leading ``'``.

    OWASP's CSV-injection advice: ``=``, ``+``, ``-``, ``@`` and also tab and carriage return,
    after any leading spaces (some spreadsheets skip them).
    """
    text = "" if value is None else str(value)
    return "'" + text if text.lstrip(" ").startswith(FORMULA_PREFIXES) else text


def csv_text(rows: Iterable[Sequence[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)  # RFC 4180: CRLF line ends, quotes where needed
    writer.writerows([safe_cell(cell) for cell in row] for row in rows)
    return buffer.getvalue()


# --- JUnit XML (Ant schema: tests/unit/data/junit.xsd) ------------------------------------------

# Characters XML 1.0 cannot carry at all (escaping does not help): a check's feedback may hold
# ANSI colour codes or NULs copied from a learner's logs.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def _junit_time(seconds: float) -> str:
    return f"{max(0.0, seconds):.3f}"  # xs:decimal: never exponent notation


def _junit_timestamp(grade: LearnerGrade, fallback: str) -> str:
    # The Ant schema wants a local time with no zone: write UTC.
    when = parse_time(grade.graded_at) if grade.graded_at else parse_time(fallback)
    return when.strftime("%Y-%m-%dT%H:%M:%S")


def _testcase(suite: ET.Element, lab: str, result: CheckResult) -> None:
    case = ET.SubElement(
        suite,
        "testcase",
        classname=xml_text(lab),
        name=xml_text(result.check),
        time=_junit_time(result.duration_s),
    )
    if result.status is Status.PASSED:
        return
    first = result.feedback.strip().splitlines()[0] if result.feedback.strip() else result.status.value
    kind, type_ = ("error", "grader.error") if result.status is Status.ERROR else ("failure", "check.failed")
    message = f"{points(result.points)}/{points(result.max_points)} points: {first[:200]}"
    body = result.feedback
    if result.evidence:
        body += "\n\nevidence: " + json.dumps(result.evidence, sort_keys=True, default=str)
    ET.SubElement(case, kind, message=xml_text(message), type=type_).text = xml_text(body)


def render_junit(grades: Iterable[LearnerGrade], *, hostname: str = "localhost") -> str:
    """``<testsuites>``: one ``<testsuite>`` per learner and lab, one ``<testcase>`` per check.

    A learner with no attempt is a suite with one skipped ``attempt`` case, stamped with the
    newest ``graded_at`` of the report (the schema requires a timestamp).
    """
    grades = ordered(grades)
    newest = max((parse_time(g.graded_at) for g in grades if g.graded_at), default=None)
    fallback = newest.isoformat() if newest else "1970-01-01T00:00:00+00:00"
    root = ET.Element("testsuites")
    for index, g in enumerate(grades):
        statuses = [r.status for r in g.results]
        suite = ET.SubElement(
            root,
            "testsuite",
            name=xml_text(g.learner),
            package=xml_text(f"{g.cohort}.{g.lab}"),
            id=str(index),
            timestamp=_junit_timestamp(g, fallback),
            hostname=hostname,
            tests=str(len(g.results) or (1 if g.status == "missing" else 0)),
            failures=str(statuses.count(Status.FAILED)),
            errors=str(statuses.count(Status.ERROR)),
            skipped="1" if g.status == "missing" else "0",
            time=_junit_time(sum(r.duration_s for r in g.results)),
        )
        props = ET.SubElement(suite, "properties")
        facts = {
            "cohort": g.cohort,
            "lab": g.lab,
            "name": g.name,
            "learner_id": g.learner_id,
            "namespace": g.namespace,
            "attempt": str(g.attempt),
            "graded_at": g.graded_at,
            "status": g.status,
            "score": points(g.score),
            "max_score": points(g.max_score),
        }
        for key, value in facts.items():
            ET.SubElement(props, "property", name=key, value=xml_text(value))
        for result in g.results:
            _testcase(suite, g.lab, result)
        if g.status == "missing":
            case = ET.SubElement(suite, "testcase", classname=xml_text(g.lab), name="attempt", time="0.000")
            ET.SubElement(case, "skipped")
        summary = f"{g.status}: {points(g.score)}/{points(g.max_score)} points"
        if g.status != "passed":
            summary += " (" + "; ".join(g.reasons) + ")"
        ET.SubElement(suite, "system-out").text = xml_text(summary)
        ET.SubElement(suite, "system-err")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# --- Gradescope results.json ---------------------------------------------------------------------


def render_gradescope(grade: LearnerGrade) -> str:
    """One learner's ``results.json`` in Gradescope's autograder format.

    Gradescope knows ``passed`` and ``failed`` only: a check in error is ``failed`` with no
    points, shown to the learner with a note that it will be re-graded.
    """
    if grade.status == "missing":
        raise ValueError(f"{grade.learner} has no attempt at {grade.lab}: there is nothing to upload")
    tests = []
    for r in grade.results:
        error = r.status is Status.ERROR
        test: dict[str, Any] = {
            "name": r.check,
            "score": 0.0 if error else r.points,
            "max_score": r.max_points,
            "status": "passed" if r.passed else "failed",
            "output": f"{REGRADE_NOTE}.\n\n{r.feedback}" if error else r.feedback,
            "visibility": "visible",
        }
        if error:
            test["tags"] = ["re-grade"]
        tests.append(test)
    passed = sum(r.passed for r in grade.results)
    total = f"{points(grade.score)}/{points(grade.max_score)}"
    output = f"{passed} of {len(grade.results)} checks passed; {total} points."
    if grade.status == "error":
        output += " Some checks " + REGRADE_NOTE.replace("it will", "they will") + "."
    elif grade.status == "failed":
        output += " Not passed yet: " + "; ".join(grade.reasons) + "."
    body = {
        "score": grade.score,
        "execution_time": round(sum(r.duration_s for r in grade.results)),
        "output": output,
        "visibility": "visible",
        "tests": tests,
        "extra_data": {
            "cohort": grade.cohort,
            "lab": grade.lab,
            "learner": grade.learner,
            "attempt": grade.attempt,
            "graded_at": grade.graded_at,
            "status": grade.status,
            "max_score": grade.max_score,
        },
    }
    return json.dumps(body, indent=2, default=str) + "\n"


# --- HTML report -------------------------------------------------------------------------------

# One self-contained file: inline CSS, no script, no external asset. The CSP forbids scripts and
# every fetch, so even text that escaped escaping could not run or phone home.
_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}
th,td{padding:.3em .6em;border-bottom:1px solid #ddd;text-align:left}
.bar{width:20em;height:1em;background:#eee;display:flex}.bar span{display:block;height:100%}
.ok{background:#2e7d32}.err{background:#f9a825}
tr.status-passed td.status{color:#2e7d32}tr.status-failed td.status{color:#c62828}
tr.status-missing td{color:#888}tr.status-error{background:#fff4d6}
.regrade{background:#f9a825;color:#000;border-radius:3px;padding:0 .4em;margin-left:.4em;font-size:.85em}
pre{white-space:pre-wrap;margin:.2em 0 .6em}
"""


_CSP = "default-src 'none'; style-src 'unsafe-inline'"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _pass_rates(grades: Sequence[LearnerGrade]) -> list[str]:
    rows = []
    for name in check_names(grades):
        results = [r for g in grades for r in g.results if r.check == name]
        if not results:
            continue
        passed = sum(r.status is Status.PASSED for r in results)
        errors = sum(r.status is Status.ERROR for r in results)
        ok, err = 100 * passed / len(results), 100 * errors / len(results)
        note = f"{passed}/{len(results)} passed ({ok:.0f}%)" + (f", {errors} error" if errors else "")
        rows.append(
            f'<tr><td>{_e(name)}</td><td><div class="bar" role="img" aria-label="{_e(note)}">'
            f'<span class="ok" style="width:{ok:.1f}%"></span>'
            f'<span class="err" style="width:{err:.1f}%"></span>'
            f"</div></td><td>{_e(note)}</td></tr>"
        )
    return rows


def _learner_row(g: LearnerGrade) -> str:
    done = g.status != "missing"
    badge = '<span class="regrade">re-grade</span>' if g.status == "error" else ""
    details = "".join(
        f"<li>{_e(r.check)}: {_e(r.status.value)}, {points(r.points)}/{points(r.max_points)}"
        + (f"<pre>{_e(r.feedback)}</pre>" if r.feedback else "")
        + "</li>"
        for r in g.results
    )
    reasons = "" if g.status == "passed" else "<br>".join(_e(reason) for reason in g.reasons)
    score = f"{points(g.score)}/{points(g.max_score)}" if done else ""
    checks = (
        f"<details><summary>{len(g.results)} checks</summary><ul>{details}</ul></details>" if details else ""
    )
    return (
        f'<tr class="status-{g.status}"><td>{_e(g.learner)}</td><td>{_e(g.name)}</td>'
        f"<td>{g.attempt if done else ''}</td><td>{score}</td>"
        f'<td class="status">{_e(g.status)}{badge}</td><td>{reasons}</td><td>{_e(g.graded_at)}</td>'
        f"<td>{checks}</td></tr>"
    )


def render_html(grades: Iterable[LearnerGrade], *, title: str = "") -> str:
    """A report to open or mail: pass rate per check as bars, then every learner, errors flagged."""
    grades = ordered(grades)
    groups: dict[tuple[str, str], list[LearnerGrade]] = {}
    for g in grades:
        groups.setdefault((g.cohort, g.lab), []).append(g)
    if not title:
        title = " · ".join(f"{c} / {lab}" for c, lab in groups) or "no grades"
    sections = []
    for (cohort, lab), members in groups.items():
        counts = {s: sum(g.status == s for g in members) for s in ("passed", "failed", "error", "missing")}
        summary = ", ".join(f"{n} {s}" for s, n in counts.items())
        rates = "".join(_pass_rates(members)) or '<tr><td colspan="3">no check results yet</td></tr>'
        sections.append(
            f"<section><h2>{_e(lab)} <small>cohort {_e(cohort)}</small></h2>"
            f"<p>{len(members)} learners: {_e(summary)}. Pass mark {members[0].pass_mark:.0%}.</p>"
            f"<h3>Pass rate per check</h3><table><tr><th>check</th><th>passed / error</th><th></th></tr>"
            f"{rates}</table><h3>Learners</h3><table><tr><th>learner</th><th>name</th><th>attempt</th>"
            f"<th>score</th><th>status</th><th>why</th><th>graded at</th><th>checks</th></tr>"
            + "".join(_learner_row(g) for g in members)
            + "</table></section>"
        )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        f"<title>Grades: {_e(title)}</title><style>{_CSS}</style></head>"
        f"<body><h1>Grades: {_e(title)}</h1>{''.join(sections)}</body></html>\n"
    )
