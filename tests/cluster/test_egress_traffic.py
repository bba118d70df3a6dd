"""Learners' egress judged by real packets, on a cluster whose CNI enforces NetworkPolicy.

Runs where ``LABCTL_TEST_KUBECONFIG`` names such a cluster (Calico, Cilium, …) and
``LABCTL_TEST_NETWORKPOLICY=enforced`` says so (the convention of
tests/e2e/test_sandbox_pod_e2e.py); skipped otherwise, since neither kwok nor this machine's
bridge CNI enforces policies: there, tests/unit/test_egress_reachability.py computes the same
answers with cyclonus.

Pods run the image ``LABCTL_TEST_PROBE_IMAGE`` (default: ``LABCTL_SANDBOX_IMAGE``, else the
controller's image; it needs ``python3``), which the cluster must be able to pull or have loaded.
A learner's probe pod is created with their own kubeconfig; listeners stand in each kind of
namespace. A connection is "open" when it is accepted, "refused" when a host answered with a
reset (reached, nothing listening), "blocked" when it times out: what a dropping policy does.
A control pod in a namespace with no policies asks the same questions, so a target that is not
there at all (no metadata service, no route to the internet) is told apart from one blocked.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labctl.kube import Kube
from labctl.provision import install
from labctl.provision.naming import learner_name
from labctl.provision.tenancy import CONTROLLER_NAMESPACE
from labctl.sandbox import pod as sandbox_pod
from tests.cluster.test_cohorts import create, learner_client, roster, unique
from tests.conftest import ClusterUnderTest, cluster_args, labctl, make_namespace

ENFORCED = os.environ.get("LABCTL_TEST_NETWORKPOLICY") == "enforced" and bool(
    os.environ.get("LABCTL_TEST_KUBECONFIG")
)
pytestmark = [
    pytest.mark.skipif(
        not ENFORCED,
        reason="needs a cluster whose CNI enforces NetworkPolicy: set LABCTL_TEST_KUBECONFIG and "
        "LABCTL_TEST_NETWORKPOLICY=enforced (here tests/unit/test_egress_reachability.py computes it)",
    ),
    pytest.mark.usefixtures("controller"),
    pytest.mark.timeout(900),
]

IMAGE = (
    os.environ.get("LABCTL_TEST_PROBE_IMAGE")
    or os.environ.get("LABCTL_SANDBOX_IMAGE")
    or install.DEFAULT_IMAGE
)
PORT = 8080
METADATA = "169.254.169.254"
INTERNET = "1.1.1.1"
SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
LISTEN = f"""
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", {PORT}))
s.listen(16)
while True:
    s.accept()[0].close()
"""
# argv[1]: JSON [[label, host, port], ...] -> prints JSON {label: open|refused|blocked|no-name}
PROBE = """
import json, os, socket, sys
out = {}
for label, host, port in json.loads(sys.argv[1]):
    host = host.replace("$API_HOST", os.environ.get("KUBERNETES_SERVICE_HOST", ""))
    port = int(str(port).replace("$API_PORT", os.environ.get("KUBERNETES_SERVICE_PORT", "443")))
    try:
        socket.getaddrinfo(host, port)
    except OSError:
        out[label] = "no-name"
        continue
    try:
        socket.create_connection((host, port), timeout=4).close()
        out[label] = "open"
    except ConnectionRefusedError:
        out[label] = "refused"
    except OSError:
        out[label] = "blocked"
