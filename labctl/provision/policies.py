"""Cluster-wide admission policy that keeps learners' hands off what labctl manages.

RBAC is additive: a learner who may edit NetworkPolicies may edit labctl's too. This
ValidatingAdmissionPolicy (CEL, in-process in the API server: no webhook to run) denies
any request from a ServiceAccount of a learner namespace that would create, change or
delete an object labelled ``app.kubernetes.io/managed-by: labctl`` in that namespace.
Everyone else — the controller, administrators, the garbage collector — passes.

A second one keeps learners' pods where the scheduler puts them: ``spec.nodeName`` (in a pod
or a pod template) skips the scheduler, so a pod pinned to a GPU node lands there without a
GPU request or a toleration of the pool's taint. Learners leave it out.

A third keeps egress labctl's to open: NetworkPolicies add up, so one learner policy allowing
0.0.0.0/0 would undo every egress rule labctl renders (cloud metadata included). Learners' own
policies may restrict their pods freely, but their egress rules may name only pods of their
own namespace.
"""

from __future__ import annotations

from typing import Any

from labctl.core.labels import GROUP
from labctl.provision.tenancy import ROLE_LABEL

POLICY_NAME = "labctl-protect-managed-objects"
GRADES_POLICY_NAME = "labctl-grades-append-only"
LABS_POLICY_NAME = "labctl-labs-immutable"
SESSIONS_POLICY_NAME = "labctl-lab-sessions"
NODE_NAME_POLICY_NAME = "labctl-no-node-name"
LEARNER_EGRESS_POLICY_NAME = "labctl-learner-egress"

_MANAGED = (
    "has({o}.metadata.labels) && 'app.kubernetes.io/managed-by' in {o}.metadata.labels && "
    "{o}.metadata.labels['app.kubernetes.io/managed-by'] == 'labctl'"
)


# Pod templates too: a learner's Deployment, Job or CronJob whose pods carried labctl's label
# would have controllers mint pods that pass for labctl's own (and match its NetworkPolicies).
_TEMPLATE_PATHS = ("object.spec.template", "object.spec.jobTemplate.spec.template")


def _has_path(path: str) -> str:
    """CEL that every field along ``path`` is present (has() takes one field at a time)."""
    parts = path.split(".")
    return " && ".join(f"has({'.'.join(parts[: i + 1])})" for i in range(1, len(parts)))


def _template_managed(path: str) -> str:
    return f"({_has_path(path + '.metadata')} && {_MANAGED.format(o=path)})"


def _denying(name: str, spec: dict[str, Any]) -> list[dict[str, Any]]:
    """A ValidatingAdmissionPolicy and the binding that makes it deny."""
    labels = {"app.kubernetes.io/part-of": "labctl"}
    api = "admissionregistration.k8s.io/v1"
    return [
        {
            "apiVersion": api,
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name, "labels": labels},
            "spec": spec,
        },
        {
            "apiVersion": api,
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name, "labels": labels},
            "spec": {"policyName": name, "validationActions": ["Deny"]},
        },
    ]


_LEARNER = (
    "has(request.namespace) && request.namespace != '' && "
    "request.userInfo.username.startsWith('system:serviceaccount:' + request.namespace + ':')"
)


def _labs_immutable() -> dict[str, Any]:
    """A published lab version never changes, whoever asks: a session keeps what it started with."""
    return {
        "failurePolicy": "Fail",
        "matchConstraints": {
            "resourceRules": [
                {"apiGroups": [GROUP], "apiVersions": ["*"], "resources": ["labs"], "operations": ["UPDATE"]}
            ],
        },
        "validations": [
            {
                "expression": "object.spec == oldObject.spec",
                "messageExpression": "'lab ' + request.name + ' is a published version and cannot be "
                "changed: publish a new version (bump version in lab.yaml)'",
                "reason": "Forbidden",
            }
        ],
    }


