"""The rendered stacks on a real control plane: admitted under Pod Security ``restricted``,
inside the smallest quota, and their Deployments become ready (on the sim, kwok plays the pods).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from labctl.kube import Kube
from labctl.provision.quota import profile
from labctl.provision.stacks import (
    STACK_COMPONENTS,
    ObjectStoreCredentials,
    StackSettings,
    render_stacks,
    stack_readiness,
)
from labctl.provision.tenancy import learner_labels, render_guardrails
from tests.helpers.typed_api import core_api

RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}
CREDS = ObjectStoreCredentials(access_key="labtestaccesskey0001", secret_key="test-secret-key-not-for-use")


@pytest.fixture
def volumes(kube: Kube) -> Iterator[Callable[[list[dict[str, Any]]], None]]:
    """Does what a volume provisioner would: one PersistentVolume bound to each claim.

    The simulated cluster has no provisioner, so claims would stay Pending and their pods
    unschedulable. Nothing mounts these volumes: kwok's pods do not run.
    """
    made: list[str] = []

    def provision(objects: list[dict[str, Any]]) -> None:
        for claim in (o for o in objects if o["kind"] == "PersistentVolumeClaim"):
            meta = claim["metadata"]
            name = f"{meta['namespace']}-{meta['name']}"
            kube.apply(
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolume",
                    "metadata": {"name": name, "labels": {"labctl.dev/test": "true"}},
                    "spec": {
                        "capacity": {"storage": claim["spec"]["resources"]["requests"]["storage"]},
                        "accessModes": claim["spec"]["accessModes"],
                        "persistentVolumeReclaimPolicy": "Retain",
                        "storageClassName": claim["spec"].get("storageClassName", ""),
                        "hostPath": {"path": f"/var/lib/labctl-test-volumes/{name}"},
                        "claimRef": {"namespace": meta["namespace"], "name": meta["name"]},
                    },
                }
            )
            made.append(name)

    yield provision
    for name in made:
        kube.delete("v1", "PersistentVolume", name)


def learner_namespace(kube: Kube, namespace_factory: Callable[..., str]) -> str:
    """A namespace like a learner's: restricted, with labctl's quota and limits in force."""
    namespace = namespace_factory("stacks", labels=RESTRICTED)
    kube.apply(render_guardrails(namespace, cohort="t", quota=profile("small")))
    # Until the quota controller has computed usage, admission refuses what the quota counts.
    kube.wait_for(
        lambda: ((kube.get("v1", "ResourceQuota", "labctl-quota", namespace) or {}).get("status") or {}).get(
            "hard"
        ),
        timeout=30,
        what=f"quota status in {namespace}",
    )
    return namespace


def templates(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o["spec"]["template"] for o in objects if o["kind"] == "Deployment"}


def dry_run_pod(kube: Kube, namespace: str, name: str, template: dict[str, Any]) -> None:
    """Ask admission about the pod a Deployment would make, with the pod's own error message
    (a Deployment is admitted either way; only its ReplicaSet's pod creates would fail)."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {**template["metadata"], "name": name}}
    pod["spec"] = template["spec"]
    core_api(kube).create_namespaced_pod(namespace, pod, dry_run="All")


def wait_ready(kube: Kube, namespace: str, components: tuple[str, ...] = STACK_COMPONENTS) -> None:
    def ready() -> bool:
        live = kube.list("apps/v1", "Deployment", namespace=namespace)
        return all(stack_readiness(live, expected=components).values())

    kube.wait_for(ready, timeout=90, what=f"stack Deployments ready in {namespace}")


def test_stacks_are_admitted_under_restricted_fit_the_quota_and_become_ready(
    kube: Kube, namespace_factory: Callable[..., str], volumes: Callable[[list[dict[str, Any]]], None]
) -> None:
    namespace = learner_namespace(kube, namespace_factory)
    objects = render_stacks(namespace, learner_labels("t", namespace), CREDS, StackSettings())
    volumes(objects)
    kube.apply(objects)  # the Deployments are admitted whatever their pods are like: ask for those
    for name, template in templates(objects).items():
        dry_run_pod(kube, namespace, f"{name}-dry-run", template)
    wait_ready(kube, namespace)
    pods = kube.list("v1", "Pod", namespace=namespace)
    assert sorted(p["metadata"]["labels"]["labctl.dev/stack"] for p in pods) == sorted(STACK_COMPONENTS)
    claims = kube.list("v1", "PersistentVolumeClaim", namespace=namespace)
    assert {c["metadata"]["name"]: c["status"]["phase"] for c in claims} == {
        "mlflow-data": "Bound",
        "object-store-data": "Bound",
    }


def test_without_persistence_the_stacks_need_no_volumes(
    kube: Kube, namespace_factory: Callable[..., str]
) -> None:
    namespace = learner_namespace(kube, namespace_factory)
    settings = StackSettings(persistence=False, enabled=("object-store", "mlflow"))
    kube.apply(render_stacks(namespace, learner_labels("t", namespace), CREDS, settings))
    wait_ready(kube, namespace, ("object-store", "mlflow"))
    assert kube.list("v1", "PersistentVolumeClaim", namespace=namespace) == []


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        (lambda c: c["securityContext"].update(allowPrivilegeEscalation=True), "allowPrivilegeEscalation"),
        (lambda c: c["securityContext"].update(capabilities={"drop": []}), "capabilities"),
        (lambda c: c["securityContext"].update(runAsUser=0), "runAsUser"),
    ],
)
def test_the_namespace_really_enforces_restricted(
    kube: Kube, namespace_factory: Callable[..., str], change: Callable[[dict[str, Any]], None], rule: str
) -> None:
    """The same templates, made non-compliant, are refused: the admission test above means something."""
    namespace = namespace_factory("enforce", labels=RESTRICTED)
    template = copy.deepcopy(templates(render_stacks(namespace, {}, CREDS, StackSettings()))["mlflow"])
    change(template["spec"]["containers"][0])
    with pytest.raises(ApiException) as refused:
        dry_run_pod(kube, namespace, "mlflow-dry-run", template)
    assert refused.value.status == 403 and "violates PodSecurity" in str(refused.value.body)
    assert rule in str(refused.value.body)
