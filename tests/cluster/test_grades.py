"""Recorded grades on a real control plane: append-only history, out of every learner's reach.

The learner acts with the kubeconfig labctl gave them.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from graders.core import CheckResult, Status
from labctl.api.v1alpha1 import API_VERSION
from labctl.grading import records
from labctl.grading.scoring import score_attempt
from labctl.kube import Kube, KubeError
from labctl.provision.naming import learner_name
from labctl.provision.tenancy import CONTROLLER_NAMESPACE
from tests.cluster.test_cohorts import create, forbidden, learner_client, roster, unique
from tests.conftest import ClusterUnderTest, cluster_args, labctl

pytestmark = pytest.mark.usefixtures("controller")
LAB = "professional/serve-model"


@pytest.fixture(scope="module")
def cohort(
    test_cluster: ClusterUnderTest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("grades")
    name = unique("grd")
    create(test_cluster, name, roster(tmp, "ann@uni.edu"))
    yield {
        "name": name,
        "ns": learner_name(name, "ann@uni.edu"),
        "learner_kube": learner_client(test_cluster, name, "ann@uni.edu", tmp),
    }
    labctl("cohort", "delete", name, "--yes", "--wait", *cluster_args(test_cluster))


def results(points: float) -> list[CheckResult]:
    return [
        CheckResult(
            "answers", Status.PASSED if points else Status.FAILED, points, 2, "feedback", {"acc": 0.9}
        ),
        CheckResult("fast", Status.PASSED, 1, 1, "p95 12 ms"),
    ]


def grade(kube: Kube, ns: str, points: float) -> dict[str, Any]:
    learner = kube.get(API_VERSION, "Learner", ns)
    res = results(points)
    score = score_attempt(res, planned=["answers", "fast"], required={"answers"}, pass_mark=0.6)
    return records.record(
        kube, learner, LAB, res, score, pass_mark=0.6, graded_by="test-grader", required=["answers"]
    )


def test_regrading_appends_attempts_and_none_can_be_changed(kube: Kube, cohort: dict[str, Any]) -> None:
    first = grade(kube, cohort["ns"], 0)
    second = grade(kube, cohort["ns"], 2)
    assert (first["spec"]["attempt"], first["spec"]["status"]) == (1, "failed")
    assert (second["spec"]["attempt"], second["spec"]["status"]) == (2, "passed")
    history = records.history(kube, cohort=cohort["name"], lab=LAB)
    assert [a["spec"]["attempt"] for a in history] == [1, 2]
    assert records.latest(history)[(cohort["ns"], LAB)]["spec"]["score"] == 3
    assert records.results_of(history[0])[0].evidence == {"acc": 0.9}

    # Not even an administrator rewrites history: admission refuses any change to a record.
    with pytest.raises(KubeError) as denied:
        kube.patch(
            API_VERSION, "GradeAttempt", first["metadata"]["name"], {"spec": {"score": 3, "status": "passed"}}
        )
    assert denied.value.status in (403, 422)
    assert "is a record and cannot be changed: grade again to add a new attempt" in str(denied.value)
    kube.patch(
        API_VERSION, "GradeAttempt", first["metadata"]["name"], {"metadata": {"labels": {"reviewed": "yes"}}}
    )
    again = kube.get(API_VERSION, "GradeAttempt", first["metadata"]["name"])
    assert again["spec"] == first["spec"]

    # A racing grader that picked the same number gets the next one, never overwrites.
    learner = kube.get(API_VERSION, "Learner", cohort["ns"])
    res = results(2)
    score = score_attempt(res, planned=["answers", "fast"], required=set(), pass_mark=0.6)
    clash = records.render_attempt(
        learner, LAB, 3, res, score, pass_mark=0.6, graded_by="x", graded_at=dt.datetime.now(dt.UTC)
    )
    kube.create(clash)
    third = grade(kube, cohort["ns"], 2)
    assert third["spec"]["attempt"] == 4


def test_a_learner_cannot_read_or_write_grades_or_hidden_data(kube: Kube, cohort: dict[str, Any]) -> None:
    mine = grade(kube, cohort["ns"], 2)
    learner: Kube = cohort["learner_kube"]
    forbidden(lambda: learner.list(API_VERSION, "GradeAttempt"))
    forbidden(lambda: learner.get(API_VERSION, "GradeAttempt", mine["metadata"]["name"]))
    forged = {**mine, "metadata": {"name": f"{mine['metadata']['name']}-forged"}}
    forbidden(lambda: learner.create(forged))
    forbidden(
        lambda: learner.patch(API_VERSION, "GradeAttempt", mine["metadata"]["name"], {"spec": {"score": 9}})
    )
    forbidden(lambda: learner.delete(API_VERSION, "GradeAttempt", mine["metadata"]["name"]))

    # Hidden test data lives in the controller's namespace.
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "hidden-test-data", "namespace": CONTROLLER_NAMESPACE},
            "data": {"serve-model.csv": "f1,f2,label\n1,2,0\n"},
        }
    )
    forbidden(lambda: learner.get("v1", "ConfigMap", "hidden-test-data", CONTROLLER_NAMESPACE))
    forbidden(lambda: learner.list("v1", "ConfigMap", namespace=CONTROLLER_NAMESPACE))
    forbidden(lambda: learner.list("v1", "Secret", namespace=CONTROLLER_NAMESPACE))


PLAN = """
lab: professional/serve-model
passMark: 0.6
checks:
  - name: config-map
    check: kube.object
    points: 2
    required: true
    params:
      api_version: v1
      kind: ConfigMap
      name: model-config
      fields: {data.threshold: "0.8"}
  - name: within-quota
    check: kube.quota_respected
    params: {name: labctl-quota}
