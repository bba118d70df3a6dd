"""Grade reports: status rules, and each format's shape, escaping and determinism."""

from __future__ import annotations

import csv
import io
import json
import random
import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from graders.core import CheckResult, Status
from labctl.grading.reports import (
    GRADE_COLUMNS,
    LearnerGrade,
    grade_rows,
    render_csv,
    render_gradescope,
    render_html,
    render_json,
    render_junit,
    safe_cell,
)

LAB = "professional/serve-model"
XSD = Path(__file__).parent / "data" / "junit.xsd"
SCRIPT = "<script>alert('pwned')</script>"


def result(
    check: str, status: str, points: float, max_points: float = 1.0, feedback: str = ""
) -> CheckResult:
    return CheckResult(
        check, Status(status), points, max_points, feedback or f"{check} {status}", duration_s=0.25
    )


def grade(learner: str, *results: CheckResult, attempt: int = 1, **kw: object) -> LearnerGrade:
    fields: dict[str, object] = {
        "cohort": "c1",
        "lab": LAB,
        "learner": learner,
        "name": learner.split("@")[0].title(),
        "learner_id": f"id-{learner[0]}",
        "namespace": f"c1-{learner.split('@')[0]}",
        "attempt": attempt,
        "graded_at": "2024-05-01T14:00:00+02:00" if attempt else "",
        "results": results,
        "required": frozenset({"predict"}),
    }
    return LearnerGrade(**{**fields, **kw})  # type: ignore[arg-type]


def cohort() -> list[LearnerGrade]:
    """Five learners: full marks, partial credit, a required check failed, a grader error, no attempt."""
    return [
        grade(
            "ada@uni.edu",
            result("predict", "passed", 2, 2),
            result("mlflow-run", "passed", 1),
            result("alert-fires", "passed", 1),
        ),
        grade(
            "bob@uni.edu",
            result("predict", "passed", 2, 2),
            result("mlflow-run", "failed", 0, feedback="no run logged in experiment 'serve'"),
            result("alert-fires", "failed", 0.5, feedback="alert fired after 9 min; it must fire within 5"),
        ),
        grade(
            "carol@uni.edu",
            result("predict", "failed", 0, 2, feedback="POST /predict answered 500"),
            result("mlflow-run", "passed", 1),
            result("alert-fires", "passed", 1),
        ),
        grade(
            "dave@uni.edu",
            result("predict", "passed", 2, 2),
            result("mlflow-run", "error", 0, feedback="our MLflow server did not answer in 10 s"),
            result("alert-fires", "passed", 1),
        ),
        grade("erin@uni.edu", attempt=0),
    ]


def by_learner(grades: list[LearnerGrade]) -> dict[str, LearnerGrade]:
    return {g.learner: g for g in grades}


# --- the grade itself -------------------------------------------------------------------------


def test_statuses_partial_credit_required_error_and_missing() -> None:
    grades = by_learner(cohort())
    assert {email: g.status for email, g in grades.items()} == {
        "ada@uni.edu": "passed",
        "bob@uni.edu": "passed",  # 2.5/4 with partial credit, required check passed
        "carol@uni.edu": "failed",
        "dave@uni.edu": "error",
        "erin@uni.edu": "missing",
    }
    assert (grades["bob@uni.edu"].score, grades["bob@uni.edu"].max_score) == (2.5, 4.0)
    assert grades["carol@uni.edu"].reasons == (
        "required check predict did not pass",
        "score 2/4 is below the pass mark of 60%",
    )
    assert grades["erin@uni.edu"].reasons == ("no attempt yet",)


def test_an_error_is_never_a_pass_even_with_full_marks_elsewhere_and_no_pass_mark() -> None:
    g = grade("x@uni.edu", result("predict", "passed", 2, 2), result("extra", "error", 0), pass_mark=0.0)
    assert g.status == "error"
    assert grade("x@uni.edu", attempt=3, pass_mark=0.0).status == "error"  # nothing recorded: not a pass


