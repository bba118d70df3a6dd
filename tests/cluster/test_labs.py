"""Labs end to end on a cluster: publish, the learner's journey with their own kubeconfig, the
guard-rails around it, and `labctl lab test` proving a lab honest.

The labs are tests/cluster/labs (kube checks only: they grade in seconds on kwok nodes). Every
learner command runs the real CLI in a subprocess with the kubeconfig labctl gave that learner.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from labctl.api.v1alpha1 import API_VERSION
from labctl.catalog.publish import hidden_secret_name
from labctl.kube import Kube, KubeError
from labctl.provision.tenancy import CONTROLLER_NAMESPACE
from tests.conftest import ClusterUnderTest, ControllerProcess, cluster_args, labctl

LABS = Path(__file__).parent / "labs"
HELLO = "foundation/hello-config"
ADVANCED = "advanced/hello-advanced"


@pytest.fixture(scope="module")
def published(test_cluster: ClusterUnderTest, controller: ControllerProcess | None) -> None:
    labctl("lab", "publish", str(LABS), *cluster_args(test_cluster))


def make_cohort(cluster: ClusterUnderTest, tmp: Path, level: str, *emails: str) -> str:
    name = f"tl-{level[:3]}-{uuid.uuid4().hex[:5]}"
    roster = tmp / f"{name}.csv"
    roster.write_text("email\n" + "\n".join(emails) + "\n")
    labctl(
        "cohort", "create", name, "--roster", str(roster), "--level", level, "--wait", "--timeout", "3m",
        *cluster_args(cluster),
    )  # fmt: skip
    return name


def learner_kubeconfig(cluster: ClusterUnderTest, cohort: str, email: str, tmp: Path) -> str:
    out = tmp / f"{cohort}-{email}.kubeconfig"
    labctl(
        "learner", "kubeconfig", cohort, email, "--out", str(out), "--duration", "1h", *cluster_args(cluster)
    )
    return str(out)


@pytest.fixture(scope="module")
def foundation(
    test_cluster: ClusterUnderTest, published: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[str, str]]]:
    """A foundation cohort of two; each learner's kubeconfig by e-mail."""
    tmp = tmp_path_factory.mktemp("labs")
    emails = ["ada@uni.edu", "grace@uni.edu"]
    name = make_cohort(test_cluster, tmp, "foundation", *emails)
    yield name, {e: learner_kubeconfig(test_cluster, name, e, tmp) for e in emails}
    labctl("cohort", "delete", name, "--yes", *cluster_args(test_cluster), check=False)


def as_learner(kubeconfig: str, *args: str, check: bool = False):  # type: ignore[no-untyped-def]
    return labctl(*args, "--kubeconfig", kubeconfig, check=check)


def learner_apply(kubeconfig: str, kind: str, name: str, body: dict[str, object]) -> None:
    """What `kubectl apply` would do with the learner's kubeconfig, in their namespace."""
    learner = Kube.connect(kubeconfig=kubeconfig)
    meta = {"name": name, "namespace": learner.namespace}
    learner.apply({"apiVersion": "v1", "kind": kind, "metadata": meta, **body})