def _sessions() -> dict[str, Any]:
    """A session's lab and version are fixed at start; only instructors may override the gates."""
    return {
        "failurePolicy": "Fail",
        "matchConstraints": {
            "resourceRules": [
                {
                    "apiGroups": [GROUP],
                    "apiVersions": ["*"],
                    "resources": ["labsessions"],
                    "operations": ["CREATE", "UPDATE"],
                }
            ],
        },
        "variables": [{"name": "learner", "expression": _LEARNER}],
        "validations": [
            {
                "expression": "oldObject == null || "
                "(object.spec.lab == oldObject.spec.lab && object.spec.version == oldObject.spec.version)",
                "messageExpression": "'lab session ' + request.name + ' keeps the lab and version it started "
                "with: stop it and start the lab again'",
                "reason": "Forbidden",
            },
            {
                "expression": "!variables.learner || !has(object.spec.override) || !object.spec.override || "
                "(oldObject != null && has(oldObject.spec.override) && oldObject.spec.override)",
                "message": "only an instructor can start a lab past its level or prerequisites "
                "(labctl lab start --learner EMAIL --override)",
                "reason": "Forbidden",
            },
        ],
    }


# Where a learner's object carries a pod spec: a Pod; a Deployment, ReplicaSet, StatefulSet,
# DaemonSet or Job; a CronJob. Pods their controllers create are not the learner's requests:
# the template is where a pin must be stopped.
_POD_SPEC_PATHS = ("spec", "spec.template.spec", "spec.jobTemplate.spec.template.spec")
NODE_NAME_MESSAGE = (
    "spec.nodeName is not allowed in learner namespaces: it skips the scheduler, so the taints, "
    "labels and free GPUs of nodes are never checked. Leave nodeName out and let the scheduler choose: "
    "nodeSelector (or node affinity) for the node labels you need, tolerations for a tainted "
    "pool, and a GPU in resources.limits (nvidia.com/gpu) for the GPU pool"
)


def _pinned(path: str) -> str:
    """CEL: the object pins a pod spec at ``path`` to a node, and did not already (on UPDATE).

    The ratchet lets a learner label a pod the scheduler bound (its nodeName is then set) and
    edit an object admitted before the policy, without letting them pin anything new."""
    new, old = f"object.{path}.nodeName", f"oldObject.{path}.nodeName"
    return f"({_has_path(new)} && {new} != '' && !(oldObject != null && {_has_path(old)} && {old} == {new}))"


def _no_node_name() -> dict[str, Any]:
    """Learners' pods and pod templates may not set spec.nodeName (see the module docstring)."""
    rules = {
        "": ["pods"],
        "apps": ["deployments", "replicasets", "statefulsets", "daemonsets"],
        "batch": ["jobs", "cronjobs"],
    }
    return {
        "failurePolicy": "Fail",
        "matchConstraints": {
            "namespaceSelector": {"matchLabels": {ROLE_LABEL: "learner"}},
            # DaemonSets too, though learners may not create them (tenancy.LEARNER_RULES).
            "resourceRules": [
                {
                    "apiGroups": [group],
                    "apiVersions": ["*"],
                    "resources": resources,
                    "operations": ["CREATE", "UPDATE"],
                }
                for group, resources in rules.items()
            ],
        },
        "variables": [
            {"name": "learner", "expression": _LEARNER},
            {"name": "pinned", "expression": " || ".join(_pinned(p) for p in _POD_SPEC_PATHS)},
        ],
        "validations": [
            {
                "expression": "!variables.learner || !variables.pinned",
                # As a CEL string literal: the message has no quote or backslash (a test keeps it so).
                "messageExpression": "request.resource.resource + ' ' + request.name + ': ' + "
                f"'{NODE_NAME_MESSAGE}'",
                "reason": "Forbidden",
            }
        ],
    }


LEARNER_EGRESS_MESSAGE = (
    "egress rules of learner NetworkPolicies may name only pods of their own namespace (a podSelector): "
    "DNS, the API server and, as the cohort egress setting allows, other namespaces and the internet "
    "are opened by the policies labctl manages"
)