def test_pass_mark_boundary_and_planned_check_without_result() -> None:
    # 0.1 + 0.2 + 0.3 is not exactly 0.6 in floating point: the boundary still passes.
    at_mark = [result(n, "passed", p, p) for n, p in (("a", 0.1), ("b", 0.2), ("c", 0.3))]
    at_mark_grade = grade("x@uni.edu", *at_mark, result("d", "failed", 0, 0.4), required=frozenset())
    assert (at_mark_grade.status, at_mark_grade.max_score) == ("passed", 1.0)
    below = [result("a", "passed", 0.59, 0.59), result("b", "failed", 0, 0.41)]
    just_below = grade("x@uni.edu", *below, required=frozenset())
    assert just_below.status == "failed"
    unplanned = grade("x@uni.edu", result("a", "passed", 1), planned=("a", "b"), required=frozenset())
    assert (unplanned.status, unplanned.reasons) == ("error", ("no result for b",))
    no_required_result = grade("x@uni.edu", result("a", "passed", 1))  # 'predict' is required
    assert no_required_result.status == "error"


def test_bad_input_is_refused_when_built() -> None:
    with pytest.raises(ValueError, match="not an RFC 3339 time: 'yesterday'"):
        grade("x@uni.edu", result("a", "passed", 1), graded_at="yesterday")
    with pytest.raises(ValueError, match="results given for attempt 0"):
        grade("x@uni.edu", result("a", "passed", 1), attempt=0)


# --- table / JSON / CSV -------------------------------------------------------------------------


def test_table_rows_shape_order_and_notes() -> None:
    rows = grade_rows(reversed(cohort()))
    assert all(tuple(row) == GRADE_COLUMNS for row in rows)
    assert [r["learner"] for r in rows] == [
        "ada@uni.edu",
        "bob@uni.edu",
        "carol@uni.edu",
        "dave@uni.edu",
        "erin@uni.edu",
    ]
    bob, dave, erin = rows[1], rows[3], rows[4]
    assert (bob["score"], bob["max_score"], bob["percent"], bob["checks"]) == (
        "2.5",
        "4",
        "62%",
        "1/3 passed",
    )
    assert (dave["status"], dave["checks"]) == ("error", "2/3 passed, 1 error")
    assert dave["note"] == "re-grade: mlflow-run: grader error"
    assert (erin["score"], erin["attempt"], erin["status"], erin["note"]) == (
        "",
        "",
        "missing",
        "no attempt yet",
    )


def test_json_has_numbers_nulls_and_every_result() -> None:
    data = {g["learner"]: g for g in json.loads(render_json(cohort()))}
    assert data["bob@uni.edu"]["score"] == 2.5
    assert data["erin@uni.edu"]["score"] is None and data["erin@uni.edu"]["results"] == []
    dave = data["dave@uni.edu"]
    assert dave["status"] == "error" and dave["required"] == ["predict"]
    assert [r["status"] for r in dave["results"]] == ["passed", "error", "passed"]
    assert dave["results"][1]["feedback"] == "our MLflow server did not answer in 10 s"


def test_csv_columns_per_check_points_and_formula_guard() -> None:
    zed = grade("zed@uni.edu", result("predict", "passed", 2, 2), name='=HYPERLINK("http://x")')
    grades = [*cohort(), zed]
    rows = list(csv.reader(io.StringIO(render_csv(grades))))
    assert rows[0] == [*GRADE_COLUMNS, "cohort", "lab", "graded_at", "predict", "mlflow-run", "alert-fires"]
    table = {row[0]: dict(zip(rows[0], row, strict=True)) for row in rows[1:]}
    assert [table["bob@uni.edu"][c] for c in ("predict", "mlflow-run", "alert-fires")] == ["2", "0", "0.5"]
    assert table["dave@uni.edu"]["mlflow-run"] == "error"
    assert table["erin@uni.edu"]["predict"] == ""
    assert table["zed@uni.edu"]["name"] == '\'=HYPERLINK("http://x")'
    assert table["zed@uni.edu"]["mlflow-run"] == ""  # zed's lab had no such check


