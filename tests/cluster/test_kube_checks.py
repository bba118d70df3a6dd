"""kube.* checks (and prometheus.rules_valid from a ConfigMap) on the real control plane.

Each test writes objects into its own namespace as a learner would, waits for what the
cluster does with them (the real kube-scheduler binds, kwok plays the pods), then grades.
GPU placement needs GPU nodes: the sim cluster has them (``nvidia.com/gpu=present:NoSchedule``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from graders.core import Context, Status
from graders.engine import CheckCall, run_check
from labctl.kube import Kube
from tests.graders.prom_fixtures import drift_rules
from tests.helpers.objects import GPU, pod_spec

pytestmark = pytest.mark.cluster

GPU_NODE = {"nvidia.com/gpu.present": "true"}
PLACEMENT = {
    "node_labels": {"nvidia.com/gpu.present": "true", "nvidia.com/gpu.product": None},
    "requests": {GPU: 1},
    "tolerations": [f"{GPU}=present:NoSchedule"],
}


def grade(kube: Kube, namespace: str | None, check: str, **params: Any) -> Any:
    return run_check(CheckCall(check, params), Context(learner="t", namespace=namespace, kube=kube))


def job(namespace: str, name: str, spec: dict[str, Any], annotations: dict[str, str] | None = None) -> dict:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": annotations or {}},
                "spec": {"restartPolicy": "Never", **spec},
            },
        },
    }


def pods_of(kube: Kube, namespace: str, job_name: str) -> list[dict]:
    return kube.list("v1", "Pod", namespace=namespace, label_selector=f"job-name={job_name}")


def wait_bound(kube: Kube, namespace: str, job_name: str) -> list[dict]:
    return kube.wait_for(
        lambda: [p for p in pods_of(kube, namespace, job_name) if p["spec"].get("nodeName")],
        timeout=60,
        what=f"a pod of Job {job_name} bound to a node",
    )


@pytest.fixture(scope="module")
def gpu_nodes(kube: Kube) -> list[str]:
    nodes = kube.list("v1", "Node", label_selector="nvidia.com/gpu.present=true")
    if not nodes:
        pytest.skip("the cluster under test has no GPU nodes (the sim cluster has them)")
    return [n["metadata"]["name"] for n in nodes]


def test_object_with_expected_fields(kube: Kube, namespace: str) -> None:
    labels = {"app.kubernetes.io/name": "model"}
    kube.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "model", "namespace": namespace, "labels": labels},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": pod_spec()},
            },
        }
    )
    fields = {
        "spec.replicas": 2,
        "metadata.labels[app.kubernetes.io/name]": "model",
        "spec.template.spec.containers.0.resources.requests.cpu": 0.1,
    }
    ok = grade(
        kube, namespace, "kube.object", api_version="apps/v1", kind="Deployment", name="model", fields=fields
    )
    assert ok.status is Status.PASSED, ok.feedback
    assert ok.feedback.startswith("Deployment model exists with spec.replicas = 2, ")

    wrong = grade(
        kube,
        namespace,
        "kube.object",
        api_version="apps/v1",
        kind="Deployment",
        name="model",
        fields={"spec.replicas": 3, "spec.template.spec.nodeSelector": GPU_NODE},
    )
    assert wrong.status is Status.FAILED
    assert wrong.feedback == (
        "Deployment model: spec.replicas is 2, expected 3; "
        "spec.template.spec.nodeSelector is not set (expected {'nvidia.com/gpu.present': 'true'})"
    )

    missing = grade(kube, namespace, "kube.object", api_version="apps/v1", kind="Deployment", name="serve")
    assert missing.status is Status.FAILED
    assert missing.feedback == f"no Deployment serve (apps/v1) in namespace {namespace}"


def test_pods_placed_on_gpu_nodes(kube: Kube, namespace: str, gpu_nodes: list[str]) -> None:
    spec = pod_spec(gpus=1, tolerate_gpu=True, nodeSelector=GPU_NODE)
    kube.apply(job(namespace, "train-gpu", spec))
    (bound,) = wait_bound(kube, namespace, "train-gpu")
    result = grade(kube, namespace, "kube.pod_placement", job="train-gpu", **PLACEMENT)
    assert result.status is Status.PASSED, result.feedback
    assert result.feedback == f"1 pod(s) of Job train-gpu placed as required (on {bound['spec']['nodeName']})"
    assert bound["spec"]["nodeName"] in gpu_nodes


def test_pods_off_the_gpu_nodes_are_named_with_what_is_missing(
    kube: Kube, namespace: str, gpu_nodes: list[str]
) -> None:
    kube.apply(job(namespace, "train", pod_spec()))
    (bound,) = wait_bound(kube, namespace, "train")
    pod, node = bound["metadata"]["name"], bound["spec"]["nodeName"]
    result = grade(kube, namespace, "kube.pod_placement", label_selector="job-name=train", **PLACEMENT)
    assert result.status is Status.FAILED
    assert result.feedback == (
        f"pod {pod} runs on node {node}, which lacks nvidia.com/gpu.present=true, nvidia.com/gpu.product; "
        f"pod {pod} requests no nvidia.com/gpu (needs 1); "
        f"pod {pod} has no toleration for nvidia.com/gpu=present:NoSchedule"
    )
    assert result.evidence["pods"] == [
        {"pod": pod, "node": node, "problems": result.evidence["pods"][0]["problems"]}
    ]

    nobody = grade(kube, namespace, "kube.pod_placement", label_selector="app=nothing", **PLACEMENT)
    assert nobody.status is Status.FAILED
    assert nobody.feedback == "selector app=nothing: found 0 pod(s), expected at least 1"


def test_a_job_that_had_to_queue(kube: Kube, namespace: str, gpu_nodes: list[str]) -> None:
    # More GPUs than any node has: the scheduler keeps the pod Pending (FailedScheduling).
    kube.apply(job(namespace, "big", pod_spec(gpus=64, tolerate_gpu=True, nodeSelector=GPU_NODE)))
    kube.wait_for(
        lambda: kube.list(
            "v1",
            "Event",
            namespace=namespace,
            field_selector="involvedObject.kind=Pod,reason=FailedScheduling",
        ),
        timeout=60,
        what="a FailedScheduling event",
    )
    queued = grade(kube, namespace, "kube.job_queued", job="big")
    assert queued.status is Status.PASSED, queued.feedback
    (pod,) = pods_of(kube, namespace, "big")
    assert queued.feedback.startswith(f"Job big queued: pod {pod['metadata']['name']} was Pending (0/")
    assert "Insufficient nvidia.com/gpu" in queued.feedback

    unplaced = grade(kube, namespace, "kube.pod_placement", job="big", **PLACEMENT)
    assert unplaced.status is Status.FAILED
    assert unplaced.feedback.startswith(f"pod {pod['metadata']['name']} is not bound to any node (0/")

    kube.wait_for(
        lambda: (kube.get("batch/v1", "Job", "big", namespace) or {}).get("status", {}).get("active"),
        timeout=30,
        what="Job big to count its pending pod as active",
    )
    waiting = grade(kube, namespace, "kube.job_succeeded", job="big")
    assert waiting.status is Status.FAILED
    assert waiting.feedback == (
        f"Job big has not completed yet (1 active, 0 succeeded, 0 failed; "
        f"pods still Pending: {pod['metadata']['name']})"
    )


def test_a_job_that_ran_at_once_did_not_queue_and_succeeded(kube: Kube, namespace: str) -> None:
    kube.apply(job(namespace, "quick", pod_spec()))
    kube.wait_for(
        lambda: (kube.get("batch/v1", "Job", "quick", namespace) or {}).get("status", {}).get("succeeded"),
        timeout=60,
        what="Job quick to succeed",
    )
    done = grade(kube, namespace, "kube.job_succeeded", job="quick")
    assert done.status is Status.PASSED, done.feedback
    assert done.feedback == "Job quick completed (1 pod(s) succeeded)"

    not_queued = grade(kube, namespace, "kube.job_queued", job="quick")
    assert not_queued.status is Status.FAILED
    assert not_queued.feedback.startswith("Job quick did not queue: none of its pods was ever unschedulable")

    missing = grade(kube, namespace, "kube.job_queued", job="nope")
    assert missing.status is Status.FAILED
    assert missing.feedback == f"no Job nope in namespace {namespace}"


def quota(namespace: str, hard: dict[str, str]) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "lab-quota", "namespace": namespace},
        "spec": {"hard": hard},
    }


def wait_quota(kube: Kube, namespace: str, hard: dict[str, str]) -> None:
    kube.wait_for(
        lambda: (
            (status := (kube.get("v1", "ResourceQuota", "lab-quota", namespace) or {}).get("status") or {})
            and status.get("hard") == hard
            and "used" in status
        ),
        timeout=30,
        what=f"quota status in {namespace}",
    )


def test_quota_use_within_and_beyond_its_limits(kube: Kube, namespace: str) -> None:
    hard = {"count/configmaps": "5", "requests.nvidia.com/gpu": "1"}
    kube.apply(quota(namespace, hard))
    wait_quota(kube, namespace, hard)
    ok = grade(kube, namespace, "kube.quota_respected")
    assert ok.status is Status.PASSED, ok.feedback
    assert ok.feedback == "within quota (2 resource(s) checked)"
    # kube-root-ca.crt is a ConfigMap every namespace holds: lowering the limit under it overruns.
    lowered = {"count/configmaps": "0", "requests.nvidia.com/gpu": "1"}
    kube.apply(quota(namespace, lowered))
    wait_quota(kube, namespace, lowered)
    over = grade(
        kube, namespace, "kube.quota_respected", name="lab-quota", resources=["count/configmaps", "pods"]
    )
    assert over.status is Status.FAILED
    assert over.feedback == (
        "count/configmaps: 1 used of 0 allowed by lab-quota; ResourceQuota lab-quota sets no limit for pods"
    )


def test_a_namespace_without_quota_fails(kube: Kube, namespace: str) -> None:
    result = grade(kube, namespace, "kube.quota_respected")
    assert result.status is Status.FAILED
    assert result.feedback == f"no ResourceQuota in namespace {namespace}"


def test_rules_from_the_alert_rules_config_map(kube: Kube, namespace: str) -> None:
    missing = grade(kube, namespace, "prometheus.rules_valid", alert="DataDrift")
    assert missing.status is Status.FAILED
    assert missing.feedback.startswith(
        f"no ConfigMap alert-rules in namespace {namespace}: put your rule files"
    )

    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "alert-rules", "namespace": namespace},
    }
    kube.apply({**config_map, "data": {"drift.yaml": drift_rules(1.76), "README": "not a rule file"}})
    ok = grade(kube, namespace, "prometheus.rules_valid", alert="DataDrift")
    assert ok.status is Status.PASSED, ok.feedback
    assert ok.evidence["files"] == ["ConfigMap alert-rules key drift.yaml"]

    kube.apply({**config_map, "data": {"drift.yaml": drift_rules(1.76).replace("for: 2s", "for: 2x")}})
    bad = grade(kube, namespace, "prometheus.rules_valid", alert="DataDrift")
    assert bad.status is Status.FAILED
    assert bad.feedback == (
        "promtool check rules rejected your rules:\n"
        '  ConfigMap alert-rules key drift.yaml: not a valid duration string: "2x"'
    )


def test_without_a_cluster_connection_the_grader_errs() -> None:
    result = run_check(CheckCall("kube.job_succeeded", {"job": "x"}), Context(namespace="ns"))
    assert result.status is Status.ERROR
    assert result.feedback == "grader error: no cluster connection: run this check with a kubeconfig"


# -- the GPU-scheduling lab's questions: off the pool, chosen by the scheduler, held by a quota --

HOLD = {"pod-complete.stage.kwok.x-k8s.io/delay": "10m"}  # kwok: the pod keeps its GPU for a while
AMPERE = {"nvidia.com/gpu.family": "ampere"}


def test_cpu_work_is_judged_off_the_gpu_nodes(kube: Kube, namespace: str, gpu_nodes: list[str]) -> None:
    kube.apply(job(namespace, "prepare", pod_spec()))
    kube.apply(job(namespace, "squatter", pod_spec(tolerate_gpu=True, nodeSelector=GPU_NODE)))
    (cpu,) = wait_bound(kube, namespace, "prepare")
    (squat,) = wait_bound(kube, namespace, "squatter")
    off = {"avoid_node_labels": {"nvidia.com/gpu.present": None}}

    ok = grade(kube, namespace, "kube.pod_placement", job="prepare", **off)
    assert ok.status is Status.PASSED, ok.feedback
    assert cpu["spec"]["nodeName"] not in gpu_nodes

    on_gpu = grade(kube, namespace, "kube.pod_placement", job="squatter", **off)
    assert on_gpu.status is Status.FAILED
    assert on_gpu.feedback == (
        f"pod {squat['metadata']['name']} runs on node {squat['spec']['nodeName']}, which it should stay off "
        "(nvidia.com/gpu.present=true)"
    )


def test_node_selection_is_read_from_the_spec_by_selector_or_required_affinity(
    kube: Kube, namespace: str, gpu_nodes: list[str]
) -> None:
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": "nvidia.com/gpu.family", "operator": "In", "values": ["ampere"]}
                        ]
                    }
                ]
            }
        }
    }
    # No toleration: Pending for ever, yet what it asks for is there to judge (bound: false).
    kube.apply(job(namespace, "by-selector", pod_spec(gpus=1, nodeSelector=AMPERE)))
    kube.apply(job(namespace, "by-affinity", pod_spec(gpus=1, tolerate_gpu=True, affinity=affinity)))
    kube.apply(job(namespace, "anywhere", pod_spec(gpus=1, tolerate_gpu=True)))
    wait_bound(kube, namespace, "by-affinity")
    kube.wait_for(lambda: pods_of(kube, namespace, "by-selector"), timeout=60, what="a pod of by-selector")
    wait_bound(kube, namespace, "anywhere")
    spec_only = {"bound": False, "selects_nodes": AMPERE}

    for name in ("by-selector", "by-affinity"):
        result = grade(kube, namespace, "kube.pod_placement", job=name, **spec_only)
        assert result.status is Status.PASSED, result.feedback
        assert result.feedback == f"1 pod(s) of Job {name} ask for what is required"
    (pod,) = pods_of(kube, namespace, "anywhere")
    anywhere = grade(kube, namespace, "kube.pod_placement", job="anywhere", **spec_only)
    assert anywhere.status is Status.FAILED
    assert anywhere.feedback == (
        f"pod {pod['metadata']['name']} does not require node label nvidia.com/gpu.family=ampere "
        "(nodeSelector or required node affinity)"
    )
    (pending,) = pods_of(kube, namespace, "by-selector")
    bound = grade(kube, namespace, "kube.pod_placement", job="by-selector", selects_nodes=AMPERE)
    assert bound.status is Status.FAILED
    assert bound.feedback.startswith(f"pod {pending['metadata']['name']} is not bound to any node (0/")


def test_a_pod_pinned_by_node_name_was_not_scheduled(
    kube: Kube, namespace: str, gpu_nodes: list[str]
) -> None:
    spec = pod_spec(gpus=1, tolerate_gpu=True, nodeSelector=GPU_NODE)
    kube.apply(job(namespace, "scheduled", spec))
    kube.apply(job(namespace, "pinned", {**spec, "nodeName": gpu_nodes[0]}))
    bare = {"name": "bare", "namespace": namespace, "labels": {"app": "bare"}}
    kube.apply(
        {"apiVersion": "v1", "kind": "Pod", "metadata": bare, "spec": {**spec, "nodeName": gpu_nodes[0]}}
    )
    wait_bound(kube, namespace, "scheduled")
    (pinned,) = wait_bound(kube, namespace, "pinned")

    ok = grade(kube, namespace, "kube.pod_placement", job="scheduled", scheduled=True, **PLACEMENT)
    assert ok.status is Status.PASSED, ok.feedback

    by_template = grade(kube, namespace, "kube.pod_placement", job="pinned", scheduled=True, **PLACEMENT)
    assert by_template.status is Status.FAILED
    assert by_template.feedback == (
        f"pod {pinned['metadata']['name']} was pinned to node {gpu_nodes[0]}: its Job's pod template sets "
        f"spec.nodeName: {gpu_nodes[0]}; let the scheduler choose"
    )
    # A bare pod has no template to read: who wrote spec.nodeName is in its managedFields.
    by_client = grade(kube, namespace, "kube.pod_placement", label_selector="app=bare", scheduled=True)
    assert by_client.status is Status.FAILED
    assert by_client.feedback == (
        f"pod bare was pinned to node {gpu_nodes[0]}: spec.nodeName was written by labctl, not bound by "
        "the scheduler; let the scheduler choose"
    )


def test_a_job_held_back_by_the_quota_queued(kube: Kube, namespace: str, gpu_nodes: list[str]) -> None:
    hard = {"requests.nvidia.com/gpu": "1"}
    kube.apply(quota(namespace, hard))
    wait_quota(kube, namespace, hard)
    spec = pod_spec(gpus=1, tolerate_gpu=True, nodeSelector=GPU_NODE)
    kube.apply(job(namespace, "first", spec, annotations=HOLD))
    wait_bound(kube, namespace, "first")
    kube.apply(job(namespace, "second", spec, annotations=HOLD))
    kube.wait_for(
        lambda: kube.list(
            "v1", "Event", namespace=namespace,
            field_selector="involvedObject.kind=Job,involvedObject.name=second,reason=FailedCreate",
        ),
        timeout=60,
        what="the quota to refuse Job second's pod",
    )  # fmt: skip

    held = grade(kube, namespace, "kube.job_queued", job="second", held_by="quota", resource=GPU)
    assert held.status is Status.PASSED, held.feedback
    assert held.feedback.startswith(
        'Job second queued: a ResourceQuota held its pod back (Error creating: pods "second-'
    )
    assert "exceeded quota: lab-quota, requested: requests.nvidia.com/gpu=1" in held.feedback
    assert pods_of(kube, namespace, "second") == []  # refused, so never created: nothing overcommitted

    not_for_cpu = grade(kube, namespace, "kube.job_queued", job="second", held_by="quota", resource="cpu")
    assert not_for_cpu.status is Status.FAILED
    assert not_for_cpu.feedback.startswith("Job second waited, but never for cpu: Error creating: pods")

    by_scheduler = grade(kube, namespace, "kube.job_queued", job="second")
    assert by_scheduler.status is Status.FAILED
    assert by_scheduler.feedback.startswith(
        "Job second did not queue: none of its pods was ever unschedulable"
    )
    either = grade(kube, namespace, "kube.job_queued", job="second", held_by="either")
    assert either.status is Status.PASSED, either.feedback

    first = grade(kube, namespace, "kube.job_queued", job="first", held_by="quota")
    assert first.status is Status.FAILED
    assert first.feedback == (
        "Job first did not queue: no ResourceQuota ever held it back (no 'exceeded quota' FailedCreate "
        "event), so it got its resources at once. Did it request what your namespace had no room left for?"
    )

    in_use = grade(
        kube, namespace, "kube.quota_respected", name="lab-quota", min_used={"requests.nvidia.com/gpu": 1}
    )
    assert in_use.status is Status.PASSED, in_use.feedback
    assert in_use.feedback == "within quota (1 resource(s) checked) with requests.nvidia.com/gpu: 1 in use"


def test_quota_in_use_at_least(kube: Kube, namespace: str) -> None:
    hard = {"requests.nvidia.com/gpu": "1"}
    kube.apply(quota(namespace, hard))
    wait_quota(kube, namespace, hard)
    idle = grade(kube, namespace, "kube.quota_respected", min_used={"requests.nvidia.com/gpu": 1})
    assert idle.status is Status.FAILED
    assert idle.feedback == (
        "requests.nvidia.com/gpu: 0 in use of 1 allowed by lab-quota; expected at least 1 in use"
    )


def test_object_bounds_presence_and_age(kube: Kube, namespace: str) -> None:
    labels = {"app": "model"}
    kube.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "model", "namespace": namespace},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": pod_spec()},
            },
        }
    )
    target = {"api_version": "apps/v1", "kind": "Deployment", "name": "model"}
    ok = grade(
        kube,
        namespace,
        "kube.object",
        **target,
        at_least={"spec.replicas": 2, "spec.template.spec.containers.0.resources.requests.memory": "64Mi"},
        present=["spec.template.spec.containers.0.resources.requests.cpu"],
        created_after=(dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat(),
    )
    assert ok.status is Status.PASSED, ok.feedback
    assert ok.feedback == (
        "Deployment model exists with spec.replicas = 2 (at least 2), "
        "spec.template.spec.containers.0.resources.requests.memory = '64Mi' (at least '64Mi'), "
        "spec.template.spec.containers.0.resources.requests.cpu set"
    )

    short = grade(
        kube,
        namespace,
        "kube.object",
        **target,
        at_least={"spec.replicas": 3, "status.unknownField": 1},
        present=["spec.template.spec.containers.0.readinessProbe"],
    )
    assert short.status is Status.FAILED
    assert short.feedback == (
        "Deployment model: spec.replicas is 2, expected at least 3; status.unknownField is not set "
        "(expected at least 1); spec.template.spec.containers.0.readinessProbe is not set"
    )

    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    stale = grade(kube, namespace, "kube.object", **target, created_after=later.isoformat())
    assert stale.status is Status.FAILED
    assert stale.feedback.startswith("Deployment model was created at ")
    assert stale.feedback.endswith(
        f"before your session started ({later.strftime('%Y-%m-%d %H:%M:%S')} UTC): "
        "delete it and create it again as the lab asks"
    )
