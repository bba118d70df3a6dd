"""Learners' and stacks' egress policies, rendered with no cluster: what each rule names.

What the policies let through, computed by an outside engine, is test_egress_reachability.py;
that the API server refuses learners' own wider rules is tests/cluster/test_egress.py.
"""

from __future__ import annotations

import ipaddress
from typing import Any, get_args

import pytest

from labctl.api.v1alpha1 import EgressMode
from labctl.controller.apiserver import pick_policy, pick_slice, stale_policies
from labctl.provision import network
from labctl.provision.cohort_learners import render_learners
from labctl.provision.egress import (
    API_SERVER_POLICY,
    DEFAULT_DENY,
    PROMETHEUS_API_SERVER_POLICY,
    ApiServer,
    api_server_of,
    api_server_rules,
    render_api_server_policies,
)
from labctl.provision.learner import render_learner_objects
from labctl.provision.policies import LEARNER_EGRESS_MESSAGE, LEARNER_EGRESS_POLICY_NAME, render_policies
from labctl.provision.stacks.common import STACK_LABEL

MODES: tuple[EgressMode, ...] = get_args(EgressMode)
API = ApiServer.of([("172.18.0.2", 6443), ("fd00::2", 6443)])


def learner(mode: EgressMode) -> dict[str, Any]:
    cohort = {
        "apiVersion": "labctl.dev/v1alpha1",
        "kind": "Cohort",
        "metadata": {"name": "c1"},
        "spec": {"level": "professional", "egress": mode, "learners": [{"email": "ada@uni.edu"}]},
    }
    return render_learners(cohort)[0]


def policies(mode: EgressMode, api_server: ApiServer = API) -> list[dict[str, Any]]:
    objects = render_learner_objects(learner(mode), key=b"k", api_server=api_server)
    return [o for o in objects if o["kind"] == "NetworkPolicy"]


def egress_policies(mode: EgressMode) -> list[dict[str, Any]]:
    return [p for p in policies(mode) if "Egress" in p["spec"]["policyTypes"]]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Kubernetes' label selector semantics (NotIn and DoesNotExist match a missing label)."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


@pytest.mark.parametrize("mode", MODES)
def test_no_rule_in_any_mode_reaches_link_local_or_metadata(mode: EgressMode) -> None:
    blocked = [ipaddress.ip_network(c) for c in network.blocked()]
    probes = [
        ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "fe80::1")
    ]
    for policy in egress_policies(mode):
        for rule in policy["spec"]["egress"]:
            # An egress rule without peers allows every destination.
            assert rule.get("to"), f"{policy['metadata']['name']}: a rule without `to` opens everything"
            for peer in rule["to"]:
                if "ipBlock" not in peer:
                    continue
                cidr = ipaddress.ip_network(peer["ipBlock"]["cidr"])
                excepted = [ipaddress.ip_network(c) for c in peer["ipBlock"].get("except", [])]
                for net in [*blocked, *(ipaddress.ip_network(p) for p in probes)]:
                    if net.version != cidr.version or not net.subnet_of(cidr):  # type: ignore[arg-type]
                        continue
                    assert any(net.subnet_of(e) for e in excepted if e.version == net.version), (  # type: ignore[arg-type]
                        f"{policy['metadata']['name']} ({mode}) reaches {net}"
                    )


def test_every_pod_of_the_namespace_is_under_a_default_deny_and_each_stack_under_its_own() -> None:
    objects = render_learner_objects(learner("internet"), key=b"k", api_server=API)
    egress = [o for o in objects if o["kind"] == "NetworkPolicy" and "Egress" in o["spec"]["policyTypes"]]
    deny = next(p for p in egress if p["metadata"]["name"] == DEFAULT_DENY)
    assert deny["spec"]["podSelector"] == {} and deny["spec"]["egress"] == []
    templates = [o["spec"]["template"]["metadata"]["labels"] for o in objects if o["kind"] == "Deployment"]
    assert len(templates) == 4
    for labels in templates:
        names = {p["metadata"]["name"] for p in egress if selects(p["spec"]["podSelector"], labels)}
        stack = labels[STACK_LABEL]
        # Not the learner's policies (internet here): the stack's own, and Prometheus the API server.
        want = {DEFAULT_DENY, f"labctl-egress-{stack}"}
        assert names == want | ({PROMETHEUS_API_SERVER_POLICY} if stack == "prometheus" else set())
    learner_pod = {"app": "trainer"}
    names = {p["metadata"]["name"] for p in egress if selects(p["spec"]["podSelector"], learner_pod)}
    assert names == {DEFAULT_DENY, "labctl-egress-learner", API_SERVER_POLICY}


