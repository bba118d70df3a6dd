"""``labctl install`` is idempotent, and the controller runs in one place only.

Against the session's cluster, which the ``controller`` fixture installed with
``--local-controller``. The in-cluster Deployment made here is never Available on the sim (kwok
pretends to run it); on another cluster its image is not pulled either, unless that cluster has it.
"""

from __future__ import annotations

import os

import pytest

from labctl.kube import Kube
from labctl.provision.install import CONTROLLER_NAME
from labctl.provision.tenancy import CONTROLLER_NAMESPACE
from tests.conftest import ClusterUnderTest, ControllerProcess, cluster_args, labctl

DEPLOYMENT = f"deployment.apps/{CONTROLLER_NAME}"

pytestmark = pytest.mark.skipif(
    os.environ.get("LABCTL_TEST_CONTROLLER") == "in-cluster",
    reason="would replace the cluster's own in-cluster controller, which these tests run against",
)


def install(cluster: ClusterUnderTest, *flags: str) -> dict[str, str]:
    """Each object's action, as ``labctl install`` prints it: ``{"crd/x": "unchanged", ...}``."""
    out = labctl("install", *flags, *cluster_args(cluster)).stdout
    return dict(line.rsplit(" ", 1) for line in out.splitlines() if " " in line and "(" not in line)


def deleted_lines(cluster: ClusterUnderTest, *flags: str) -> list[str]:
    out = labctl("install", *flags, *cluster_args(cluster)).stdout
    return [line for line in out.splitlines() if " deleted" in line]


def test_a_second_install_changes_nothing(
    test_cluster: ClusterUnderTest, controller: ControllerProcess | None, kube: Kube
) -> None:
    actions = install(test_cluster, "--local-controller")
    assert actions and set(actions.values()) == {"unchanged"}, actions
    assert DEPLOYMENT not in actions

    pinned = ("--node-selector", "labctl.dev/pool=infra")
    first = install(test_cluster, *pinned)  # now with the in-cluster controller and its settings
    try:
        assert first[DEPLOYMENT] in ("created", "configured")
        deployment = kube.get("apps/v1", "Deployment", CONTROLLER_NAME, CONTROLLER_NAMESPACE)
        assert deployment is not None
        assert deployment["spec"]["template"]["spec"]["nodeSelector"] == {"labctl.dev/pool": "infra"}
        again = install(test_cluster, *pinned)
        assert set(again.values()) == {"unchanged"}, {k: v for k, v in again.items() if v != "unchanged"}
        assert again.keys() == first.keys()
    finally:
        # Back to one controller, the local one: --local-controller removes the Deployment.
        gone = deleted_lines(test_cluster, "--local-controller")
    assert gone == [f"{DEPLOYMENT} deleted (the controller runs locally now)"]
    assert kube.get("apps/v1", "Deployment", CONTROLLER_NAME, CONTROLLER_NAMESPACE) is None
    assert deleted_lines(test_cluster, "--local-controller") == []