@pytest.mark.parametrize(
    ("cell", "safe"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1+2", "'-1+2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("  =1+1", "'  =1+1"),
        ("    Points Possible", "    Points Possible"),
        ("ada@uni.edu", "ada@uni.edu"),
        ("2.5", "2.5"),
        (None, ""),
    ],
)
def test_formula_guard(cell: str | None, safe: str) -> None:
    assert safe_cell(cell) == safe


# --- JUnit XML --------------------------------------------------------------------------------


def _lxml_validator() -> Callable[[str], list[str]] | None:
    try:
        from lxml import etree  # type: ignore[import-untyped]
    except ImportError:
        return None
    schema = etree.XMLSchema(etree.parse(str(XSD)))

    def validate(text: str) -> list[str]:
        ok = schema.validate(etree.fromstring(text.encode()))
        return [] if ok else [f"{e.line}: {e.message}" for e in schema.error_log]

    return validate


XS = "{http://www.w3.org/2001/XMLSchema}"
SIMPLE = {
    "xs:int": re.compile(r"[+-]?\d+"),
    "xs:decimal": re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)"),
    "xs:string": re.compile(r".*", re.S),
    "xs:token": re.compile(r".*", re.S),
}


class MiniSchema:
    """The part of XSD that junit.xsd uses, read from the file itself, for when lxml is absent.

    Elements (inline or named types), sequences and choices with min/maxOccurs, simple and
    complex content extensions, required and undeclared attributes, and the attribute types
    ``xs:int``, ``xs:decimal``, ``xs:token``/``xs:string`` and restrictions with a pattern or
    a minLength. Anything else in the schema is an error here, not silently accepted.
    """

    def __init__(self, path: Path) -> None:
        self.schema = ET.parse(path).getroot()
        self.types = {t.get("name"): t for t in self.schema if t.get("name") and t.tag != f"{XS}element"}

    def validate(self, text: str) -> list[str]:
        doc = ET.fromstring(text)
        top = {e.get("name"): e for e in self.schema.findall(f"{XS}element")}
        if doc.tag not in top:
            return [f"unexpected root <{doc.tag}>"]
        problems: list[str] = []
        self._element(top[doc.tag], doc, doc.tag, problems)
        return problems

    def _type_of(self, decl: ET.Element) -> ET.Element | None:
        inline = decl.find(f"{XS}complexType")
        if inline is None:
            inline = decl.find(f"{XS}simpleType")
        return inline if inline is not None else self.types.get(decl.get("type"))

    def _flatten(self, ctype: ET.Element) -> tuple[list[ET.Element], list[ET.Element], bool]:
        """(attribute declarations, content particles, simple content?) of a complex type."""
        attrs, particles, simple = list(ctype.findall(f"{XS}attribute")), [], False
        for child in ctype:
            if child.tag in (f"{XS}sequence", f"{XS}choice"):
                particles.append(child)
            elif child.tag in (f"{XS}complexContent", f"{XS}simpleContent"):
                ext = child.find(f"{XS}extension")
                assert ext is not None, "only extensions are supported"
                simple = child.tag == f"{XS}simpleContent"
                base = self.types.get(ext.get("base"))
                if base is not None and base.tag == f"{XS}complexType":
                    attrs, particles, simple = self._flatten(base)
                attrs = attrs + ext.findall(f"{XS}attribute")
                particles = particles + [p for p in ext if p.tag in (f"{XS}sequence", f"{XS}choice")]
        return attrs, particles, simple

    def _element(self, decl: ET.Element, node: ET.Element, path: str, problems: list[str]) -> None:
        ctype = self._type_of(decl)
        if ctype is None or ctype.tag == f"{XS}simpleType":
            if len(node) or node.attrib:
                problems.append(f"{path}: a simple element has children or attributes")
            return
        attrs, particles, simple = self._flatten(ctype)
        declared = {a.get("name"): a for a in attrs}
        for name, attr in declared.items():
            if attr.get("use") == "required" and name not in node.attrib:
                problems.append(f"{path}: missing required attribute {name}")
            elif name in node.attrib and not self._simple_ok(attr, node.attrib[name]):
                problems.append(f"{path}/@{name}: {node.attrib[name]!r} is not a valid {attr.get('type')}")
        problems += [f"{path}: undeclared attribute {name}" for name in node.attrib if name not in declared]
        if simple and len(node):
            problems.append(f"{path}: simple content has child elements")
        children = list(node)
        for particle in particles:
            children = self._particle(particle, children, path, problems)
        problems += [f"{path}: unexpected <{child.tag}>" for child in children]

    def _particle(
        self, particle: ET.Element, children: list[ET.Element], path: str, problems: list[str]
    ) -> list:
        decls = particle.findall(f"{XS}element")
        if particle.tag == f"{XS}choice":
            names = {d.get("name", ""): d for d in decls}
            if children and children[0].tag in names:
                self._element(names[children[0].tag], children[0], f"{path}/{children[0].tag}", problems)
                return children[1:]
            if particle.get("minOccurs") != "0":
                problems.append(f"{path}: expected one of {sorted(names)}")
            return children
        for decl in decls:
            name, low, high = decl.get("name"), int(decl.get("minOccurs", "1")), decl.get("maxOccurs", "1")
            count = 0
            while children and children[0].tag == name and (high == "unbounded" or count < int(high)):
                self._element(decl, children[0], f"{path}/{name}[{count}]", problems)
                children, count = children[1:], count + 1
            if count < low:
                problems.append(f"{path}: expected <{name}> (at least {low})")
        return children

    def _simple_ok(self, attr: ET.Element, value: str) -> bool:
        type_name = attr.get("type")
        stype = attr.find(f"{XS}simpleType") if type_name is None else self.types.get(type_name)
        if stype is None:
            return bool(SIMPLE[type_name or "xs:string"].fullmatch(value))
        restriction = stype.find(f"{XS}restriction")
        assert restriction is not None, "only restrictions are supported"
        base = restriction.get("base", "xs:string")
        ok = bool(SIMPLE[base if base in SIMPLE else "xs:string"].fullmatch(value))
        for facet in restriction:
            if facet.tag == f"{XS}pattern":
                ok = ok and bool(re.fullmatch(facet.get("value", ""), value))
            elif facet.tag == f"{XS}minLength":
                ok = ok and len(" ".join(value.split())) >= int(facet.get("value", "0"))
        return ok


