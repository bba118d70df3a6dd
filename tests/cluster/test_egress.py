"""Learners' egress on a real control plane: what the controller writes, and what learners may not.

No data plane here (kwok), so no packet is judged: what the policies let through is computed by
cyclonus (tests/unit/test_egress_reachability.py) and, on a cluster whose CNI enforces them,
tested with traffic (test_egress_traffic.py). Here: the cohort's egress reaches the learner's
policies, the API server's real endpoints are in them and kept there, and a learner's own
NetworkPolicy may not open what labctl's keep closed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from labctl.controller.apiserver import ApiServerWatch, sync_policies
from labctl.kube import Kube
from labctl.provision.egress import (
    API_SERVER_POLICY,
    LEARNER_POLICY,
    PROMETHEUS_API_SERVER_POLICY,
    ApiServer,
    api_server_of,
    api_server_rules,
    render_api_server_policies,
)
from labctl.provision.naming import learner_name
from labctl.provision.policies import LEARNER_EGRESS_MESSAGE
from tests.cluster.test_cohorts import create, forbidden, learner_client, roster, unique
from tests.conftest import ClusterUnderTest, cluster_args, labctl

pytestmark = pytest.mark.usefixtures("controller")

NETPOL = "networking.k8s.io/v1"


@pytest.fixture(scope="module")
def learner(
    test_cluster: ClusterUnderTest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Kube, str]]:
    """One learner of a cohort whose pods may reach the internet, with their own kubeconfig."""
    tmp = tmp_path_factory.mktemp("egress")
    name = unique("eg")
    create(test_cluster, name, roster(tmp, "eve@uni.edu"), "--egress", "internet")
    try:
        yield learner_client(test_cluster, name, "eve@uni.edu", tmp), learner_name(name, "eve@uni.edu")
    finally:
        labctl("cohort", "delete", name, "--yes", *cluster_args(test_cluster))


def live_api_server(kube: Kube) -> ApiServer:
    slices = kube.list(
        "discovery.k8s.io/v1",
        "EndpointSlice",
        namespace="default",
        label_selector="kubernetes.io/service-name=kubernetes",
    )
    return api_server_of(slices)


def egress_of(kube: Kube, name: str, namespace: str) -> list[dict[str, Any]]:
    policy = kube.get(NETPOL, "NetworkPolicy", name, namespace)
    assert policy is not None, f"NetworkPolicy {namespace}/{name} missing"
    return list(policy["spec"].get("egress") or [])


def test_the_cohorts_egress_and_the_api_servers_endpoints_reach_the_learners_policies(
    learner: tuple[Kube, str], kube: Kube
) -> None:
    _, ns = learner
    wider = egress_of(kube, LEARNER_POLICY, ns)
    blocks = [peer["ipBlock"] for rule in wider for peer in rule.get("to") or [] if "ipBlock" in peer]
    assert {b["cidr"] for b in blocks} == {"0.0.0.0/0", "::/0"}, wider  # --egress internet
    assert all("169.254.0.0/16" in b["except"] or "fe80::/10" in b["except"] for b in blocks)
    api_server = live_api_server(kube)
    assert api_server.endpoints, "the sim's kubernetes Service has endpoints"
    for name in (API_SERVER_POLICY, PROMETHEUS_API_SERVER_POLICY):
        # What the API server stored: the ports' protocol and the /32 exactly as rendered.
        assert egress_of(kube, name, ns) == api_server_rules(api_server), name


def test_a_learner_may_restrict_their_pods_but_not_open_egress_beyond_their_namespace(
    learner: tuple[Kube, str],
) -> None:
    client, ns = learner

    def policy(name: str, egress: list[dict[str, Any]]) -> dict[str, Any]:
        spec = {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"], "egress": egress}
        return {
            "apiVersion": NETPOL,
            "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns},
            "spec": spec,
        }

    wide: dict[str, list[dict[str, Any]]] = {
        "allow-all": [{}],
        "empty-to": [{"to": [], "ports": [{"port": 80, "protocol": "TCP"}]}],
        "metadata": [{"to": [{"ipBlock": {"cidr": "169.254.169.254/32"}}]}],
        "other-namespaces": [{"to": [{"namespaceSelector": {}}]}],
        "mixed": [{"to": [{"podSelector": {}}]}, {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}],
    }
    for name, egress in wide.items():
        message = forbidden(partial(client.apply, policy(name, egress)))
        assert LEARNER_EGRESS_MESSAGE in message, message
        assert client.get(NETPOL, "NetworkPolicy", name, ns) is None
    # Their own pods only, and a deny-all: restricting is theirs to do.
    assert (
        client.apply(policy("web-to-db", [{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}]}])).action
        == "created"
    )
    assert client.apply(policy("web-offline", [])).action == "created"
    # ...and an allowed policy cannot be widened afterwards.
    message = forbidden(lambda: client.apply(policy("web-to-db", [{}])))
    assert LEARNER_EGRESS_MESSAGE in message
    # Ingress is theirs: a policy without egress rules passes.
    ingress = {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{}]}
    open_ingress = {
        "apiVersion": NETPOL,
        "kind": "NetworkPolicy",
        "metadata": {"name": "in", "namespace": ns},
    }
    assert client.apply({**open_ingress, "spec": ingress}).action == "created"


def test_labctls_egress_policies_are_the_controllers_alone(learner: tuple[Kube, str]) -> None:
    client, ns = learner
    live = client.get(NETPOL, "NetworkPolicy", LEARNER_POLICY, ns)
    assert live is not None
    forbidden(lambda: client.delete(NETPOL, "NetworkPolicy", API_SERVER_POLICY, ns))
    forbidden(lambda: client.delete(NETPOL, "NetworkPolicy", "labctl-default-deny-egress", ns))


def test_the_api_servers_endpoints_are_watched_and_stale_policies_brought_back(
    learner: tuple[Kube, str], kube: Kube
) -> None:
    """The watch reports the live endpoints; a policy written with an address the control plane no
    longer has (as after a control-plane node is replaced) is applied again, and only it."""
    _, ns = learner
    seen: list[ApiServer] = []
    called = threading.Event()

    def on_change(api_server: ApiServer) -> None:
        seen.append(api_server)
        called.set()

    watch = ApiServerWatch(kube)
    watch.start(on_change)
    try:
        assert watch.current(timeout=30) == live_api_server(kube)
        assert called.wait(30) and seen[0] == live_api_server(kube)
    finally:
        watch.stop()
    live = kube.get(NETPOL, "NetworkPolicy", API_SERVER_POLICY, ns)
    assert live is not None
    labels = dict(live["metadata"]["labels"])
    gone = ApiServer.of([("10.255.255.1", 6443)])
    stale = next(
        p for p in render_api_server_policies(ns, labels, gone) if p["metadata"]["name"] == API_SERVER_POLICY
    )
    kube.apply(stale)
    assert egress_of(kube, API_SERVER_POLICY, ns) == api_server_rules(gone)
    assert sync_policies(kube, live_api_server(kube)) >= 1
    assert egress_of(kube, API_SERVER_POLICY, ns) == api_server_rules(live_api_server(kube))
    assert sync_policies(kube, live_api_server(kube)) == 0  # all current: nothing written


def test_cohort_manifests_carry_egress_and_refuse_unknown_modes(
    tmp_path: Path, test_cluster: ClusterUnderTest
) -> None:
    manifest = tmp_path / "cohort.yaml"
    manifest.write_text(
        "apiVersion: labctl.dev/v1alpha1\nkind: Cohort\nmetadata: {name: eg-bad}\n"
        "spec:\n  level: foundation\n  egress: everywhere\n  learners: [{email: a@uni.edu}]\n"
    )
    proc = labctl("cohort", "apply", "-f", str(manifest), *cluster_args(test_cluster), check=False)
    assert proc.returncode == 2, proc.stderr
    assert "cohort.yaml: egress:" in proc.stderr and "'internet'" in proc.stderr, proc.stderr
    assert labctl("cohort", "list", *cluster_args(test_cluster)).stdout.count("eg-bad") == 0