"""


@pytest.fixture(scope="module")
def duo(test_cluster: ClusterUnderTest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two learners: Ann did the lab (as herself, with her kubeconfig), Bob did not."""
    tmp = tmp_path_factory.mktemp("duo")
    name = unique("gcl")
    create(test_cluster, name, roster(tmp, "ann@uni.edu", "bob@uni.edu"))
    ann = learner_client(test_cluster, name, "ann@uni.edu", tmp)
    ns = learner_name(name, "ann@uni.edu")
    ann.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "model-config", "namespace": ns},
            "data": {"threshold": "0.8"},
        }
    )
    plan = tmp / "grading.yaml"
    plan.write_text(PLAN)
    yield {"name": name, "plan": plan, "tmp": tmp}
    labctl("cohort", "delete", name, "--yes", "--wait", *cluster_args(test_cluster))


def grade_cli(cluster: ClusterUnderTest, duo: dict[str, Any], *extra: str, check: bool = True) -> Any:
    return labctl(
        "grade",
        "--cohort",
        duo["name"],
        "--lab",
        LAB,
        "--plan",
        str(duo["plan"]),
        *extra,
        *cluster_args(cluster),
        check=check,
    )


def test_grade_a_cohort_record_attempts_and_export_gradebooks(
    test_cluster: ClusterUnderTest, duo: dict[str, Any]
) -> None:
    out = json.loads(grade_cli(test_cluster, duo, "-o", "json").stdout)
    by = {g["learner"]: g for g in out}
    assert (by["ann@uni.edu"]["status"], by["ann@uni.edu"]["score"]) == ("passed", 3)
    bob = by["bob@uni.edu"]
    assert (bob["status"], bob["score"], bob["attempt"]) == ("failed", 1, 1)
    missing = next(r for r in bob["results"] if r["check"] == "config-map")
    assert missing["status"] == "failed"
    assert "ConfigMap model-config" in missing["feedback"]

    grade_cli(test_cluster, duo)  # a re-grade: attempt 2, attempt 1 kept
    history = json.loads(
        labctl(
            "grades",
            "--cohort",
            duo["name"],
            "--learner",
            "bob@uni.edu",
            "-o",
            "json",
            *cluster_args(test_cluster),
        ).stdout
    )
    assert [a["attempt"] for a in history] == [1, 2]
    latest = json.loads(
        labctl("grades", "--cohort", duo["name"], "-o", "json", *cluster_args(test_cluster)).stdout
    )
    assert sorted((a["learner"], a["attempt"]) for a in latest) == [("ann@uni.edu", 2), ("bob@uni.edu", 2)]

    canvas = labctl(
        "gradebook",
        "export",
        "--cohort",
        duo["name"],
        "--format",
        "canvas",
        "--lab",
        LAB,
        *cluster_args(test_cluster),
    ).stdout.splitlines()
    assert canvas[0] == f"Student,ID,SIS User ID,SIS Login ID,Section,{LAB}"
    assert canvas[1].startswith("    Points Possible,,,,,3")
    rows = {line.split(",")[3]: line.split(",") for line in canvas[2:]}
    assert rows["ann@uni.edu"][5] == "3" and rows["bob@uni.edu"][5] == "1"

    junit = duo["tmp"] / "junit.xml"
    grade_cli(test_cluster, duo, "-o", "junit", "--out", str(junit))
    from lxml import etree

    schema = etree.XMLSchema(etree.parse(str(Path(__file__).parents[1] / "unit" / "data" / "junit.xsd")))
    assert schema.validate(etree.parse(str(junit))), schema.error_log