VALIDATORS: dict[str, Callable[[str], list[str]]] = {}


def validators() -> list[str]:
    """The XSD checked by lxml when the venv has it, and always by the small reader below."""
    VALIDATORS["xsd-lite"] = MiniSchema(XSD).validate
    if lxml := _lxml_validator():
        VALIDATORS["lxml"] = lxml
    return sorted(VALIDATORS)


@pytest.mark.parametrize("validator", validators())
def test_junit_is_valid_against_the_ant_schema(validator: str) -> None:
    grades = cohort()
    grades[2] = grade(
        "carol@uni.edu",
        result(
            "predict",
            "failed",
            0,
            2,
            feedback="\x1b[31mPOST /predict answered 500\x1b[0m\x00 <html> & 'quotes'",
        ),
        result("mlflow-run", "passed", 1),
    )
    assert VALIDATORS[validator](render_junit(grades)) == []


@pytest.mark.parametrize("validator", validators())
@pytest.mark.parametrize(
    "broken",
    [
        pytest.param(lambda x: x.replace('type="check.failed"', ""), id="failure-without-type"),
        pytest.param(lambda x: x.replace('12:00:00"', '12:00:00Z"', 1), id="timestamp-with-zone"),
        pytest.param(lambda x: x.replace("<system-err />", "", 1), id="no-system-err"),
        pytest.param(lambda x: x.replace('time="0.250"', 'time="a quarter"', 1), id="time-not-decimal"),
        pytest.param(lambda x: x.replace('id="1"', 'id="one"', 1), id="id-not-int"),
        pytest.param(lambda x: x.replace("<properties>", "<properties><oops />", 1), id="unknown-element"),
    ],
)
def test_the_schema_check_rejects_broken_junit(validator: str, broken: Callable[[str], str]) -> None:
    text = render_junit(cohort())
    damaged = broken(text)
    assert damaged != text
    assert VALIDATORS[validator](damaged), f"{validator} accepted a broken document"


