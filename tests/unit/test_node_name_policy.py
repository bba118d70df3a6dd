"""The admission policy that keeps learners' pods off nodes they pin by name, rendered with no cluster.

Whether the API server really refuses such pods is tests/cluster/test_guardrails_admission.py.
"""

from __future__ import annotations

from typing import Any

from labctl.provision.install import render_install
from labctl.provision.policies import NODE_NAME_MESSAGE, NODE_NAME_POLICY_NAME, render_policies
from labctl.provision.tenancy import LEARNER_RULES, ROLE_LABEL

# What may carry a pod spec: the pod itself, and everything with a pod template.
POD_CARRIERS = {
    ("", "pods"),
    ("apps", "deployments"),
    ("apps", "replicasets"),
    ("apps", "statefulsets"),
    ("apps", "daemonsets"),
    ("batch", "jobs"),
    ("batch", "cronjobs"),
}


def rendered() -> dict[str, dict[str, Any]]:
    return {o["kind"]: o for o in render_policies() if o["metadata"]["name"] == NODE_NAME_POLICY_NAME}


def matched(policy: dict[str, Any], operation: str) -> set[tuple[str, str]]:
    return {
        (group, resource)
        for rule in policy["spec"]["matchConstraints"]["resourceRules"]
        if operation in rule["operations"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }


def test_the_policy_is_bound_to_deny_and_installed() -> None:
    objects = rendered()
    assert set(objects) == {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
    binding = objects["ValidatingAdmissionPolicyBinding"]["spec"]
    assert binding == {"policyName": NODE_NAME_POLICY_NAME, "validationActions": ["Deny"]}
    policy = objects["ValidatingAdmissionPolicy"]["spec"]
    assert policy["failurePolicy"] == "Fail"  # a policy that cannot be evaluated refuses
    installed = {o["metadata"]["name"] for o in render_install(controller=False) if "Policy" in o["kind"]}
    assert NODE_NAME_POLICY_NAME in installed


def test_it_covers_pods_and_every_pod_template_in_learner_namespaces_only() -> None:
    policy = rendered()["ValidatingAdmissionPolicy"]
    constraints = policy["spec"]["matchConstraints"]
    assert constraints["namespaceSelector"] == {"matchLabels": {ROLE_LABEL: "learner"}}
    for operation in ("CREATE", "UPDATE"):  # a Deployment's or CronJob's template can be edited
        assert matched(policy, operation) == POD_CARRIERS, operation
    # Every kind a learner may write that carries a pod spec is matched: their RBAC adds none.
    granted = {
        (group, resource)
        for rule in LEARNER_RULES
        if "create" in rule["verbs"] or "update" in rule["verbs"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    carriers = {("", "pods"), ("apps", "deployments"), ("apps", "replicasets"), ("apps", "statefulsets")}
    carriers |= {("batch", "jobs"), ("batch", "cronjobs")}
    assert granted & POD_CARRIERS == carriers
    # Pods the scheduler did not place come from DaemonSets or a binding: learners may write neither.
    assert not any(r in granted for r in [("apps", "daemonsets"), ("", "pods/binding"), ("", "bindings")])


def test_it_denies_a_nodename_at_each_place_a_pod_spec_lives_for_learners_only() -> None:
    spec = rendered()["ValidatingAdmissionPolicy"]["spec"]
    variables = {v["name"]: v["expression"] for v in spec["variables"]}
    # The learner is a ServiceAccount of the namespace itself: the controller (labctl-system),
    # the ReplicaSet and Job controllers (kube-system) and administrators pass.
    assert "'system:serviceaccount:' + request.namespace + ':'" in variables["learner"]
    for path in ("spec", "spec.template.spec", "spec.jobTemplate.spec.template.spec"):
        assert f"object.{path}.nodeName != ''" in variables["pinned"], path
        # Ratchet: an UPDATE keeping the nodeName it had (a scheduler-bound pod relabelled) passes.
        assert f"oldObject.{path}.nodeName == object.{path}.nodeName" in variables["pinned"], path
    (validation,) = spec["validations"]
    assert validation["expression"] == "!variables.learner || !variables.pinned"
    assert validation["reason"] == "Forbidden"


def test_the_message_says_what_to_do_instead() -> None:
    (validation,) = rendered()["ValidatingAdmissionPolicy"]["spec"]["validations"]
    for words in ("spec.nodeName", "nodeSelector", "tolerations", "nvidia.com/gpu", "resources.limits"):
        assert words in NODE_NAME_MESSAGE, words
    # It is a CEL string literal in the expression: nothing in it may need escaping.
    assert not set("'\\") & set(NODE_NAME_MESSAGE)
    assert validation["messageExpression"].endswith(f"'{NODE_NAME_MESSAGE}'")
    assert validation["messageExpression"].startswith("request.resource.resource + ' ' + request.name")
