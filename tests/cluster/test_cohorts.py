"""Cohorts on a real control plane: provisioning, isolation, idempotency, bad input, deletion.

Learners act with the kubeconfig labctl gave them, the way a learner would.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from labctl.api.v1alpha1 import API_VERSION
from labctl.kube import Kube, KubeError
from labctl.provision.naming import learner_name
from tests.conftest import ClusterUnderTest, cluster_args, labctl
from tests.helpers.apiserver import write_counts
from tests.helpers.objects import RESTRICTED_SECURITY, pod, pod_spec
from tests.helpers.typed_api import api_client, core_api

pytestmark = pytest.mark.usefixtures("controller")


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:5]}"


def roster(tmp_path: Path, *emails: str) -> Path:
    path = tmp_path / "roster.csv"
    path.write_text("email,name\n" + "".join(f"{e},{e.split('@')[0].title()}\n" for e in emails))
    return path


def create(cluster: ClusterUnderTest, name: str, path: Path, *extra: str) -> Any:
    return labctl(
        "cohort",
        "create",
        name,
        "--roster",
        str(path),
        "--level",
        "advanced",
        "--wait",
        "--timeout",
        "120s",
        *extra,
        *cluster_args(cluster),
    )


def forbidden(call: Callable[[], Any]) -> str:
    """Run ``call``; it must be refused with 403. Returns the server's message."""
    with pytest.raises((KubeError, ApiException)) as exc:
        call()
    assert exc.value.status == 403, str(exc.value)
    return str(exc.value.body) if isinstance(exc.value, ApiException) else str(exc.value)


def learner_client(cluster: ClusterUnderTest, cohort: str, email: str, tmp_path: Path) -> Kube:
    out = tmp_path / f"{email}.kubeconfig"
    labctl(
        "learner", "kubeconfig", cohort, email, "--out", str(out), "--duration", "1h", *cluster_args(cluster)
    )
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    return Kube.connect(kubeconfig=str(out))


def test_a_cohort_reaches_ready_with_labelled_owned_objects(
    test_cluster: ClusterUnderTest, kube: Kube, tmp_path: Path
) -> None:
    name = unique("rdy")
    emails = ["Ada.Lovelace@uni.edu", "ada_lovelace@uni.edu", "grace@uni.edu"]
    out = create(test_cluster, name, roster(tmp_path, *emails))
    assert out.stdout.strip() == f"cohort.labctl.dev/{name} created"
    try:
        cohort = kube.get(API_VERSION, "Cohort", name)
        assert cohort["status"]["ready"] == 3 and cohort["status"]["learners"] == 3
        assert any(c["type"] == "Ready" and c["status"] == "True" for c in cohort["status"]["conditions"])
        for email in emails:
            ns = learner_name(name, email)
            learner = kube.get(API_VERSION, "Learner", ns)
            assert learner["metadata"]["ownerReferences"][0]["uid"] == cohort["metadata"]["uid"]
            assert learner["status"]["phase"] == "Ready"
            namespace = kube.get("v1", "Namespace", ns)
            assert namespace["metadata"]["ownerReferences"][0]["uid"] == learner["metadata"]["uid"]
            assert namespace["metadata"]["labels"]["labctl.dev/cohort"] == name
            assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
            for kind, obj_name in [
                ("ResourceQuota", "labctl-quota"),
                ("LimitRange", "labctl-limits"),
                ("ServiceAccount", "learner"),
            ]:
                obj = kube.get("v1", kind, obj_name, ns)
                assert obj["metadata"]["labels"]["labctl.dev/learner"] == ns
            policies = {
                p["metadata"]["name"]
                for p in kube.list("networking.k8s.io/v1", "NetworkPolicy", namespace=ns)
            }
            assert policies == {
                "labctl-default-deny-ingress",
                "labctl-allow-platform",
                # Egress (labctl.provision.egress): the learner's pods, the API server, each stack.
                "labctl-default-deny-egress",
                "labctl-egress-learner",
                "labctl-egress-api-server",
                "labctl-egress-api-server-prometheus",
                *(
                    f"labctl-egress-{stack}"
                    for stack in ("mlflow", "object-store", "prometheus", "alertmanager")
                ),
            }
        status = json.loads(
            labctl("cohort", "status", name, "-o", "json", *cluster_args(test_cluster)).stdout
        )
        assert sorted(r["learner"] for r in status) == sorted(e.lower() for e in emails)
        assert all(r["ready"] and r["phase"] == "Ready" for r in status)
        table = labctl("cohort", "status", name, *cluster_args(test_cluster)).stdout
        assert (
            "LEARNER" in table and "grace@uni.edu" in table and learner_name(name, "grace@uni.edu") in table
        )
    finally:
        labctl("cohort", "delete", name, "--yes", *cluster_args(test_cluster))


