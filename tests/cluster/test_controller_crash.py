"""Crash safety: the controller is SIGKILLed at random points while it provisions a cohort.

After each kill it is restarted. In the end the cohort must be complete and correct, with
no duplicate and no orphan: exactly the objects the renderer wants, for exactly the roster.
And it must get there fast: every learner Ready within a minute of the last restart, and no
learner's quota charging them for objects they do not hold. A create that was admitted and
then lost (a race, a request cut short by the kill) stays charged in the quota's
``status.used`` until the quota controller recounts, by default at its 5-minute resync.
"""

from __future__ import annotations

import base64
import random
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from labctl.api.v1alpha1 import API_VERSION
from labctl.kube import Kube
from labctl.provision.install import KEY_SECRET
from labctl.provision.learner import render_learner_objects
from labctl.provision.naming import learner_name
from labctl.provision.stacks.settings import parse_quantity
from labctl.provision.tenancy import COHORT_LABEL, CONTROLLER_NAMESPACE, OBJECT_QUOTA
from tests.conftest import ClusterUnderTest, ControllerProcess, cluster_args, labctl
from tests.helpers.quota_usage import namespace_usage
from tests.helpers.typed_api import core_api

LEARNERS = 50
KILLS = 10
READY_WITHIN_S = 60.0  # of the last restart; a calm provision of 50 takes ~20 s
WAIT_AT_MOST_S = 150.0  # then fail: the message says who was late at 60 s and why
QUOTA_SETTLE_S = 15.0  # pods' charges follow their Deployments; far below a resync

pytestmark = pytest.mark.timeout(480)  # a 50-learner provision, 10 restarts, the waits, the delete


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
    cohort_args = ["cohort", "create", name, "--roster", str(roster), "--level", "professional"]
    labctl(*cohort_args, *cluster_args(test_cluster))
    try:
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.1, 1.5))
            controller.kill()
            restarted = time.monotonic()
            controller.start()
        took, late = wait_all_ready(kube, name, LEARNERS, since=restarted)
        print(f"\nall {LEARNERS} learners Ready {took:.1f} s after the last restart")
        assert took <= READY_WITHIN_S, (
            f"all learners Ready {took:.0f} s after the last restart (at most {READY_WITHIN_S:.0f} s); "
            f"not Ready at {READY_WITHIN_S:.0f} s: {late}"
        )
        assert_quotas_exact(kube, name)
        assert_learner_service_admitted(kube, name)
        labctl(*cohort_args, "--wait", "--timeout", "60s", *cluster_args(test_cluster))  # idempotent
        assert_exactly_rendered(kube, name, emails)
    finally:
        labctl("cohort", "delete", name, "--yes", *cluster_args(test_cluster))


def wait_all_ready(kube: Kube, cohort: str, count: int, *, since: float) -> tuple[float, dict[str, str]]:
    """Seconds from ``since`` until ``count`` learners are Ready, and who was late at the deadline
    and why (see ``_late_story``)."""
    late: dict[str, str] = {}
    while True:
        learners = kube.list(API_VERSION, "Learner", label_selector=f"{COHORT_LABEL}={cohort}")
        waiting = [lr for lr in learners if (lr.get("status") or {}).get("phase") != "Ready"]
        took = time.monotonic() - since
        if len(learners) == count and not waiting:
            return took, late
        if took > READY_WITHIN_S and not late:
            late = {lr["metadata"]["name"]: _late_story(kube, lr) for lr in waiting}
        if took > WAIT_AT_MOST_S:
            raise AssertionError(f"{len(waiting)} of {count} learners not Ready after {took:.0f} s: {late}")
        time.sleep(1.0)


def _late_story(kube: Kube, learner: dict[str, Any]) -> str:
    """Why a learner is not Ready: its phase and stacks, its quota's Services against those held,
    and the namespace's warnings (a ReplicaSet's FailedCreate, say)."""
    namespace, status = learner["metadata"]["name"], learner.get("status") or {}
    waiting = sorted(k for k, ok in (status.get("stacks") or {}).items() if not ok)
    quota = kube.get("v1", "ResourceQuota", OBJECT_QUOTA, namespace) or {}
    counts = quota.get("status") or {}
    used, hard = (counts.get("used") or {}).get("services"), (counts.get("hard") or {}).get("services")
    held = len(kube.list("v1", "Service", namespace=namespace))
    warnings = sorted(
        {
            f"{e['reason']}: {e['message'][:160]}"
            for e in kube.list("v1", "Event", namespace=namespace)
            if e.get("type") == "Warning"
        }
    )
    return (
        f"{status.get('phase')}, stacks not ready {waiting}; services used {used}/{hard}, held {held}; "
        f"warnings {warnings[:4]}"
    )


def assert_quotas_exact(kube: Kube, cohort: str) -> None:
    """Every learner quota's ``status.used`` is what the namespace holds, resource by resource."""
    deadline = time.monotonic() + QUOTA_SETTLE_S
    while True:
        wrong = {}
        for ns in kube.list("v1", "Namespace", label_selector=f"{COHORT_LABEL}={cohort}"):
            namespace = ns["metadata"]["name"]
            wrong.update({f"{namespace} {k}": v for k, v in _quota_errors(kube, namespace).items()})
        if not wrong or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    assert not wrong, f"quota used != held (used, held): {wrong}"


def _quota_errors(kube: Kube, namespace: str) -> dict[str, tuple[str, Decimal | None]]:
    quotas = kube.list("v1", "ResourceQuota", namespace=namespace)
    assert quotas, f"no ResourceQuota in {namespace}"
    held = namespace_usage(kube, namespace)
    errors: dict[str, tuple[str, Decimal | None]] = {}
    for quota in quotas:
        status: dict[str, Any] = quota.get("status") or {}
        assert set(status.get("hard") or {}) == set(quota["spec"]["hard"]), f"{namespace}: quota not synced"
        for resource, used in (status.get("used") or {}).items():
            # A resource this count does not know fails too: the check never passes by omission.
            if parse_quantity(used) != held.get(resource):
                errors[resource] = (used, held.get(resource))
    return errors


def assert_learner_service_admitted(kube: Kube, cohort: str) -> None:
    """A Service of the learner's own fits in every namespace: quota admission judges it from
    ``status.used`` (a dry run is judged in full and charged nothing; quota does not depend on
    who asks, RBAC is tested elsewhere)."""
    body = {"metadata": {"name": "learner-web"}, "spec": {"ports": [{"port": 80}]}}
    refused = {}
    for ns in kube.list("v1", "Namespace", label_selector=f"{COHORT_LABEL}={cohort}"):
        namespace = ns["metadata"]["name"]
        try:
            core_api(kube).create_namespaced_service(namespace, body, dry_run="All")
        except ApiException as exc:
            refused[namespace] = f"HTTP {exc.status}: {exc.body}"
    assert not refused, f"a learner's Service refused: {refused}"


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