print(json.dumps(out))
"""


def _pod(
    name: str, namespace: str, labels: dict[str, str], code: str, *args: str, server: bool
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "main",
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python3", "-c", code, *args],
        "resources": {
            "requests": {"cpu": "50m", "memory": "32Mi"},
            "limits": {"cpu": "200m", "memory": "64Mi"},
        },
        "securityContext": SECURITY,
    }
    if server:
        container["ports"] = [{"containerPort": PORT, "name": "probe"}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"restartPolicy": "Always" if server else "Never", "containers": [container]},
    }


def _wait(kube: Kube, name: str, namespace: str, phases: set[str], timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pod = kube.get("v1", "Pod", name, namespace) or {}
        status = pod.get("status") or {}
        if status.get("phase") in phases and (status.get("podIP") or "Running" not in phases):
            return pod
        time.sleep(1)
    raise AssertionError(f"pod {namespace}/{name} not {phases} within {timeout}s: {pod.get('status')}")


class Listeners:
    """A listener pod in each namespace; their IPs by label."""

    def __init__(self, admin: Kube) -> None:
        self.admin = admin
        self.ips: dict[str, str] = {}
        self._made: list[tuple[str, str]] = []

    def add(self, label: str, namespace: str, client: Kube | None = None) -> None:
        name = f"egress-listener-{uuid.uuid4().hex[:6]}"
        (client or self.admin).create(_pod(name, namespace, {"app": "egress-listener"}, LISTEN, server=True))
        self._made.append((name, namespace))
        self.ips[label] = _wait(self.admin, name, namespace, {"Running"})["status"]["podIP"]

    def close(self) -> None:
        for name, namespace in self._made:
            self.admin.delete("v1", "Pod", name, namespace)


def probe(
    client: Kube, admin: Kube, namespace: str, targets: list[tuple[str, str, int | str]]
) -> dict[str, str]:
    name = f"egress-probe-{uuid.uuid4().hex[:6]}"
    client.create(_pod(name, namespace, {"app": "egress-probe"}, PROBE, json.dumps(targets), server=False))
    try:
        _wait(admin, name, namespace, {"Succeeded", "Failed"})
        log = admin.logs(namespace, name, container="main").decode()
        return dict(json.loads(log.strip().splitlines()[-1]))
    finally:
        admin.delete("v1", "Pod", name, namespace)


@pytest.fixture(scope="module")
def world(
    test_cluster: ClusterUnderTest, kube: Kube, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """Two learners of an egress-none cohort, one of an egress-internet cohort, listeners in each
    learner namespace, in labctl-system and labctl-sandbox, and a namespace without policies."""
    tmp: Path = tmp_path_factory.mktemp("egress-traffic")
    closed, wide = unique("egn"), unique("egi")
    create(test_cluster, closed, roster(tmp, "ada@uni.edu", "bob@uni.edu"), "--egress", "none")
    create(test_cluster, wide, roster(tmp, "cid@uni.edu"), "--egress", "internet")
    listeners = Listeners(kube)
    free = make_namespace(kube, "egress-control")
    try:
        clients = {
            "ada": (
                learner_client(test_cluster, closed, "ada@uni.edu", tmp),
                learner_name(closed, "ada@uni.edu"),
            ),
            "bob": (
                learner_client(test_cluster, closed, "bob@uni.edu", tmp),
                learner_name(closed, "bob@uni.edu"),
            ),
            "cid": (
                learner_client(test_cluster, wide, "cid@uni.edu", tmp),
                learner_name(wide, "cid@uni.edu"),
            ),
        }
        for who, (client, ns) in clients.items():
            listeners.add(who, ns, client)
        listeners.add("controller-ns", CONTROLLER_NAMESPACE)
        sandbox_pod.ensure_namespace(kube)
        listeners.add("sandbox-ns", sandbox_pod.NAMESPACE)
        listeners.add("free-ns", free)
        yield {"clients": clients, "ips": listeners.ips, "free": free}
    finally:
        listeners.close()
        kube.delete("v1", "Namespace", free)
        for cohort in (closed, wide):
            labctl("cohort", "delete", cohort, "--yes", *cluster_args(test_cluster))


def targets(ips: dict[str, str]) -> list[tuple[str, str, int | str]]:
    return [
        ("own", ips["ada"], PORT),
        ("other-learner", ips["bob"], PORT),
        ("other-cohort", ips["cid"], PORT),
        ("controller-ns", ips["controller-ns"], PORT),
        ("sandbox-ns", ips["sandbox-ns"], PORT),
        ("free-ns", ips["free-ns"], PORT),
        ("dns", "kubernetes.default.svc.cluster.local", "$API_PORT"),  # resolved: DNS works
        ("api-server", "$API_HOST", "$API_PORT"),
        ("metadata", METADATA, 80),
        ("internet", INTERNET, 443),
    ]


def test_a_learners_pod_reaches_its_namespace_dns_and_the_api_server_only(
    world: dict[str, Any], kube: Kube
) -> None:
    client, ns = world["clients"]["ada"]
    seen = probe(client, kube, ns, targets(world["ips"]))
    control = probe(kube, kube, world["free"], targets(world["ips"]))
    assert seen["own"] == "open" and seen["dns"] != "no-name" and seen["api-server"] == "open", seen
    for label in ("other-learner", "other-cohort", "controller-ns", "sandbox-ns", "free-ns", "internet"):
        # The control proves each target answers when no policy is in the way.
        if control[label] == "open":
            assert seen[label] == "blocked", f"{label}: {seen} (control {control})"
    assert control["controller-ns"] == "open" and control["free-ns"] == "open", control
    if control["metadata"] == "blocked":
        pytest.skip(f"no metadata service answers on this cluster ({METADATA}): nothing to block")
    assert seen["metadata"] == "blocked", seen


def test_an_internet_cohort_reaches_public_addresses_but_not_other_learners_or_metadata(
    world: dict[str, Any], kube: Kube
) -> None:
    client, ns = world["clients"]["cid"]
    ips = {**world["ips"], "ada": world["ips"]["cid"], "cid": world["ips"]["ada"]}  # own is cid's
    seen = probe(client, kube, ns, targets(ips))
    control = probe(kube, kube, world["free"], targets(ips))
    assert seen["own"] == "open" and seen["api-server"] == "open", seen
    assert seen["other-cohort"] == "blocked" and seen["controller-ns"] == "blocked", seen
    assert seen["sandbox-ns"] == "blocked", seen
    assert seen["free-ns"] == "open", seen  # `internet` includes `cluster`: namespaces outside labctl
    if control["metadata"] != "blocked":
        assert seen["metadata"] == "blocked", seen
    if control["internet"] == "blocked":
        pytest.skip(f"this cluster has no route to {INTERNET}: internet egress cannot be shown")
    assert seen["internet"] == "open", seen