@pytest.fixture(scope="module")
def pair(
    test_cluster: ClusterUnderTest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """Two learners of one cohort (GPU quota of 2 each), with the kubeconfigs labctl gave them."""
    tmp = tmp_path_factory.mktemp("pair")
    name = unique("iso")
    create(test_cluster, name, roster(tmp, "a@uni.edu", "b@uni.edu"), "--quota-profile", "gpu")
    yield {
        "cohort": name,
        "a": learner_client(test_cluster, name, "a@uni.edu", tmp),
        "b": learner_client(test_cluster, name, "B@UNI.EDU", tmp),
        "ns_a": learner_name(name, "a@uni.edu"),
        "ns_b": learner_name(name, "b@uni.edu"),
    }
    labctl("cohort", "delete", name, "--yes", *cluster_args(test_cluster))


def deployment(name: str, ns: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": pod_spec(security=RESTRICTED_SECURITY),
            },
        },
    }


def test_learner_builds_in_their_own_namespace(pair: dict[str, Any]) -> None:
    a, ns = pair["a"], pair["ns_a"]
    a.apply(deployment("web", ns))
    a.apply(pod("probe", ns, security=RESTRICTED_SECURITY))
    a.apply(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": ns},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
        }
    )
    a.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "params", "namespace": ns},
            "data": {"lr": "0.1"},
        }
    )
    # Their own NetworkPolicies too (the tenant-hardening lab needs them).
    a.apply(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "only-web", "namespace": ns},
            "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"]},
        }
    )
    a.wait_for(
        lambda: (a.get("apps/v1", "Deployment", "web", ns) or {}).get("status", {}).get("readyReplicas"),
        timeout=30,
        what="the learner's deployment to be ready",
    )
    assert {p["metadata"]["name"] for p in a.list("v1", "Pod", namespace=ns)} >= {"probe"}


def test_learner_cannot_read_another_learner(pair: dict[str, Any]) -> None:
    a, ns_b = pair["a"], pair["ns_b"]
    for kind in ("Pod", "Secret", "ConfigMap"):
        message = forbidden(lambda k=kind: a.list("v1", k, namespace=ns_b))
        assert f"system:serviceaccount:{pair['ns_a']}:learner" in message
    forbidden(lambda: a.get("v1", "Secret", "object-store-credentials", ns_b))
    forbidden(lambda: core_api(a).list_namespaced_pod(ns_b, watch=True, timeout_seconds=1))
    forbidden(lambda: a.apply(pod("intruder", ns_b, security=RESTRICTED_SECURITY)))
    forbidden(
        lambda: core_api(a).create_namespaced_service_account_token(
            "learner", ns_b, {"spec": {"audiences": [], "expirationSeconds": 600}}
        )
    )


def test_learner_cannot_read_cluster_scoped_resources(pair: dict[str, Any]) -> None:
    a = pair["a"]
    # Decision: learners do not read Nodes. GPU-pool labels are in the lab text; the
    # grader (not the learner) inspects placement.
    for api_version, kind in [
        ("v1", "Node"),
        ("v1", "Namespace"),
        ("rbac.authorization.k8s.io/v1", "ClusterRole"),
        (API_VERSION, "Cohort"),
        (API_VERSION, "Learner"),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
    ]:
        forbidden(lambda v=api_version, k=kind: a.list(v, k))