def _learner_egress() -> dict[str, Any]:
    """Learners' NetworkPolicies: every egress rule names peers, and each is a podSelector alone.

    An egress rule without ``to`` (or with an empty one) allows every destination; a
    namespaceSelector or an ipBlock reaches beyond the namespace."""
    own_pods_only = (
        "object.spec.egress.all(rule, has(rule.to) && size(rule.to) > 0 && "
        "rule.to.all(peer, !has(peer.ipBlock) && !has(peer.namespaceSelector)))"
    )
    return {
        "failurePolicy": "Fail",
        "matchConstraints": {
            "namespaceSelector": {"matchLabels": {ROLE_LABEL: "learner"}},
            "resourceRules": [
                {
                    "apiGroups": ["networking.k8s.io"],
                    "apiVersions": ["*"],
                    "resources": ["networkpolicies"],
                    "operations": ["CREATE", "UPDATE"],
                }
            ],
        },
        "variables": [{"name": "learner", "expression": _LEARNER}],
        "validations": [
            {
                "expression": f"!variables.learner || !has(object.spec.egress) || {own_pods_only}",
                # As a CEL string literal: the message has no quote or backslash.
                "messageExpression": f"'networkpolicy ' + request.name + ': ' + '{LEARNER_EGRESS_MESSAGE}'",
                "reason": "Forbidden",
            }
        ],
    }


def render_policies() -> list[dict[str, Any]]:
    protect = {
        "failurePolicy": "Fail",
        "matchConstraints": {
            "namespaceSelector": {"matchLabels": {ROLE_LABEL: "learner"}},
            "resourceRules": [
                {
                    "apiGroups": ["*"],
                    "apiVersions": ["*"],
                    "resources": ["*"],
                    "operations": ["CREATE", "UPDATE", "DELETE"],
                    "scope": "Namespaced",
                }
            ],
        },
        "variables": [
            {
                "name": "learner",
                "expression": "has(request.namespace) && request.namespace != '' && "
                "request.userInfo.username.startsWith("
                "'system:serviceaccount:' + request.namespace + ':')",
            },
            {
                "name": "touchesManaged",
                "expression": f"(oldObject != null && {_MANAGED.format(o='oldObject')}) || "
                f"(object != null && (({_MANAGED.format(o='object')}) || "
                + " || ".join(_template_managed(p) for p in _TEMPLATE_PATHS)
                + "))",
            },
        ],
        "validations": [
            {
                "expression": "!variables.learner || !variables.touchesManaged",
                "messageExpression": "'objects managed by labctl cannot be changed by learners: ' + "
                "request.resource.resource + ' ' + request.name",
                "reason": "Forbidden",
            }
        ],
    }
    # A recorded grade attempt never changes, whoever asks (cluster-admin included): a
    # re-grade is a new attempt. Labels and owners may still be edited; deletion is RBAC's.
    append_only = {
        "failurePolicy": "Fail",
        "matchConstraints": {
            "resourceRules": [
                {
                    "apiGroups": [GROUP],
                    "apiVersions": ["*"],
                    "resources": ["gradeattempts"],
                    "operations": ["UPDATE"],
                }
            ],
        },
        "validations": [
            {
                "expression": "object.spec == oldObject.spec",
                "messageExpression": "'grade attempt ' + request.name + ' is a record and cannot be "
                "changed: grade again to add a new attempt'",
                "reason": "Forbidden",
            }
        ],
    }
    return [
        *_denying(POLICY_NAME, protect),
        *_denying(GRADES_POLICY_NAME, append_only),
        *_denying(LABS_POLICY_NAME, _labs_immutable()),
        *_denying(SESSIONS_POLICY_NAME, _sessions()),
        *_denying(NODE_NAME_POLICY_NAME, _no_node_name()),
        *_denying(LEARNER_EGRESS_POLICY_NAME, _learner_egress()),
    ]
