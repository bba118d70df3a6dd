"""The control plane is real: kube-scheduler, RBAC, admission and controllers decide.

Everything is done through the API, the way a user acts. With LABCTL_TEST_KUBECONFIG
these run unchanged against any cluster that has GPU nodes.
"""

from __future__ import annotations

import time

import pytest
from kubernetes import client as k8s_client

from labctl.kube import Kube, KubeError, condition_true
from tests.helpers.objects import GPU, RESTRICTED_SECURITY, pod, pod_spec
from tests.helpers.typed_api import core_api


def gpu_nodes(kube: Kube) -> dict[str, int]:
    nodes = {
        n["metadata"]["name"]: int((n["status"].get("allocatable") or {}).get(GPU, "0"))
        for n in kube.list("v1", "Node")
    }
    found = {name: gpus for name, gpus in nodes.items() if gpus > 0}
    assert found, "the test cluster has no node with nvidia.com/gpu allocatable"
    return found


def bound_node(kube: Kube, namespace: str, name: str, timeout: float = 30) -> str:
    found = kube.wait_for(
        lambda: (kube.get("v1", "Pod", name, namespace) or {}).get("spec", {}).get("nodeName"),
        timeout=timeout,
        what=f"pod {namespace}/{name} to be scheduled",
    )
    return str(found)


def failed_scheduling(kube: Kube, namespace: str, name: str, timeout: float = 30) -> str:
    """The FailedScheduling event message kube-scheduler wrote for the pod."""

    def event() -> str | None:
        for ev in kube.list(
            "v1",
            "Event",
            namespace=namespace,
            field_selector=f"involvedObject.name={name},reason=FailedScheduling",
        ):
            return str(ev["message"])
        return None

    return kube.wait_for(event, timeout=timeout, what=f"a FailedScheduling event for {namespace}/{name}")


def still_pending(kube: Kube, namespace: str, name: str) -> bool:
    obj = kube.get("v1", "Pod", namespace=namespace, name=name) or {}
    return obj["status"].get("phase") == "Pending" and not obj["spec"].get("nodeName")


def test_gpu_pod_with_toleration_is_bound_to_a_gpu_node(kube: Kube, namespace: str) -> None:
    gpus = gpu_nodes(kube)
    kube.apply(pod("train", namespace, gpus=1, tolerate_gpu=True))
    node = bound_node(kube, namespace, "train")
    assert node in gpus
    labels = kube.get("v1", "Node", node)["metadata"]["labels"]  # type: ignore[index]
    assert labels.get("nvidia.com/gpu.present") == "true"


def test_gpu_pod_without_toleration_stays_pending(kube: Kube, namespace: str) -> None:
    gpu_nodes(kube)
    kube.apply(pod("untolerated", namespace, gpus=1))
    message = failed_scheduling(kube, namespace, "untolerated")
    assert "untolerated taint" in message and "nvidia.com/gpu" in message, message
    assert still_pending(kube, namespace, "untolerated")


def test_gpu_request_beyond_one_node_stays_pending(kube: Kube, namespace: str) -> None:
    most = max(gpu_nodes(kube).values())
    kube.apply(pod("greedy", namespace, gpus=most + 1, tolerate_gpu=True))
    message = failed_scheduling(kube, namespace, "greedy")
    assert f"Insufficient {GPU}" in message, message
    assert still_pending(kube, namespace, "greedy")


def test_cpu_pod_is_not_placed_on_tainted_gpu_nodes(kube: Kube, namespace: str) -> None:
    gpus = gpu_nodes(kube)
    for i in range(4):
        kube.apply(pod(f"cpu-{i}", namespace))
    for i in range(4):
        assert bound_node(kube, namespace, f"cpu-{i}") not in gpus


def _token_client(kube: Kube, namespace: str, service_account: str) -> Kube:
    """A client that authenticates with the ServiceAccount's own token (TokenRequest)."""
    request = k8s_client.AuthenticationV1TokenRequest(
        spec=k8s_client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)
    )
    token = core_api(kube).create_namespaced_service_account_token(service_account, namespace, request)
    conf = k8s_client.Configuration()
    admin = kube.configuration
    conf.host, conf.ssl_ca_cert, conf.verify_ssl = admin.host, admin.ssl_ca_cert, admin.verify_ssl
    conf.api_key = {"authorization": f"Bearer {token.status.token}"}
    return Kube(k8s_client.ApiClient(conf))