def test_junit_suites_counts_and_messages() -> None:
    root = ET.fromstring(render_junit(cohort()))
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert list(suites) == ["ada@uni.edu", "bob@uni.edu", "carol@uni.edu", "dave@uni.edu", "erin@uni.edu"]
    counts = {
        name: (s.get("tests"), s.get("failures"), s.get("errors"), s.get("skipped"))
        for name, s in suites.items()
    }
    assert counts == {
        "ada@uni.edu": ("3", "0", "0", "0"),
        "bob@uni.edu": ("3", "2", "0", "0"),
        "carol@uni.edu": ("3", "1", "0", "0"),
        "dave@uni.edu": ("3", "0", "1", "0"),
        "erin@uni.edu": ("1", "0", "0", "1"),
    }
    bob = suites["bob@uni.edu"]
    assert (bob.get("time"), bob.get("timestamp"), bob.get("package")) == (
        "0.750",
        "2024-05-01T12:00:00",
        f"c1.{LAB}",
    )
    cases = {c.get("name"): c for c in bob.iter("testcase")}
    assert cases["predict"].get("classname") == LAB and cases["predict"].find("failure") is None
    failure = cases["alert-fires"].find("failure")
    assert failure is not None
    assert failure.get("message") == "0.5/1 points: alert fired after 9 min; it must fire within 5"
    assert failure.text == "alert fired after 9 min; it must fire within 5"
    error = suites["dave@uni.edu"].find("testcase[@name='mlflow-run']/error")
    assert error is not None and error.get("type") == "grader.error"
    assert error.text == "our MLflow server did not answer in 10 s"
    assert suites["erin@uni.edu"].find("testcase[@name='attempt']/skipped") is not None
    assert suites["erin@uni.edu"].get("timestamp") == "2024-05-01T12:00:00"  # the report's newest grading
    props = {p.get("name"): p.get("value") for p in suites["dave@uni.edu"].iter("property")}
    assert props["status"] == "error" and props["learner_id"] == "id-d"


def test_junit_keeps_feedback_text_xml_cannot_break() -> None:
    feedback = f'{SCRIPT} \x1b[31mred\x1b[0m \x00 ]]> & "quotes"'
    text = render_junit([grade("x@uni.edu", result("predict", "failed", 0, 2, feedback=feedback))])
    failure = ET.fromstring(text).find(".//failure")
    assert failure is not None
    assert failure.text == f'{SCRIPT} \ufffd[31mred\ufffd[0m \ufffd ]]> & "quotes"'
    assert SCRIPT not in text  # escaped in the document itself


# --- Gradescope ---------------------------------------------------------------------------------

GRADESCOPE_TOP = {
    "score",
    "execution_time",
    "output",
    "visibility",
    "stdout_visibility",
    "extra_data",
    "tests",
}
GRADESCOPE_TEST = {
    "score",
    "max_score",
    "status",
    "name",
    "number",
    "output",
    "tags",
    "visibility",
    "extra_data",
}


