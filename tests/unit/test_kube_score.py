"""`make lint`'s kube-score pass (hack/kube-score.py): it scores everything labctl renders, and fails.

Run with the real kube-score binary (built from its Go module, cached): a lint that scored
nothing, or could not tell a bad manifest, would pass silently.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from labctl.catalog.load import load_catalog
from labctl.localcluster.toolchain import build, paths
from labctl.provision.quota import PROFILES

ROOT = Path(__file__).resolve().parents[2]

# What one learner is: namespace, quota, limits, 2 NetworkPolicies, ServiceAccount, Role,
# RoleBinding (tenancy.py), and the four stacks: the object store's Secret, Deployment and
# Service, MLflow's, Prometheus's (with its ServiceAccount, Role, RoleBinding and ConfigMap)
# and Alertmanager's (with its ConfigMap); MLflow and the object store keep data on claims; and
# the egress policies (labctl.provision.egress): default deny, the learner's pods, their API
# server access, one per stack and Prometheus's API server access; two ResourceQuotas (compute,
# and labctl-objects: Services and claims, recounted after a controller crash).
LEARNER = 33
EXPECTED = {
    **{f"learner-{p}.yaml": LEARNER for p in ("small", "medium", "large", "gpu")},
    "learner-small-local-images.yaml": LEARNER,
    "learner-small-demo.yaml": LEARNER,
    "learner-small-no-claims.yaml": LEARNER - 2,  # no PersistentVolumeClaims
    # 5 CRDs, 5 admission policies and their 5 bindings, 2 namespaces (labctl-system, labctl-sandbox),
    # the catalog reader's and the controller's ClusterRole + binding, the controller's ServiceAccount,
    # settings ConfigMap, Deployment, Service, ingress and egress policies, the sandbox's deny-all,
    # Role, RoleBinding, one sandbox Pod, and the learner-egress admission policy and its binding.
    "install.yaml": 33,
    "lab-advanced-gpu-scheduling.yaml": 2,  # gpu-budget quota, gpu-pool ConfigMap
    "lab-foundation-first-deployment.yaml": 1,  # the iris model ConfigMap
}

PLANTED = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "planted", "namespace": "lint-small"},
    "spec": {
        "replicas": 1,
        "selector": {"matchLabels": {"app": "planted"}},
        "template": {
            "metadata": {"labels": {"app": "planted"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:latest"}]},
        },
    },
}


def _hack_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hack_kube_score", ROOT / "hack" / "kube-score.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


ks = _hack_module()


@pytest.fixture(scope="module")
def kube_score() -> Path:
    build.build(groups=(paths.KUBE_SCORE,), report=lambda _: None)  # cached: instant once built
    return paths.binary("kube-score")


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return ks.render_manifests()


def test_every_profile_every_lab_and_the_install_are_rendered(rendered: dict[str, list[Any]]) -> None:
    assert {name: len(objs) for name, objs in rendered.items()} == EXPECTED
    assert {f"learner-{p}.yaml" for p in PROFILES} <= set(rendered)
    labs = load_catalog([ROOT / "labs"])
    with_setup = {f"lab-{lab.id.replace('/', '-')}.yaml" for lab in labs if lab.setup}
    assert with_setup == {n for n in rendered if n.startswith("lab-")}
    quotas = [o["spec"]["hard"] for n in rendered if n.startswith("learner-") for o in rendered[n]
              if o["kind"] == "ResourceQuota" and o["metadata"]["name"] == "labctl-quota"]  # fmt: skip
    assert {q["limits.cpu"] for q in quotas} == {p.limits_cpu for p in PROFILES.values()}


def test_kube_score_scores_every_workload_rendered(
    kube_score: Path, rendered: dict[str, list[Any]], tmp_path: Path
) -> None:
    config = ks.load_config(ks.CONFIG, ks.known_tests(kube_score))
    _, scored = ks.score(kube_score, ks.write_manifests(rendered, tmp_path), config)
    kinds = Counter(o["kind"] for objs in rendered.values() for o in objs if o["kind"] in ks.SCORED_KINDS)
    # 7 learners x (10 NetworkPolicies, 4 Deployments, 4 Services) + the controller's Deployment,
    # Service and two policies, the sandbox's policy and Pod.
    assert kinds == {"Deployment": 29, "Service": 29, "NetworkPolicy": 73, "Pod": 1}
    assert len(scored) == sum(kinds.values()) == 132
    assert ks.unscored(rendered, scored) == []


def test_a_planted_bad_manifest_fails_the_lint_naming_object_and_test(
    kube_score: Path, rendered: dict[str, list[Any]], tmp_path: Path
) -> None:
    code, report = ks.lint(kube_score, tmp_path, files={**rendered, "planted.yaml": [PLANTED]})
    assert code == 1
    planted = [line for line in report.splitlines() if line.startswith("planted.yaml:")]
    where = "planted.yaml:1: Deployment lint-small/planted:"
    assert f"{where} container-image-tag [CRITICAL] web -> Image with latest tag" in planted
    assert f"{where} container-resources [CRITICAL] web -> CPU limit is not set" in planted
    assert any(f"{where} container-security-context-readonlyrootfilesystem" in line for line in planted)
    assert report.splitlines()[-1].startswith(f"kube-score: {sum(EXPECTED.values()) + 1} objects rendered")


def test_an_object_kube_score_did_not_read_is_a_failure() -> None:
    files = {"install.yaml": [{"kind": "Service", "metadata": {"name": "lost", "namespace": "x"}}]}
    assert ks.unscored(files, set()) == ["install.yaml: Service x/lost"]
    assert ks.unscored(files, {("Service", "x", "lost")}) == []


def test_every_ignore_names_a_kube_score_test_and_says_why(kube_score: Path, tmp_path: Path) -> None:
    known = ks.known_tests(kube_score)
    config = ks.load_config(ks.CONFIG, known)
    assert "container-image-pull-policy" in config.ignore
    assert all(len(reason) > 40 for reason in [*config.ignore.values(), *config.enable.values()])
    bad = tmp_path / "kube-score.yaml"
    bad.write_text("ignore:\n  pod-probez: typo\n  pod-probes: ''\nenable: {}\nskip: {}\n")
    with pytest.raises(SystemExit) as refused:
        ks.load_config(bad, known)
    assert str(refused.value).splitlines() == [
        f"{bad}: unknown key 'skip' (ignore, enable, ignore_objects)",
        f"{bad}: ignore.pod-probez: not a kube-score test (kube-score list)",
        f"{bad}: ignore.pod-probes: say why",
    ]


DEAD_POLICY = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "NetworkPolicy",
    "metadata": {"name": "for-pods-to-come", "namespace": "lint-small"},
    "spec": {"podSelector": {"matchLabels": {"made-by": "nobody-yet"}}, "policyTypes": ["Ingress"]},
}


def test_an_object_ignore_hides_that_object_only_and_must_hide_something(
    kube_score: Path, rendered: dict[str, list[Any]], tmp_path: Path
) -> None:
    files = {**rendered, "planted.yaml": [DEAD_POLICY]}
    config = tmp_path / "kube-score.yaml"
    entry = "- {test: networkpolicy-targets-pod, kind: NetworkPolicy, name: %s, reason: learners make them}"
    base = ks.CONFIG.read_text().replace(
        "ignore_objects:\n", "ignore_objects:\n  " + entry % "for-pods-to-come" + "\n", 1
    )
    config.write_text(base)
    code, report = ks.lint(kube_score, tmp_path / "a", files=files, config_path=config)
    assert "for-pods-to-come" not in report  # ignored, for that object alone
    _, shipped = ks.lint(kube_score, tmp_path / "shipped", files=rendered)
    findings, objects = (int(n) for n in re.findall(r"(\d+) findings ignored on (\d+) objects", shipped)[0])
    assert f"{findings + 1} findings ignored on {objects + 1} objects" in report.splitlines()[-1]
    # The same entry once the renderer no longer makes that object: stale, so the lint fails.
    code, report = ks.lint(kube_score, tmp_path / "b", files=rendered, config_path=config)
    assert code == 1
    stale = "kube-score.yaml: ignore_objects: networkpolicy-targets-pod on NetworkPolicy for-pods-to-come"
    assert f"{stale} matched no finding: remove it" in report.splitlines()
    # Without the entry the dead policy is a failure.
    code, report = ks.lint(kube_score, tmp_path / "c", files=files)
    assert code == 1
    assert "planted.yaml:1: NetworkPolicy lint-small/for-pods-to-come: networkpolicy-targets-pod" in report


def test_object_ignores_need_test_kind_name_and_reason(kube_score: Path, tmp_path: Path) -> None:
    bad = tmp_path / "kube-score.yaml"
    bad.write_text(
        "ignore_objects:\n"
        "- {test: pod-probes, kind: Deployment, name: mlflow}\n"
        "- {test: pod-probez, kind: Deployment, name: mlflow, reason: ''}\n"
    )
    with pytest.raises(SystemExit) as refused:
        ks.load_config(bad, ks.known_tests(kube_score))
    assert str(refused.value).splitlines() == [
        f"{bad}: ignore_objects[0]: give test, kind, name and reason",
        f"{bad}: ignore_objects[1].test: 'pod-probez' is not a kube-score test (kube-score list)",
        f"{bad}: ignore_objects[1].reason: say why",
    ]