def test_service_account_role_stops_at_its_namespace(kube: Kube, namespace_factory) -> None:
    team_a, team_b = namespace_factory("a"), namespace_factory("b")
    kube.apply(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "learner", "namespace": team_a}}
    )
    kube.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "pod-reader", "namespace": team_a},
            "rules": [
                {"apiGroups": [""], "resources": ["pods", "configmaps"], "verbs": ["get", "list", "create"]}
            ],
        }
    )
    kube.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "learner-pod-reader", "namespace": team_a},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "learner", "namespace": team_a}],
        }
    )
    learner = _token_client(kube, team_a, "learner")
    # RBAC caches may lag a moment behind the RoleBinding; wait for the grant, not for the denial.
    learner.wait_for(lambda: _can_list(learner, team_a), timeout=10, what="the RoleBinding to apply")
    with pytest.raises(KubeError) as denied:
        learner.list("v1", "Pod", namespace=team_b)
    assert denied.value.status == 403
    assert f"system:serviceaccount:{team_a}:learner" in str(denied.value)
    with pytest.raises(KubeError) as denied_write:
        learner.apply(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "x", "namespace": team_b},
                "data": {},
            }
        )
    assert denied_write.value.status == 403


def _can_list(client: Kube, namespace: str) -> bool:
    try:
        client.list("v1", "Pod", namespace=namespace)
    except KubeError:
        return False
    return True


def test_gpu_quota_rejects_a_second_gpu_pod_at_admission(kube: Kube, namespace: str) -> None:
    gpu_nodes(kube)
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "gpu", "namespace": namespace},
            "spec": {"hard": {f"requests.{GPU}": "1"}},
        }
    )
    # Admission needs the quota controller to have computed usage first.
    kube.wait_for(
        lambda: (kube.get("v1", "ResourceQuota", "gpu", namespace) or {}).get("status", {}).get("hard"),
        timeout=30,
        what="the quota status",
    )
    kube.apply(pod("first", namespace, gpus=1, tolerate_gpu=True))
    with pytest.raises(KubeError) as rejected:
        kube.apply(pod("second", namespace, gpus=1, tolerate_gpu=True))
    assert rejected.value.status == 403
    assert "exceeded quota: gpu" in str(rejected.value)
    assert f"requested: requests.{GPU}=1" in str(rejected.value)
    assert kube.get("v1", "Pod", "second", namespace) is None


def test_restricted_namespace_rejects_a_privileged_pod(kube: Kube, namespace_factory) -> None:
    restricted = namespace_factory("psa", labels={"pod-security.kubernetes.io/enforce": "restricted"})
    privileged = pod("root", restricted)
    privileged["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    with pytest.raises(KubeError) as rejected:
        kube.apply(privileged)
    assert rejected.value.status == 403
    assert 'violates PodSecurity "restricted:latest"' in str(rejected.value)
    assert "privileged" in str(rejected.value)
    # A pod that follows the restricted profile is admitted in the same namespace.
    kube.apply(pod("fine", restricted, security=RESTRICTED_SECURITY))


def test_deployment_pods_become_ready_and_a_job_completes(kube: Kube, namespace: str) -> None:
    labels = {"app": "model-server"}
    kube.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "model-server", "namespace": namespace},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": pod_spec()},
            },
        }
    )
    deployment = kube.wait_for(
        lambda: _ready_deployment(kube, namespace, "model-server"),
        timeout=60,
        what="the Deployment's 2 replicas to be ready",
    )
    assert deployment["status"]["readyReplicas"] == 2
    pods = kube.list("v1", "Pod", namespace=namespace, label_selector="app=model-server")
    assert len(pods) == 2
    assert all(p["status"]["phase"] == "Running" and condition_true(p, "Ready") for p in pods)

    kube.apply(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "train", "namespace": namespace},
            "spec": {"backoffLimit": 0, "template": {"spec": pod_spec(restartPolicy="Never")}},
        }
    )
    job = kube.wait_for(
        lambda: (lambda j: j if condition_true(j, "Complete") else None)(
            kube.get("batch/v1", "Job", "train", namespace) or {}
        ),
        timeout=60,
        what="the Job to complete",
    )
    assert job["status"]["succeeded"] == 1


def _ready_deployment(kube: Kube, namespace: str, name: str) -> dict | None:
    obj = kube.get("apps/v1", "Deployment", name, namespace) or {}
    return obj if (obj.get("status") or {}).get("readyReplicas") == 2 else None


def test_deleting_a_namespace_with_objects_completes(kube: Kube, namespace_factory) -> None:
    doomed = namespace_factory("doomed")
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "params", "namespace": doomed},
            "data": {"lr": "0.1"},
        }
    )
    kube.apply(pod("worker", doomed))
    bound_node(kube, doomed, "worker")
    kube.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": doomed},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod_spec()},
            },
        }
    )
    started = time.monotonic()
    assert kube.delete("v1", "Namespace", doomed)
    kube.wait_for(
        lambda: kube.get("v1", "Namespace", doomed) is None,
        timeout=90,
        what=f"namespace {doomed} to be deleted",
    )
    assert time.monotonic() - started < 90