def test_the_learner_journey_from_start_to_full_marks(
    test_cluster: ClusterUnderTest, kube: Kube, foundation: tuple[str, dict[str, str]]
) -> None:
    cohort, kubeconfigs = foundation
    ada = kubeconfigs["ada@uni.edu"]
    listed = as_learner(ada, "lab", "list", "-o", "json", check=True)
    assert {HELLO, ADVANCED} <= {row["id"] for row in json.loads(listed.stdout)}
    assert "Create a ConfigMap" in as_learner(ada, "lab", "show", HELLO, check=True).stdout

    started = as_learner(ada, "lab", "start", HELLO, check=True)
    assert f"{HELLO} is Ready" in started.stdout and "labctl lab check" in started.stdout
    learner = Kube.connect(kubeconfig=ada)
    setup = learner.get("v1", "ConfigMap", "starter", learner.namespace)
    assert setup is not None and setup["data"]["note"].startswith("the setup of")
    assert as_learner(ada, "lab", "start", HELLO, check=True).returncode == 0  # idempotent

    first = as_learner(ada, "lab", "check", HELLO)
    assert first.returncode == 1, first.stderr
    assert "The ConfigMap greeting must exist in your namespace" in first.stdout
    assert "hint: kubectl create configmap greeting" in first.stdout  # the first hint, only

    seed = next(
        line.split("=", 1)[1]
        for line in as_learner(ada, "lab", "env", check=True).stdout.splitlines()
        if line.startswith("export LAB_SEED=")
    )
    learner_apply(ada, "ConfigMap", "greeting", {"data": {"message": "hello", "seed": seed}})
    learner_apply(ada, "Service", "web", {"spec": {"ports": [{"port": 8080}]}})

    too_soon = as_learner(ada, "lab", "check", HELLO)
    assert too_soon.returncode == 1
    assert "checks are at least 5s apart: try again in" in too_soon.stderr
    time.sleep(5)
    passed = as_learner(ada, "lab", "check", HELLO)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "Passed · score 4/4" in passed.stdout

    status = json.loads(as_learner(ada, "lab", "status", HELLO, "-o", "json", check=True).stdout)[0]
    assert status["phase"] == "Passed" and status["attempts"] == 2
    # Each check the controller ran is a recorded attempt, where learners cannot write.
    attempts = json.loads(labctl("grades", "--cohort", cohort, "--learner", "ada@uni.edu", "-o", "json",
                                 *cluster_args(test_cluster), check=True).stdout)  # fmt: skip
    assert [(a["attempt"], a["status"]) for a in attempts if a["lab"] == HELLO] == [
        (1, "failed"),
        (2, "passed"),
    ]


def test_a_friends_seed_does_not_pass(foundation: tuple[str, dict[str, str]]) -> None:
    _, kubeconfigs = foundation
    grace = kubeconfigs["grace@uni.edu"]
    as_learner(grace, "lab", "start", HELLO, check=True)
    learner_apply(grace, "ConfigMap", "greeting", {"data": {"message": "hello", "seed": "1"}})
    checked = as_learner(grace, "lab", "check", HELLO)
    assert checked.returncode == 1
    assert "greeting's seed must be your own" in checked.stdout


def test_a_learner_cannot_game_the_session(
    test_cluster: ClusterUnderTest, kube: Kube, foundation: tuple[str, dict[str, str]]
) -> None:
    _, kubeconfigs = foundation
    ada = kubeconfigs["ada@uni.edu"]
    learner = Kube.connect(kubeconfig=ada)
    as_learner(ada, "lab", "start", HELLO, check=True)

    with pytest.raises(KubeError) as hidden:  # the hidden grader data
        learner.get("v1", "Secret", hidden_secret_name(HELLO, "1.0.0"), CONTROLLER_NAMESPACE)
    assert hidden.value.status == 403
    with pytest.raises(KubeError) as status:  # their session's results
        learner.patch(API_VERSION, "LabSession", "foundation.hello-config", {"status": {"passed": True}},
                      namespace=learner.namespace, subresource="status")  # fmt: skip
    assert status.value.status == 403
    with pytest.raises(KubeError) as grades:  # any grade attempt
        learner.list(API_VERSION, "GradeAttempt")
    assert grades.value.status == 403
    with pytest.raises(KubeError) as lab:  # a published lab
        learner.patch(API_VERSION, "Lab", "foundation.hello-config.v1-0-0", {"spec": {"readme": "x"}})
    assert lab.value.status == 403
    # Even an administrator cannot change a published version: admission keeps it immutable.
    with pytest.raises(KubeError, match="is a published version and cannot be changed"):
        kube.patch(API_VERSION, "Lab", "foundation.hello-config.v1-0-0", {"spec": {"readme": "changed"}})


