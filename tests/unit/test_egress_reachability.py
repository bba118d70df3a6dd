"""Who may reach whom under the NetworkPolicies labctl renders, as an outside engine computes it.

No CNI on this machine enforces NetworkPolicy, so traffic cannot prove the egress rules here.
cyclonus (github.com/mattfenwick/cyclonus v0.5.6, built by `labctl toolchain build`) evaluates
policies as the NetworkPolicy API defines them: it is fed exactly the objects labctl renders for
two learners of a cohort and for the platform (`labctl install`'s, the sandbox's deny-all
included), a pod of each kind in each namespace and addresses outside the cluster, and asked
about each connection. Every verdict asserted here is cyclonus's. A control run without the
egress policies shows that the same questions come out open: the answers are the policies'.

Real packets, on a cluster whose CNI enforces policies: tests/cluster/test_egress_traffic.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import pytest

from labctl.api.v1alpha1 import EgressMode
from labctl.provision import install
from labctl.provision.cohort_learners import render_learners
from labctl.provision.egress import ApiServer
from labctl.provision.learner import render_learner_objects
from labctl.provision.stacks import alertmanager, mlflow_server, object_store, prometheus
from labctl.provision.tenancy import MONITORING_LABEL
from labctl.sandbox import pod as sandbox_pod
from tests.helpers.cyclonus import Connection, External, Pod, Verdict, reachability

MODES: tuple[EgressMode, ...] = get_args(EgressMode)
NAME_LABEL = "kubernetes.io/metadata.name"  # the API server labels every namespace so
API = ApiServer.of([("172.18.0.2", 6443)])  # a kind control plane; EKS: the ENIs' addresses, 443

EXTERNAL = {
    "aws-metadata": "169.254.169.254",
    "ecs-credentials": "169.254.170.2",
    "eks-pod-identity": "169.254.170.23",
    "aws-metadata-v6": "fd00:ec2::254",
    "eks-pod-identity-v6": "fd00:ec2::23",
    "alibaba-metadata": "100.100.100.200",
    "oci-classic-metadata": "192.0.0.192",
    "link-local": "169.254.1.1",
    "link-local-v6": "fe80::1",
    "api-server": "172.18.0.2",  # 6443 is the API server; 10250 on the same node its kubelet
    "node": "10.0.0.5",
    "internet": "93.184.215.14",
    "internet-v6": "2606:4700::1111",
}
METADATA = [
    "aws-metadata",
    "ecs-credentials",
    "eks-pod-identity",
    "aws-metadata-v6",
    "eks-pod-identity-v6",
    "alibaba-metadata",
    "oci-classic-metadata",
    "link-local",
    "link-local-v6",
]


def _learner(mode: EgressMode, email: str) -> dict[str, Any]:
    cohort = {
        "apiVersion": "labctl.dev/v1alpha1",
        "kind": "Cohort",
        "metadata": {"name": "ml26"},
        "spec": {
            "level": "professional",
            "egress": mode,
            "learners": [{"email": "ada@uni.edu"}, {"email": "bob@uni.edu"}],
        },
    }
    return next(lr for lr in render_learners(cohort) if lr["spec"]["email"] == email)


class World:
    """Namespaces with their labels, a pod of each kind, and every policy labctl renders."""

    def __init__(self, mode: EgressMode) -> None:
        self.namespaces: dict[str, dict[str, str]] = {}
        self.pods: dict[str, Pod] = {}
        self.policies: list[dict[str, Any]] = []
        for who in ("ada", "bob"):
            objects = render_learner_objects(_learner(mode, f"{who}@uni.edu"), key=b"k", api_server=API)
            namespace = objects[0]["metadata"]["name"]
            self._namespace(namespace, objects[0]["metadata"]["labels"])
            for obj in objects:
                if obj["kind"] == "Deployment":
                    labels = obj["spec"]["template"]["metadata"]["labels"]
                    self._pod(f"{who}/{obj['metadata']['name']}", namespace, labels)
            self._pod(f"{who}/trainer", namespace, {"app": "trainer"})  # the learner's own pods
            self._pod(f"{who}/model", namespace, {"app": "model-server"})
            self.policies += [o for o in objects if o["kind"] == "NetworkPolicy"]
        platform = install.render_install(controller=True)
        for obj in platform:
            if obj["kind"] == "Namespace":
                self._namespace(obj["metadata"]["name"], obj["metadata"].get("labels") or {})
        self.policies += [o for o in platform if o["kind"] == "NetworkPolicy"]
        controller = next(o for o in platform if o["kind"] == "Deployment")
        self._pod(
            "controller", install.CONTROLLER_NAMESPACE, controller["spec"]["template"]["metadata"]["labels"]
        )
        self._pod("sandbox", sandbox_pod.NAMESPACE, sandbox_pod.LABELS)
        self._namespace("kube-system", {})
        self._pod("coredns", "kube-system", {"k8s-app": "kube-dns"})
        self._pod("metrics-server", "kube-system", {"k8s-app": "metrics-server"})
        self._namespace("monitoring", {MONITORING_LABEL: "true"})  # a cluster-wide Prometheus
        self._pod("cluster-prometheus", "monitoring", {"app": "prometheus"})
        self._namespace("course-data", {})  # a shared service of the course, outside labctl
        self._pod("datasets", "course-data", {"app": "datasets"})

    def _namespace(self, name: str, labels: dict[str, str]) -> None:
        self.namespaces[name] = {**labels, NAME_LABEL: name}

    def _pod(self, key: str, namespace: str, labels: dict[str, str]) -> None:
        self.pods[key] = Pod(
            namespace, dict(labels), f"10.244.{len(self.pods) // 250}.{len(self.pods) % 250 + 2}"
        )

    def peer(self, name: str) -> Pod | External:
        return self.pods[name] if name in self.pods else External(EXTERNAL[name])


Query = tuple[str, str, int, str]  # source pod, destination (pod or EXTERNAL), port, protocol


def q(source: str, destination: str, port: int, protocol: str = "TCP") -> Query:
    return (source, destination, port, protocol)


def judge(
    world: World, queries: list[Query], tmp: Path, *, without_egress: bool = False
) -> dict[Query, Verdict]:
    policies = world.policies
    if without_egress:  # the control: every egress policy of the learners' namespaces left out
        policies = [p for p in policies if "Egress" not in p["spec"]["policyTypes"]]
    connections = [
        Connection(world.pods[s], world.peer(d), port, protocol) for s, d, port, protocol in queries
    ]
    return dict(zip(queries, reachability(policies, world.namespaces, connections, tmp), strict=True))


# What a learner's pod must reach in every mode.
OPEN = [
    q("ada/trainer", "ada/mlflow", mlflow_server.PORT),
    q("ada/trainer", "ada/object-store", object_store.PORT),
    q("ada/trainer", "ada/prometheus", prometheus.PORT),
    q("ada/trainer", "ada/alertmanager", alertmanager.PORT),
    q("ada/trainer", "ada/model", 8080),
    q("ada/trainer", "coredns", 53, "UDP"),
    q("ada/trainer", "coredns", 53, "TCP"),
    q("ada/trainer", "api-server", 6443),
]
# What no learner pod may reach in any mode.
CLOSED = [
    *(q("ada/trainer", m, 80) for m in METADATA),
    q("ada/trainer", "bob/trainer", 8080),
    q("ada/trainer", "bob/model", 8080),
    q("ada/trainer", "bob/mlflow", mlflow_server.PORT),
    q("ada/trainer", "bob/object-store", object_store.PORT),
    q("ada/trainer", "controller", install.METRICS_PORT),
    q("ada/trainer", "sandbox", 8080),
    q("ada/trainer", "coredns", 9153),  # CoreDNS's metrics: DNS is 53 only
    q("ada/trainer", "metrics-server", 443),
    q("ada/trainer", "cluster-prometheus", 9090),
    q("ada/trainer", "api-server", 10250),  # the API server's node, but its kubelet
    q("ada/trainer", "node", 22),
]
# What the cohort's egress opens: mode -> reachable.
WIDER = {
    q("ada/trainer", "datasets", 80): {"none": False, "cluster": True, "internet": True},
    q("ada/trainer", "internet", 443): {"none": False, "cluster": False, "internet": True},
    q("ada/trainer", "internet-v6", 443): {"none": False, "cluster": False, "internet": True},
}
# Each stack reaches only what it needs (in the widest mode: the learner's setting is not theirs).
STACKS = {
    q("ada/mlflow", "ada/object-store", object_store.PORT): True,  # artifacts
    q("ada/mlflow", "coredns", 53, "UDP"): True,  # the store's Service name
    q("ada/mlflow", "ada/model", 8080): False,
    q("ada/mlflow", "api-server", 6443): False,
    q("ada/mlflow", "internet", 443): False,
    q("ada/mlflow", "aws-metadata", 80): False,
    q("ada/prometheus", "ada/model", 8080): True,  # scrapes the learner's model server
    q("ada/prometheus", "ada/alertmanager", alertmanager.PORT): True,
    q("ada/prometheus", "api-server", 6443): True,  # service discovery
    q("ada/prometheus", "coredns", 53, "UDP"): True,
    q("ada/prometheus", "bob/model", 8080): False,
    q("ada/prometheus", "internet", 443): False,
    q("ada/prometheus", "aws-metadata", 80): False,
    q("ada/object-store", "ada/mlflow", mlflow_server.PORT): False,
    q("ada/object-store", "coredns", 53, "UDP"): False,
    q("ada/object-store", "internet", 443): False,
    q("ada/object-store", "api-server", 6443): False,
    q("ada/alertmanager", "ada/prometheus", prometheus.PORT): False,
    q("ada/alertmanager", "internet", 443): False,
    q("ada/alertmanager", "aws-metadata", 80): False,
}
# Who reaches the learner's services from outside their namespace: grading and monitoring.
INTO = {
    q("controller", "ada/mlflow", mlflow_server.PORT): True,  # in-cluster checks by Service DNS
    q("controller", "ada/model", 8080): True,
    q("cluster-prometheus", "ada/model", 8080): True,
    q("sandbox", "ada/mlflow", mlflow_server.PORT): False,  # learner code run by a grader
    q("bob/trainer", "ada/mlflow", mlflow_server.PORT): False,
}

ALL = [*OPEN, *CLOSED, *WIDER, *STACKS, *INTO]


@pytest.fixture(scope="module", params=MODES)
def verdicts(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:
    mode = request.param
    return mode, judge(World(mode), ALL, tmp_path_factory.mktemp(f"cyclonus-{mode}"))


def show(verdict: Verdict) -> str:
    return f"allowed={verdict.allowed} rows={sorted(verdict.rows)}"


def test_a_learner_pod_reaches_its_stacks_dns_and_the_api_server(verdicts: tuple[str, dict]) -> None:
    mode, table = verdicts
    for query in OPEN:
        assert table[query].allowed, f"{mode}: {query} should be reachable: {show(table[query])}"


def test_metadata_other_learners_and_the_platform_are_unreachable(verdicts: tuple[str, dict]) -> None:
    """Denied by the learner's own egress policies, whatever the destination's ingress says."""
    mode, table = verdicts
    for query in CLOSED:
        assert not table[query].allowed, f"{mode}: {query} is reachable: {show(table[query])}"
        assert not table[query].allowed_by("Egress"), (
            f"{mode}: {query}: egress allows it: {show(table[query])}"
        )


def test_the_cohorts_egress_opens_other_namespaces_then_the_internet(verdicts: tuple[str, dict]) -> None:
    mode, table = verdicts
    for query, by_mode in WIDER.items():
        assert table[query].allowed is by_mode[mode], f"{mode}: {query}: {show(table[query])}"


def test_each_stack_reaches_only_what_it_needs(verdicts: tuple[str, dict]) -> None:
    mode, table = verdicts
    for query, reachable in STACKS.items():
        assert table[query].allowed is reachable, f"{mode}: {query}: {show(table[query])}"


def test_graders_and_monitoring_still_reach_the_learners_services(verdicts: tuple[str, dict]) -> None:
    mode, table = verdicts
    for query, reachable in INTO.items():
        assert table[query].allowed is reachable, f"{mode}: {query}: {show(table[query])}"


def test_control_without_the_egress_policies_the_same_questions_come_out_open(tmp_path: Path) -> None:
    """The verdicts above are the egress policies' doing: without them cyclonus lets a learner's
    pod reach the metadata service, the internet, and the controller and other learners' pods as
    far as its own side goes (their ingress policies still refuse)."""
    world = World("none")
    queries = [*CLOSED, *WIDER, *STACKS]
    table = judge(world, queries, tmp_path, without_egress=True)
    for name in [*METADATA, "node"]:
        assert table[q("ada/trainer", name, 80 if name != "node" else 22)].allowed
    for query in [*WIDER, q("ada/mlflow", "internet", 443)]:
        assert table[query].allowed, f"{query}: {show(table[query])}"
    # The controller's own ingress policy (monitoring namespaces only) still refuses the learner.
    for query in [*CLOSED, q("ada/trainer", "controller", install.METRICS_PORT)]:
        assert table[query].allowed_by("Egress"), f"{query}: {show(table[query])}"
    assert not table[q("ada/trainer", "bob/mlflow", mlflow_server.PORT)].allowed  # Bob's ingress


def test_a_learners_own_allow_all_egress_policy_would_reopen_metadata(tmp_path: Path) -> None:
    """Why learners may not write egress rules beyond their namespace (the labctl-learner-egress
    admission policy; tests/cluster/test_egress.py shows the API server refusing them)."""
    world = World("none")
    namespace = world.pods["ada/trainer"].namespace
    world.policies.append(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "mine", "namespace": namespace},
            "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]},
        }
    )
    table = judge(world, [q("ada/trainer", "aws-metadata", 80)], tmp_path)
    assert table[q("ada/trainer", "aws-metadata", 80)].allowed