def test_the_api_server_rule_names_each_endpoint_and_port_and_nothing_without_them() -> None:
    assert api_server_rules(ApiServer()) == []  # an empty `to` would allow every destination
    (rule,) = api_server_rules(API)
    assert rule == {
        "to": [{"ipBlock": {"cidr": "172.18.0.2/32"}}, {"ipBlock": {"cidr": "fd00::2/128"}}],
        "ports": [{"protocol": "TCP", "port": 6443}],
    }
    for policy in render_api_server_policies("ns", {}, ApiServer()):
        assert policy["spec"]["egress"] == []


def test_the_endpoints_are_read_from_default_kubernetes_slices_only() -> None:
    def slice_(namespace: str, addresses: list[str], port: int) -> dict[str, Any]:
        return {
            "metadata": {"name": f"kubernetes-{namespace}", "namespace": namespace},
            "endpoints": [{"addresses": addresses}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
        }

    # A learner's own Service named `kubernetes` carries the same label in their namespace.
    found = [
        s
        for s in (slice_("default", ["10.0.0.5", "10.0.0.6"], 443), slice_("c1-ada", ["10.9.9.9"], 1))
        if pick_slice(s)
    ]
    assert api_server_of(found) == ApiServer((("10.0.0.5", 443), ("10.0.0.6", 443)))


def test_only_policies_whose_endpoints_moved_are_applied_again() -> None:
    old, new = ApiServer.of([("10.0.0.5", 443)]), ApiServer.of([("10.0.0.7", 443)])
    labels = {"app.kubernetes.io/managed-by": "labctl", "labctl.dev/cohort": "c1"}
    live = [pick_policy(p) for p in render_api_server_policies("c1-ada", labels, old)]
    assert stale_policies(live, old) == []
    again = stale_policies(live, new)
    assert [p["metadata"]["name"] for p in again] == [API_SERVER_POLICY, PROMETHEUS_API_SERVER_POLICY]
    assert again == render_api_server_policies("c1-ada", labels, new)
    # As the API server returns it: an empty egress list is left out.
    empty = render_api_server_policies("c1-ada", labels, ApiServer())
    for policy in empty:
        del policy["spec"]["egress"]
    assert stale_policies([pick_policy(p) for p in empty], ApiServer()) == []


def test_learners_may_not_write_egress_rules_beyond_their_namespace() -> None:
    policy = next(
        o
        for o in render_policies()
        if o["kind"] == "ValidatingAdmissionPolicy" and o["metadata"]["name"] == LEARNER_EGRESS_POLICY_NAME
    )
    spec = policy["spec"]
    (rule,) = spec["matchConstraints"]["resourceRules"]
    assert rule["resources"] == ["networkpolicies"] and set(rule["operations"]) == {"CREATE", "UPDATE"}
    (validation,) = spec["validations"]
    for term in ("has(rule.to)", "size(rule.to) > 0", "!has(peer.ipBlock)", "!has(peer.namespaceSelector)"):
        assert term in validation["expression"]
    binding = next(
        o
        for o in render_policies()
        if o["kind"] == "ValidatingAdmissionPolicyBinding"
        and o["metadata"]["name"] == LEARNER_EGRESS_POLICY_NAME
    )
    assert binding["spec"]["validationActions"] == ["Deny"]
    # The message is a CEL string literal: no quote or backslash may end it early.
    assert not set("'\"\\") & set(LEARNER_EGRESS_MESSAGE)
