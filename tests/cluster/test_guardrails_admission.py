"""A learner's guard-rails on a real control plane, met with the kubeconfig labctl gave them:
no pod pinned to a node by name, the node's disk bounded by their quota and limits.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from labctl.kube import Kube
from labctl.provision.naming import learner_name
from labctl.provision.policies import NODE_NAME_MESSAGE
from labctl.provision.quota import profile
from tests.cluster.test_cohorts import create, forbidden, learner_client, roster, unique
from tests.conftest import ClusterUnderTest, cluster_args, labctl
from tests.helpers.objects import RESTRICTED_SECURITY, pod, pod_spec
from tests.helpers.typed_api import core_api

pytestmark = pytest.mark.usefixtures("controller")

SMALL = profile("small")


@pytest.fixture(scope="module")
def learner(
    test_cluster: ClusterUnderTest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Kube, str]]:
    """One learner of a small-profile cohort (stacks provisioned), and their own kubeconfig."""
    tmp = tmp_path_factory.mktemp("guardrails")
    name = unique("gr")
    create(test_cluster, name, roster(tmp, "eve@uni.edu"), "--quota-profile", SMALL.name)
    try:
        yield learner_client(test_cluster, name, "eve@uni.edu", tmp), learner_name(name, "eve@uni.edu")
    finally:
        labctl("cohort", "delete", name, "--yes", *cluster_args(test_cluster))


@pytest.fixture(scope="module")
def gpu_node(kube: Kube) -> str:
    nodes = kube.list("v1", "Node", label_selector="nvidia.com/gpu.present=true")
    if not nodes:
        pytest.skip("the cluster under test has no GPU nodes (the sim cluster has them)")
    return str(nodes[0]["metadata"]["name"])


# -- spec.nodeName -------------------------------------------------------------------------


def pinned_pod(name: str, ns: str, node: str) -> dict[str, Any]:
    """Everything the GPU pool asks for, and a pin by name that would skip the scheduler."""
    obj = pod(name, ns, gpus=1, tolerate_gpu=True, security=RESTRICTED_SECURITY)
    obj["spec"]["nodeName"] = node
    return obj


def workload(kind: str, name: str, ns: str, spec: dict[str, Any]) -> dict[str, Any]:
    template = {"metadata": {"labels": {"app": name}}, "spec": copy.deepcopy(spec)}
    if kind == "Deployment":
        body = {"selector": {"matchLabels": {"app": name}}, "template": template}
        return {
            "apiVersion": "apps/v1",
            "kind": kind,
            "metadata": {"name": name, "namespace": ns},
            "spec": body,
        }
    template["spec"]["restartPolicy"] = "Never"
    job: dict[str, Any] = {"template": template}
    body = job if kind == "Job" else {"schedule": "*/5 * * * *", "jobTemplate": {"spec": job}}
    return {"apiVersion": "batch/v1", "kind": kind, "metadata": {"name": name, "namespace": ns}, "spec": body}


def test_a_pod_pinned_to_a_gpu_node_is_refused_with_what_to_do(
    learner: tuple[Kube, str], gpu_node: str
) -> None:
    a, ns = learner
    message = forbidden(lambda: a.apply(pinned_pod("pinned", ns, gpu_node)))
    assert NODE_NAME_MESSAGE in message
    assert a.get("v1", "Pod", "pinned", ns) is None


@pytest.mark.parametrize("kind", ["Deployment", "Job", "CronJob"])
def test_a_pod_template_pinned_to_a_node_is_refused(
    learner: tuple[Kube, str], gpu_node: str, kind: str
) -> None:
    """Their controllers' pods are not the learner's requests: the template is where it stops."""
    a, ns = learner
    spec = pod_spec(gpus=1, tolerate_gpu=True, security=RESTRICTED_SECURITY, nodeName=gpu_node)
    name = f"pinned-{kind.lower()}"
    assert "spec.nodeName is not allowed" in forbidden(lambda: a.apply(workload(kind, name, ns, spec)))


def test_pods_the_scheduler_placed_stay_editable_and_admins_may_pin(
    learner: tuple[Kube, str], kube: Kube, gpu_node: str
) -> None:
    a, ns = learner
    placed = pod("placed", ns, security=RESTRICTED_SECURITY)
    a.apply(placed)
    a.wait_for(
        lambda: (a.get("v1", "Pod", "placed", ns) or {}).get("spec", {}).get("nodeName"),
        timeout=60,
        what="the scheduler to bind pod placed",
    )
    # An UPDATE of a pod whose nodeName the scheduler set keeps it: not a pin of the learner's.
    a.patch("v1", "Pod", "placed", {"metadata": {"labels": {"checked": "yes"}}}, namespace=ns)
    assert a.get("v1", "Pod", "placed", ns)["metadata"]["labels"]["checked"] == "yes"
    # The policy is about learners: an administrator may still place a pod by hand (dry run).
    spec = {**pod_spec(tolerate_gpu=True, security=RESTRICTED_SECURITY), "nodeName": gpu_node}
    admin = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "by-hand", "namespace": ns},
        "spec": spec,
    }
    core_api(kube).create_namespaced_pod(ns, admin, dry_run="All")
    a.delete("v1", "Pod", "placed", ns)


# -- ephemeral storage ---------------------------------------------------------------------


def with_disk(obj: dict[str, Any], request: str, limit: str) -> dict[str, Any]:
    resources = obj["spec"]["containers"][0]["resources"]
    resources["requests"]["ephemeral-storage"] = request
    resources["limits"]["ephemeral-storage"] = limit
    return obj


@pytest.mark.parametrize(
    ("request_", "limit", "resource"),
    [
        # More than the namespace may reserve on nodes (the stacks hold some already).
        (SMALL.ephemeral.requests, SMALL.ephemeral.requests, "requests.ephemeral-storage"),
        # Within the LimitRange's max, but not beside what the stacks may write.
        ("128Mi", SMALL.ephemeral.limits, "limits.ephemeral-storage"),
    ],
)
def test_a_pod_without_room_in_the_disk_quota_is_refused(
    learner: tuple[Kube, str], request_: str, limit: str, resource: str
) -> None:
    a, ns = learner
    greedy = with_disk(pod("greedy-disk", ns, security=RESTRICTED_SECURITY), request_, limit)
    message = forbidden(lambda: a.apply(greedy))
    assert "exceeded quota: labctl-quota" in message and resource in message


def test_a_container_past_the_limitranges_max_is_refused(learner: tuple[Kube, str]) -> None:
    a, ns = learner
    huge = with_disk(pod("huge-disk", ns, security=RESTRICTED_SECURITY), "128Mi", "1Ti")
    message = forbidden(lambda: a.apply(huge))
    assert "ephemeral-storage" in message and "maximum" in message


def test_a_pod_naming_no_disk_gets_the_limitrange_defaults(learner: tuple[Kube, str]) -> None:
    """Without them the quota would refuse it; with them, its logs and /tmp are bounded."""
    a, ns = learner
    a.apply(pod("plain", ns, security=RESTRICTED_SECURITY))  # cpu and memory only
    (container,) = a.get("v1", "Pod", "plain", ns)["spec"]["containers"]
    assert container["resources"]["requests"]["ephemeral-storage"] == SMALL.ephemeral.default_request
    assert container["resources"]["limits"]["ephemeral-storage"] == SMALL.ephemeral.default
    a.delete("v1", "Pod", "plain", ns)


def test_the_quota_counts_the_stacks_disk(learner: tuple[Kube, str]) -> None:
    a, ns = learner

    def used() -> dict[str, str]:
        status = (a.get("v1", "ResourceQuota", "labctl-quota", ns) or {}).get("status") or {}
        return dict(status.get("used") or {})

    a.wait_for(
        lambda: used().get("limits.ephemeral-storage") not in (None, "0"), timeout=60, what="quota usage"
    )
    hard = a.get("v1", "ResourceQuota", "labctl-quota", ns)["status"]["hard"]
    assert hard["requests.ephemeral-storage"] == SMALL.ephemeral.requests
    assert hard["limits.ephemeral-storage"] == SMALL.ephemeral.limits
