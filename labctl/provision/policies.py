"""Cluster-wide admission policy that keeps learners' hands off what labctl manages.

RBAC is additive: a learner who may edit NetworkPolicies may edit labctl's too. This
ValidatingAdmissionPolicy (CEL, in-process in the API server: no webhook to run) denies
any request from a ServiceAccount of a learner namespace that would create, change or
delete an object labelled ``app.kubernetes.io/managed-by: labctl`` in that namespace.
Everyone else — the controller, administrators, the garbage collector — passes.
"""

from __future__ import annotations

from typing import Any

from labctl.provision.tenancy import ROLE_LABEL

POLICY_NAME = "labctl-protect-managed-objects"

_MANAGED = (
    "has({o}.metadata.labels) && 'app.kubernetes.io/managed-by' in {o}.metadata.labels && "
    "{o}.metadata.labels['app.kubernetes.io/managed-by'] == 'labctl'"
)


def render_policies() -> list[dict[str, Any]]:
    labels = {"app.kubernetes.io/part-of": "labctl"}
    return [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": POLICY_NAME, "labels": labels},
            "spec": {
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
                        f"(object != null && {_MANAGED.format(o='object')})",
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
            },
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": POLICY_NAME, "labels": labels},
            "spec": {"policyName": POLICY_NAME, "validationActions": ["Deny"]},
        },
    ]