def test_levels_and_prerequisites_gate_the_start(
    test_cluster: ClusterUnderTest, kube: Kube, foundation: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    _, kubeconfigs = foundation
    ada = kubeconfigs["ada@uni.edu"]
    above = as_learner(ada, "lab", "start", ADVANCED)
    assert above.returncode == 1
    assert "is an advanced lab and your cohort is at foundation level" in above.stderr

    override = as_learner(ada, "lab", "start", ADVANCED, "--override")  # only instructors may
    assert override.returncode == 1
    assert "only an instructor can start a lab past its level or prerequisites" in override.stderr

    advanced = make_cohort(test_cluster, tmp_path, "advanced", "lin@uni.edu")
    try:
        lin = learner_kubeconfig(test_cluster, advanced, "lin@uni.edu", tmp_path)
        missing = as_learner(lin, "lab", "start", ADVANCED)
        assert missing.returncode == 1
        assert f"needs {HELLO} passed first: labctl lab start {HELLO}" in missing.stderr
        # The instructor starts it for them: prerequisites waived.
        instructor = labctl("lab", "start", ADVANCED, "--cohort", advanced, "--learner", "lin@uni.edu",
                            "--override", *cluster_args(test_cluster), check=True)  # fmt: skip
        assert f"{ADVANCED} is Ready" in instructor.stdout
    finally:
        labctl("cohort", "delete", advanced, "--yes", *cluster_args(test_cluster), check=False)


def test_nothing_is_published_from_a_broken_catalog(
    test_cluster: ClusterUnderTest, kube: Kube, published: None, tmp_path: Path
) -> None:
    root = tmp_path / "labs"
    good = root / "foundation" / "good-one"
    shutil.copytree(LABS / HELLO, good)
    text = (good / "lab.yaml").read_text().replace(HELLO, "foundation/good-one")
    (good / "lab.yaml").write_text(text)
    broken = root / "foundation" / "broken-one"
    shutil.copytree(good, broken)
    (broken / "lab.yaml").write_text(
        text.replace("foundation/good-one", "foundation/broken-one").replace("kube.objct", "x")
        .replace("grader: kube.object\n        points: 2", "grader: kube.objekt\n        points: 2")
    )  # fmt: skip
    result = labctl("lab", "publish", str(root), *cluster_args(test_cluster), check=False)
    assert result.returncode == 2
    assert "broken-one/lab.yaml: tasks[0].checks[0].grader: unknown grader 'kube.objekt'" in result.stderr
    assert "did you mean 'kube.object'" in result.stderr
    assert kube.get(API_VERSION, "Lab", "foundation.good-one.v1-0-0") is None  # not even the good one

    # A published version never changes: new content under the same version is refused.
    labctl("lab", "publish", str(good), *cluster_args(test_cluster), check=True)
    (good / "README.md").write_text("# changed\n")
    again = labctl("lab", "publish", str(good), *cluster_args(test_cluster), check=False)
    assert again.returncode == 2 and "is already published with different content" in again.stderr


def test_lab_test_proves_a_lab_honest_and_catches_a_dishonest_one(
    test_cluster: ClusterUnderTest, published: None, tmp_path: Path
) -> None:
    honest = labctl("lab", "test", HELLO, "--labs", str(LABS), "-o", "json", *cluster_args(test_cluster),
                    check=False, timeout=600)  # fmt: skip
    assert honest.returncode == 0, honest.stdout + honest.stderr
    rows = json.loads(honest.stdout)
    assert [(r["stage"], r["ok"]) for r in rows] == [
        ("fresh", True),
        ("mistake:copied-seed", True),
        ("mistake:no-service", True),
        ("mistake:wrong-message", True),
        ("solution", True),
        ("readme", True),  # a learner following the README, command by command, gets full marks
    ]
    assert rows[0]["got"] == "all fail" and rows[-1]["got"] == "full marks"

    # A mistake that claims to be caught by the wrong check is a deviation: exit 1, named.
    root = tmp_path / "labs"
    lab = root / "foundation" / "liar"
    shutil.copytree(LABS / HELLO, lab)
    (lab / "lab.yaml").write_text((lab / "lab.yaml").read_text().replace(HELLO, "foundation/liar"))
    (lab / "mistakes" / "no-service" / "mistake.yaml").write_text("description: liar\nfails: [greeting]\n")
    readme = (lab / "README.md").read_text().replace(HELLO, "foundation/liar")
    (lab / "README.md").write_text(
        readme.replace("kubectl create service clusterip web", "kubectl create servce")
    )
    dishonest = labctl("lab", "test", "foundation/liar", "--labs", str(root), "-o", "json",
                       *cluster_args(test_cluster), check=False, timeout=600)  # fmt: skip
    assert dishonest.returncode == 1
    by_stage = {r["stage"]: r for r in json.loads(dishonest.stdout)}
    assert not by_stage["mistake:no-service"]["ok"]
    assert by_stage["mistake:no-service"]["got"] == "fail: service"
    # A README whose command does not work as written is caught too.
    assert (
        not by_stage["readme"]["ok"]
        and "README step failed: kubectl create servce" in by_stage["readme"]["got"]
    )