def test_a_bad_plan_grades_nobody(test_cluster: ClusterUnderTest, duo: dict[str, Any], kube: Kube) -> None:
    before = len(records.history(kube, cohort=duo["name"]))
    bad = duo["tmp"] / "bad.yaml"
    bad.write_text(PLAN.replace("kube.quota_respected", "kube.no_such_check"))
    proc = labctl(
        "grade",
        "--cohort",
        duo["name"],
        "--lab",
        LAB,
        "--plan",
        str(bad),
        *cluster_args(test_cluster),
        check=False,
    )
    assert proc.returncode == 2
    assert "checks[1] (within-quota): unknown check 'kube.no_such_check'" in proc.stderr
    assert len(records.history(kube, cohort=duo["name"])) == before


def test_deleting_with_export_keeps_definitions_and_grade_history(
    test_cluster: ClusterUnderTest, duo: dict[str, Any], kube: Kube
) -> None:
    grade_cli(test_cluster, duo)
    attempts = records.history(kube, cohort=duo["name"])
    assert attempts
    export = duo["tmp"] / "export"
    delete = ["cohort", "delete", duo["name"], "--yes", "--wait", "--export", str(export)]
    if test_cluster.simulated:
        # kwok's pods hold no data: an export of the stacks cannot succeed, and then nothing
        # is deleted and no half export is left (tests/e2e exports real stacks).
        refused = labctl(*delete, *cluster_args(test_cluster), check=False)
        assert refused.returncode != 0 and "--no-stack-data" in refused.stderr, refused.stderr
        assert kube.get(API_VERSION, "Cohort", duo["name"]) is not None
        assert not (export / duo["name"]).exists()
        delete.append("--no-stack-data")
    labctl(*delete, *cluster_args(test_cluster))
    saved = export / duo["name"]
    assert "kind: Cohort" in (saved / "cohort.yaml").read_text()
    bob = json.loads((saved / "grades" / "bob@uni.edu.json").read_text())
    assert [a["attempt"] for a in bob] == sorted(
        a["spec"]["attempt"] for a in attempts if a["spec"]["email"] == "bob@uni.edu"
    )
    assert "bob@uni.edu" in (saved / "gradebook.csv").read_text()
    assert kube.get(API_VERSION, "Cohort", duo["name"]) is None
    # The records went with the learners (owned by them): the export is what remains.
    kube.wait_for(
        lambda: not records.history(kube, cohort=duo["name"]),
        timeout=60,
        what="grade attempts to be collected",
    )
