"""Crash safety: the controller is SIGKILLed at random points while it provisions a cohort.

After each kill it is restarted; in the end the cohort must be complete and correct, with
no duplicate and no orphan: exactly the objects the renderer wants, for exactly the roster.
"""

from __future__ import annotations

import base64
import random
import time
from pathlib import Path

import pytest

from labctl.api.v1alpha1 import API_VERSION
from labctl.kube import Kube
from labctl.provision.install import KEY_SECRET
from labctl.provision.learner import render_learner_objects
from labctl.provision.naming import learner_name
from labctl.provision.tenancy import COHORT_LABEL, CONTROLLER_NAMESPACE
from tests.conftest import ClusterUnderTest, ControllerProcess, cluster_args, labctl

LEARNERS = 50
KILLS = 10


def test_controller_killed_ten_times_still_converges(
    test_cluster: ClusterUnderTest, kube: Kube, controller: ControllerProcess | None, tmp_path: Path
) -> None:
    if controller is None:
        pytest.skip("LABCTL_TEST_CONTROLLER=in-cluster: there is no local controller process to kill")
    rng = random.Random(20261123)  # reproducible kill points
    name = f"crash{rng.randrange(10**4):04d}"
    roster = tmp_path / "roster.csv"
    emails = [f"learner{i:02d}@uni.edu" for i in range(LEARNERS)]
    roster.write_text("email\n" + "\n".join(emails) + "\n")
    labctl(
        "cohort",
        "create",
        name,
        "--roster",
        str(roster),
        "--level",
        "professional",
        *cluster_args(test_cluster),
    )
    try:
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.1, 1.5))
            controller.kill()
            controller.start()
        labctl(
            "cohort",
            "create",
            name,
            "--roster",
            str(roster),
            "--level",
            "professional",
            "--wait",
            "--timeout",
            "300s",
            *cluster_args(test_cluster),
        )
        assert_exactly_rendered(kube, name, emails)
    finally:
        labctl("cohort", "delete", name, "--yes", *cluster_args(test_cluster))


def assert_exactly_rendered(kube: Kube, cohort: str, emails: list[str]) -> None:
    key = base64.b64decode(kube.get("v1", "Secret", KEY_SECRET, CONTROLLER_NAMESPACE)["data"]["key"])  # type: ignore[index]
    learners = {
        lr["metadata"]["name"]: lr
        for lr in kube.list(API_VERSION, "Learner", label_selector=f"{COHORT_LABEL}={cohort}")
    }
    assert sorted(learners) == sorted(learner_name(cohort, e) for e in emails)
    namespaces = kube.list("v1", "Namespace", label_selector=f"{COHORT_LABEL}={cohort}")
    assert sorted(n["metadata"]["name"] for n in namespaces) == sorted(learners)
    for learner in learners.values():
        assert learner["status"]["phase"] == "Ready"
        wanted = render_learner_objects(learner, key=key)
        for kind in {(o["apiVersion"], o["kind"]) for o in wanted[1:]}:
            live = {
                o["metadata"]["name"]
                for o in kube.list(
                    *kind, namespace=learner["metadata"]["name"], label_selector=f"{COHORT_LABEL}={cohort}"
                )
            }
            want = {o["metadata"]["name"] for o in wanted if (o["apiVersion"], o["kind"]) == kind}
            assert live == want, f"{learner['metadata']['name']} {kind[1]}: {live} != {want}"