def test_gradescope_results_use_only_documented_fields() -> None:
    for g in cohort()[:4]:
        body = json.loads(render_gradescope(g))
        assert set(body) <= GRADESCOPE_TOP
        assert body["score"] == g.score
        for test in body["tests"]:
            assert set(test) <= GRADESCOPE_TEST
            assert test["status"] in ("passed", "failed") and test["visibility"] == "visible"


def test_gradescope_partial_credit_and_error_shown_for_regrade() -> None:
    bob = json.loads(render_gradescope(by_learner(cohort())["bob@uni.edu"]))
    assert [(t["name"], t["score"], t["max_score"], t["status"]) for t in bob["tests"]] == [
        ("predict", 2, 2, "passed"),
        ("mlflow-run", 0, 1, "failed"),
        ("alert-fires", 0.5, 1, "failed"),
    ]
    assert bob["tests"][1]["output"] == "no run logged in experiment 'serve'"
    assert bob["output"] == "1 of 3 checks passed; 2.5/4 points."
    assert bob["execution_time"] == 1  # 0.75 s, in whole seconds
    dave = json.loads(render_gradescope(by_learner(cohort())["dave@uni.edu"]))
    error = dave["tests"][1]
    assert (error["status"], error["score"], error["tags"]) == ("failed", 0.0, ["re-grade"])
    assert error["output"].startswith("could not be graded (a problem on our side, not in your work)")
    assert error["output"].endswith("our MLflow server did not answer in 10 s")
    assert "will be re-graded" in dave["output"]


def test_gradescope_refuses_a_learner_with_no_attempt() -> None:
    with pytest.raises(ValueError, match=r"erin@uni\.edu has no attempt at professional/serve-model"):
        render_gradescope(by_learner(cohort())["erin@uni.edu"])


# --- HTML ---------------------------------------------------------------------------------------


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def parse_tags(text: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(text)
    return parser.tags


def test_html_escapes_everything_a_learner_or_check_wrote() -> None:
    hostile = grade(
        'x"><img src=x onerror=alert(1)>@uni.edu',
        result("predict", "failed", 0, 2, feedback=SCRIPT),
        name=SCRIPT,
        namespace="c1-x",
    )
    text = render_html([*cohort(), hostile])
    tags = parse_tags(text)
    assert not [t for t, _ in tags if t in ("script", "img", "iframe", "object", "link")]
    assert all(not any(k.startswith("on") for k in attrs) for _, attrs in tags)
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;" in text
    assert "x&quot;&gt;&lt;img src=x onerror=alert(1)&gt;@uni.edu" in text


def test_html_is_self_contained_with_bars_and_regrade_rows() -> None:
    text = render_html(cohort())
    assert not re.search(r"https?://|src=|@import|url\(", text)
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    tags = parse_tags(text)
    rows = [attrs.get("class") for tag, attrs in tags if tag == "tr" and attrs.get("class")]
    assert rows == ["status-passed", "status-passed", "status-failed", "status-error", "status-missing"]
    assert text.count('<span class="regrade">re-grade</span>') == 1
    # predict: 3 of 4 results passed; mlflow-run: 2 passed, 1 error, of 4.
    assert 'aria-label="3/4 passed (75%)"' in text
    assert '<span class="ok" style="width:50.0%"></span><span class="err" style="width:25.0%"></span>' in text
    assert "5 learners: 2 passed, 1 failed, 1 error, 1 missing." in text


# --- determinism ------------------------------------------------------------------------------


@pytest.mark.parametrize("render", [render_json, render_csv, render_junit, render_html])
def test_output_does_not_depend_on_input_order(render: Callable[[list[LearnerGrade]], str]) -> None:
    grades = cohort()
    shuffled = grades[:]
    random.Random(7).shuffle(shuffled)
    assert shuffled != grades
    assert render(shuffled) == render(grades)