def test_learner_cannot_loosen_their_guard_rails(pair: dict[str, Any]) -> None:
    a, ns = pair["a"], pair["ns_a"]
    forbidden(
        lambda: a.patch(
            "v1", "ResourceQuota", "labctl-quota", {"spec": {"hard": {"pods": "1000"}}}, namespace=ns
        )
    )
    forbidden(lambda: a.delete("v1", "LimitRange", "labctl-limits", ns))
    message = forbidden(
        lambda: a.delete("networking.k8s.io/v1", "NetworkPolicy", "labctl-default-deny-ingress", ns)
    )
    assert "objects managed by labctl cannot be changed by learners" in message
    forbidden(
        lambda: a.patch(
            "networking.k8s.io/v1",
            "NetworkPolicy",
            "labctl-allow-platform",
            {"spec": {"ingress": [{}]}},
            namespace=ns,
        )
    )
    forbidden(
        lambda: a.patch(
            "v1",
            "Namespace",
            ns,
            {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "privileged"}}},
        )
    )
    forbidden(lambda: a.delete("v1", "Namespace", ns))
    forbidden(
        lambda: a.patch(
            "rbac.authorization.k8s.io/v1", "RoleBinding", "labctl-learner", {"subjects": []}, namespace=ns
        )
    )
    forbidden(
        lambda: a.apply(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "me-admin", "namespace": ns},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "cluster-admin",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "learner", "namespace": ns}],
            }
        )
    )
    forbidden(
        lambda: a.apply(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": f"{ns}-admin"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "cluster-admin",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "learner", "namespace": ns}],
            }
        )
    )
    # Nor pass their own objects off as labctl's.
    forbidden(
        lambda: a.apply(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": "fake",
                    "namespace": ns,
                    "labels": {"app.kubernetes.io/managed-by": "labctl"},
                },
            }
        )
    )
    # Nor impersonate anyone.
    impersonating = api_client(a)
    impersonating.set_default_header("Impersonate-User", "system:admin")
    forbidden(lambda: Kube(impersonating).list("v1", "Pod", namespace=pair["ns_b"]))


def test_learner_cannot_pass_workloads_off_as_labctls(pair: dict[str, Any], kube: Kube) -> None:
    """Pods that carried labctl's label would match labctl's NetworkPolicies and pass for its stacks."""
    a, ns = pair["a"], pair["ns_a"]
    disguised = deployment("mlflow-lookalike", ns)
    disguised["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/managed-by"] = "labctl"
    assert "objects managed by labctl" in forbidden(lambda: a.apply(disguised))
    job = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "sneaky", "namespace": ns},
        "spec": {
            "schedule": "*/5 * * * *",
            "jobTemplate": {
                "spec": {
                    "template": {
                        "metadata": {"labels": {"app.kubernetes.io/managed-by": "labctl"}},
                        "spec": {**pod_spec(security=RESTRICTED_SECURITY), "restartPolicy": "Never"},
                    }
                }
            },
        },
    }
    forbidden(lambda: a.apply(job))
    # A Deployment merely named like a stack, without labctl's label, does not count as one.
    fake = deployment("fake-mlflow", ns)
    fake["metadata"]["labels"] = {"labctl.dev/stack": "mlflow"}
    a.apply(fake)
    learner = kube.get(API_VERSION, "Learner", ns)
    assert learner["status"]["phase"] == "Ready"  # readiness still comes from labctl's own Deployments
    assert set(learner["status"]["stacks"]) == {"mlflow", "object-store", "prometheus", "alertmanager"}


@pytest.mark.parametrize("hack", ["privileged", "hostPath", "hostNetwork", "hostPID", "root", "NET_ADMIN"])
def test_learner_cannot_run_dangerous_pods(pair: dict[str, Any], hack: str) -> None:
    a, ns = pair["a"], pair["ns_a"]
    obj = pod(f"evil-{hack.lower().replace('_', '-')}", ns, security=dict(RESTRICTED_SECURITY))
    spec, container = obj["spec"], obj["spec"]["containers"][0]
    if hack == "privileged":
        container["securityContext"].update(privileged=True, allowPrivilegeEscalation=True)
    elif hack == "hostPath":
        spec["volumes"] = [{"name": "root", "hostPath": {"path": "/"}}]
        container["volumeMounts"] = [{"name": "root", "mountPath": "/host"}]
    elif hack == "hostNetwork":
        spec["hostNetwork"] = True
    elif hack == "hostPID":
        spec["hostPID"] = True
    elif hack == "root":
        container["securityContext"].update(runAsNonRoot=False, runAsUser=0)
    else:
        container["securityContext"]["capabilities"] = {"add": ["NET_ADMIN"], "drop": ["ALL"]}
    assert "violates PodSecurity" in forbidden(lambda: a.apply(obj))


