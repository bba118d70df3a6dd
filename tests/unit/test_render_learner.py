"""What one learner gets, rendered with no cluster."""

from __future__ import annotations

import pytest

from labctl.api.crds import crds
from labctl.core.errors import UsageError
from labctl.core.labels import MANAGED_BY
from labctl.provision import quota
from labctl.provision.cohort_learners import render_learners
from labctl.provision.learner import derive_secret, objects_hash, render_learner_objects
from labctl.provision.stacks.settings import parse_quantity
from labctl.provision.tenancy import LEARNER_RULES, render_guardrails

COHORT = {
    "apiVersion": "labctl.dev/v1alpha1",
    "kind": "Cohort",
    "metadata": {"name": "c1", "uid": "uid-c1"},
    "spec": {
        "level": "advanced",
        "labs": ["advanced/gpu-scheduling"],
        "quotaProfile": "gpu",
        "learners": [{"email": "Ada@Uni.edu", "name": "Ada"}, {"email": "bob@uni.edu"}],
    },
}


def learner_obj() -> dict:
    obj = render_learners(COHORT)[0]
    obj["metadata"]["uid"] = "uid-ada"
    return obj


def test_cohort_renders_one_owned_learner_per_entry() -> None:
    learners = render_learners(COHORT)
    assert [lr["spec"]["email"] for lr in learners] == ["ada@uni.edu", "bob@uni.edu"]
    ada = learners[0]
    assert ada["metadata"]["ownerReferences"][0]["uid"] == "uid-c1"
    assert ada["spec"] == {
        "cohort": "c1",
        "email": "ada@uni.edu",
        "displayName": "Ada",
        "level": "advanced",
        "labs": ["advanced/gpu-scheduling"],
        "quotaProfile": "gpu",
        "egress": "none",  # the default: DNS, their namespace and the API server only
        "suspended": False,
    }
    wider = {**COHORT, "spec": {**COHORT["spec"], "egress": "internet"}}
    assert {lr["spec"]["egress"] for lr in render_learners(wider)} == {"internet"}


def test_learner_objects_are_labelled_owned_and_guarded() -> None:
    objects = render_learner_objects(learner_obj(), key=b"k")
    ns = objects[0]
    assert ns["kind"] == "Namespace"
    assert ns["metadata"]["ownerReferences"][0]["uid"] == "uid-ada"
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    name = ns["metadata"]["name"]
    for obj in objects:
        assert obj["metadata"]["labels"].items() >= MANAGED_BY.items()
        assert obj["metadata"]["labels"]["labctl.dev/cohort"] == "c1"
        if obj is not ns:
            assert obj["metadata"]["namespace"] == name
    kinds = {o["kind"] for o in objects}
    assert {"ResourceQuota", "LimitRange", "NetworkPolicy", "ServiceAccount", "Role", "RoleBinding"} <= kinds
    quotas = {o["metadata"]["name"]: o["spec"]["hard"] for o in objects if o["kind"] == "ResourceQuota"}
    assert quotas["labctl-quota"]["requests.nvidia.com/gpu"] == "2"
    assert quotas["labctl-objects"]["services.nodeports"] == "0"


@pytest.mark.parametrize("name", list(quota.PROFILES))
def test_every_profile_bounds_the_nodes_disk(name: str) -> None:
    """Ephemeral storage in the quota (requests and limits) and in the LimitRange (a default limit
    and request for containers that name none, and a max): one learner cannot fill a node's disk."""
    profile = quota.PROFILES[name]
    objects = {o["kind"]: o for o in render_guardrails("ns", cohort="c", quota=profile)}
    # Both quotas: the compute one holds ephemeral storage, the objects' one the claims' storage.
    hard = {
        k: v
        for o in render_guardrails("ns", cohort="c", quota=profile)
        if o["kind"] == "ResourceQuota"
        for k, v in o["spec"]["hard"].items()
    }
    (limits,) = objects["LimitRange"]["spec"]["limits"]
    assert limits["type"] == "Container"
    key = "ephemeral-storage"
    request, limit = parse_quantity(limits["defaultRequest"][key]), parse_quantity(limits["default"][key])
    most = parse_quantity(limits["max"][key])
    assert 0 < request <= limit <= most <= parse_quantity(hard[f"limits.{key}"])
    assert 0 < parse_quantity(hard[f"requests.{key}"]) <= parse_quantity(hard[f"limits.{key}"])
    # Scratch, not storage: the node's disk is not where a learner's data belongs.
    assert parse_quantity(hard[f"limits.{key}"]) < parse_quantity(hard["requests.storage"])


def test_learner_role_never_grants_rbac_quota_or_labctl() -> None:
    for rule in LEARNER_RULES:
        assert "rbac.authorization.k8s.io" not in rule["apiGroups"]
        if "labctl.dev" in rule["apiGroups"]:
            # Their own lab sessions' spec only: never a status, a grade, a cohort, a learner, a lab.
            assert rule["apiGroups"] == ["labctl.dev"] and rule["resources"] == ["labsessions"]
        assert "*" not in rule["apiGroups"] and "*" not in rule["resources"] and "*" not in rule["verbs"]
        if {"resourcequotas", "limitranges"} & set(rule["resources"]):
            assert set(rule["verbs"]) <= {"get", "list", "watch"}
        assert (
            "escalate" not in rule["verbs"]
            and "bind" not in rule["verbs"]
            and "impersonate" not in rule["verbs"]
        )


def test_rendering_is_deterministic_and_secrets_are_derived() -> None:
    assert objects_hash(render_learner_objects(learner_obj(), key=b"k")) == objects_hash(
        render_learner_objects(learner_obj(), key=b"k")
    )
    assert derive_secret(b"k", "ns-a", "s") == derive_secret(b"k", "ns-a", "s")
    assert derive_secret(b"k", "ns-a", "s") != derive_secret(b"k", "ns-b", "s")
    assert derive_secret(b"k", "ns-a", "s") != derive_secret(b"other", "ns-a", "s")


def test_unknown_quota_profile() -> None:
    with pytest.raises(
        UsageError, match="unknown quota profile 'huge'; choose one of: small, medium, large, gpu"
    ):
        quota.profile("huge")


def test_crds_are_structural() -> None:
    def walk(node: object) -> None:
        if isinstance(node, dict):
            assert "$ref" not in node and "anyOf" not in node and "title" not in node
            if "properties" in node:
                assert node.get("type") == "object"
                assert node.get("additionalProperties") is None
                for prop in node["properties"].values():  # keys there are field names ("title" too)
                    walk(prop)
            for key, value in node.items():
                if key != "properties":
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for crd in crds():
        walk(crd["spec"]["versions"][0]["schema"])
        # Cohorts, learners and sessions report status; a grade attempt and a published lab
        # version are records with none to report.
        expected = {} if crd["spec"]["names"]["kind"] in ("GradeAttempt", "Lab") else {"status": {}}
        assert crd["spec"]["versions"][0]["subresources"] == expected
