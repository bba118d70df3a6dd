"""`labctl install --dashboard` on a real API server: the dashboard's ServiceAccount may read labctl's
objects and review tokens, and nothing else (it never writes to the cluster)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from labctl.kube import Kube
from labctl.provision.dashboard import DASHBOARD_NAME, render_dashboard
from labctl.provision.install import DEFAULT_IMAGE
from labctl.provision.tenancy import CONTROLLER_NAMESPACE
from tests.conftest import ClusterUnderTest, cluster_args, labctl

USER = f"system:serviceaccount:{CONTROLLER_NAMESPACE}:{DASHBOARD_NAME}"


@pytest.fixture
def installed(test_cluster: ClusterUnderTest, kube: Kube) -> Iterator[str]:
    out = labctl("install", "--local-controller", "--dashboard", *cluster_args(test_cluster)).stdout
    yield out
    for obj in reversed(render_dashboard(DEFAULT_IMAGE)):
        kube.delete(obj["apiVersion"], obj["kind"], obj["metadata"]["name"], obj["metadata"].get("namespace"))


def may(
    kube: Kube, verb: str, resource: str, group: str = "labctl.dev", namespace: str | None = None
) -> bool:
    attributes = {
        "verb": verb,
        "resource": resource,
        "group": group,
        **({"namespace": namespace} if namespace else {}),
    }
    review = kube.create(
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {"user": USER, "groups": ["system:serviceaccounts"], "resourceAttributes": attributes},
        }
    )
    return bool((review.get("status") or {}).get("allowed"))


def test_the_dashboard_is_installed_read_only(installed: str, kube: Kube) -> None:
    assert (
        f"deployment.apps/{DASHBOARD_NAME} created" in installed
        or "deployment.apps/labctl-dashboard" in installed
    )
    deployment = kube.get("apps/v1", "Deployment", DASHBOARD_NAME, CONTROLLER_NAMESPACE)
    assert deployment is not None
    assert kube.get("v1", "Service", DASHBOARD_NAME, CONTROLLER_NAMESPACE) is not None
    for kind in ("cohorts", "learners", "labsessions", "gradeattempts"):
        assert may(kube, "list", kind) and may(kube, "watch", kind)
        for verb in ("create", "patch", "update", "delete"):
            assert not may(kube, verb, kind), f"the dashboard may {verb} {kind}"
    assert may(kube, "create", "tokenreviews", "authentication.k8s.io")
    assert may(kube, "create", "subjectaccessreviews", "authorization.k8s.io")
    assert not may(kube, "get", "secrets", "", CONTROLLER_NAMESPACE)
    assert not may(kube, "create", "pods", "", "default")