def test_learner_cannot_exceed_their_quota(pair: dict[str, Any]) -> None:
    a, ns = pair["a"], pair["ns_a"]
    greedy = pod("greedy-gpu", ns, gpus=3, tolerate_gpu=True, security=RESTRICTED_SECURITY)
    assert "exceeded quota: labctl-quota" in forbidden(lambda: a.apply(greedy))
    big = pod("big-cpu", ns, security=RESTRICTED_SECURITY)
    big["spec"]["containers"][0]["resources"] = {
        "requests": {"cpu": "20", "memory": "1Gi"},
        "limits": {"cpu": "20", "memory": "1Gi"},
    }
    forbidden(lambda: a.apply(big))
    node_port = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "exposed", "namespace": ns},
        "spec": {"type": "NodePort", "selector": {"app": "web"}, "ports": [{"port": 80}]},
    }
    assert "exceeded quota" in forbidden(lambda: a.apply(node_port))


def settle(kube: Kube) -> None:
    """Wait until other tests' deletions are over (the namespace controller writes a lot
    while it empties a namespace) and status timers have had a round."""

    def quiet() -> bool:
        terminating = [
            n
            for n in kube.list("v1", "Namespace", label_selector="labctl.dev/role=learner")
            if n["status"].get("phase") == "Terminating"
        ]
        cohorts = {c["metadata"]["name"] for c in kube.list(API_VERSION, "Cohort")}
        # Learners of a deleted cohort wait for the garbage collector before they even start going.
        going = [
            lr
            for lr in kube.list(API_VERSION, "Learner")
            if lr["metadata"].get("deletionTimestamp") or lr["spec"]["cohort"] not in cohorts
        ]
        return not terminating and not going

    kube.wait_for(quiet, timeout=120, what="other cohorts' deletions to finish")
    time.sleep(5)


def test_reapplying_a_cohort_writes_nothing(
    test_cluster: ClusterUnderTest, kube: Kube, tmp_path: Path
) -> None:
    name = unique("idem")
    path = roster(tmp_path, "x@uni.edu", "y@uni.edu", "z@uni.edu")
    create(test_cluster, name, path)
    try:
        settle(kube)
        before = write_counts(kube)
        for _ in range(2):
            out = create(test_cluster, name, path)
            assert out.stdout.strip() == f"cohort.labctl.dev/{name} unchanged"
        time.sleep(5)  # two timer periods: anything the controller would write, it has written
        after = write_counts(kube)
        assert after - before == {}, f"writes after the first apply: {dict(after - before)}"
    finally:
        labctl("cohort", "delete", name, "--yes", *cluster_args(test_cluster))


@pytest.mark.parametrize(
    ("content", "extra", "message"),
    [
        (
            "email\nann@uni.edu\nANN@uni.edu\n",
            [],
            "roster.csv row 3: duplicate learner ANN@uni.edu (first seen on row 2)",
        ),
        ("email\n", [], "roster.csv: empty roster: no learners"),
        ("email\nann@uni.edu\n", ["--quota-profile", "huge"], "unknown quota profile 'huge'"),
        (
            "email,name\nann@uni.edu,Ann\nbob@uni.edu,Bob,extra\n",
            [],
            "roster.csv row 3: malformed row: expected 2 fields (email, name), got 3",
        ),
    ],
)
def test_bad_input_creates_nothing(
    test_cluster: ClusterUnderTest, kube: Kube, tmp_path: Path, content: str, extra: list[str], message: str
) -> None:
    name = unique("bad")
    path = tmp_path / "roster.csv"
    path.write_text(content)
    proc = labctl(
        "cohort",
        "create",
        name,
        "--roster",
        str(path),
        "--level",
        "foundation",
        *extra,
        *cluster_args(test_cluster),
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert kube.get(API_VERSION, "Cohort", name) is None
    assert kube.list(API_VERSION, "Learner", label_selector=f"labctl.dev/cohort={name}") == []


def test_deleting_a_cohort_removes_every_namespace(
    test_cluster: ClusterUnderTest, kube: Kube, tmp_path: Path
) -> None:
    name = unique("del")
    create(test_cluster, name, roster(tmp_path, "p@uni.edu", "q@uni.edu"))
    namespaces = [learner_name(name, e) for e in ("p@uni.edu", "q@uni.edu")]
    kube.apply(pod("leftover", namespaces[0], security=RESTRICTED_SECURITY))
    out = labctl(
        "cohort", "delete", name, "--yes", "--wait", "--timeout", "120s", *cluster_args(test_cluster)
    )
    assert out.stdout.strip() == f'cohort.labctl.dev "{name}" deleted'
    assert all(kube.get("v1", "Namespace", ns) is None for ns in namespaces)
    assert kube.list(API_VERSION, "Learner", label_selector=f"labctl.dev/cohort={name}") == []
    assert kube.get(API_VERSION, "Cohort", name) is None
