"""The guard-rails of one learner's namespace, rendered as plain objects.

A learner acts only through ServiceAccounts of their own namespace. RBAC gives them
edit-like rights there and nothing elsewhere; Pod Security ``restricted`` stops privileged,
hostPath, hostNetwork and hostPID pods; two ResourceQuotas cap what they use, GPUs and the
node's disk (ephemeral storage) included; NetworkPolicies deny ingress from other learners
(and, rendered by egress.py, egress beyond DNS, their namespace and the API server).
The objects labctl owns in the namespace are protected from the learner by a
ValidatingAdmissionPolicy (policies.py), since RBAC cannot grant "networkpolicies except
labctl's"; another refuses their pods a ``spec.nodeName``, which would skip the scheduler.
"""

from __future__ import annotations

from typing import Any

from labctl.core.labels import GROUP, MANAGED_BY
from labctl.provision.quota import QuotaProfile

LEARNER_SA = "learner"
LEARNER_ROLE = "labctl-learner"
CONTROLLER_NAMESPACE = "labctl-system"
ROLE_LABEL = f"{GROUP}/role"
COHORT_LABEL = f"{GROUP}/cohort"
LEARNER_LABEL = f"{GROUP}/learner"
MONITORING_LABEL = f"{GROUP}/monitoring"
EMAIL_ANNOTATION = f"{GROUP}/email"
COMPUTE_QUOTA = "labctl-quota"  # pods, CPU, memory, GPUs, ephemeral storage
OBJECT_QUOTA = "labctl-objects"  # Services and claims (see labctl.provision.quota)

ALL_VERBS = ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"]
READ_VERBS = ["get", "list", "watch"]

# What a learner may do in their own namespace: build and run ML workloads, never change
# RBAC, quotas, limits, or labctl's own objects, never read grades.
LEARNER_RULES: list[dict[str, Any]] = [
    {
        "apiGroups": [""],
        "resources": [
            "pods",
            "services",
            "endpoints",
            "configmaps",
            "secrets",
            "persistentvolumeclaims",
            "serviceaccounts",
        ],
        "verbs": ALL_VERBS,
    },
    {
        "apiGroups": [""],
        "resources": ["pods/log", "pods/status", "events", "resourcequotas", "limitranges"],
        "verbs": READ_VERBS,
    },
    {
        "apiGroups": [""],
        "resources": ["pods/exec", "pods/portforward", "pods/attach"],
        "verbs": ["get", "create"],
    },
    {
        "apiGroups": ["apps"],
        "resources": [
            "deployments",
            "statefulsets",
            "replicasets",
            "deployments/scale",
            "statefulsets/scale",
        ],
        "verbs": ALL_VERBS,
    },
    {"apiGroups": ["batch"], "resources": ["jobs", "cronjobs"], "verbs": ALL_VERBS},
    {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": ALL_VERBS},
    {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies", "ingresses"], "verbs": ALL_VERBS},
    {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": ALL_VERBS},
    {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": READ_VERBS},
    # Which pod serves a Service: `labctl lab connect` port-forwards their stacks as kubectl would.
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": READ_VERBS},
    # Their lab sessions: they start, check, reset and stop labs by writing the spec; the status
    # (results, score) is the controller's alone (no labsessions/status here).
    {"apiGroups": [GROUP], "resources": ["labsessions"], "verbs": ALL_VERBS},
]


def learner_labels(cohort: str, learner: str) -> dict[str, str]:
    return {**MANAGED_BY, COHORT_LABEL: cohort, LEARNER_LABEL: learner}


def _meta(name: str, namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": dict(labels)}


def render_namespace(name: str, *, cohort: str, email: str, owner: dict[str, Any] | None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "labels": {
            **learner_labels(cohort, name),
            ROLE_LABEL: "learner",
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/enforce-version": "latest",
            "pod-security.kubernetes.io/warn": "restricted",
            "pod-security.kubernetes.io/audit": "restricted",
        },
        "annotations": {EMAIL_ANNOTATION: email},
    }
    if owner:
        meta["ownerReferences"] = [owner]
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def render_guardrails(namespace: str, *, cohort: str, quota: QuotaProfile) -> list[dict[str, Any]]:
    """Quota, limits, network policies, the learner's ServiceAccount and its namespaced rights."""
    labels = learner_labels(cohort, namespace)
    return [
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": _meta(COMPUTE_QUOTA, namespace, labels),
            "spec": {"hard": quota.compute_hard()},
        },
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": _meta(OBJECT_QUOTA, namespace, labels),
            "spec": {"hard": quota.object_hard()},
        },
        {
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": _meta("labctl-limits", namespace, labels),
            "spec": {
                "limits": [
                    {
                        "type": "Container",
                        # Ephemeral storage too: the quota counts it, so a container naming none
                        # would be refused without these; with them, its logs and /tmp are bounded.
                        "default": {
                            "cpu": "500m",
                            "memory": "512Mi",
                            "ephemeral-storage": quota.ephemeral.default,
                        },
                        "defaultRequest": {
                            "cpu": "100m",
                            "memory": "128Mi",
                            "ephemeral-storage": quota.ephemeral.default_request,
                        },
                        "max": {
                            "cpu": quota.limits_cpu,
                            "memory": quota.limits_memory,
                            "ephemeral-storage": quota.ephemeral.limits,
                        },
                    }
                ]
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _meta("labctl-default-deny-ingress", namespace, labels),
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _meta("labctl-allow-platform", namespace, labels),
            "spec": {
                "podSelector": {},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [
                            {"podSelector": {}},  # the learner's own namespace, stacks included
                            {
                                "namespaceSelector": {
                                    "matchLabels": {"kubernetes.io/metadata.name": CONTROLLER_NAMESPACE}
                                }
                            },
                            {"namespaceSelector": {"matchLabels": {MONITORING_LABEL: "true"}}},
                        ]
                    }
                ],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": _meta(LEARNER_SA, namespace, labels),
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": _meta(LEARNER_ROLE, namespace, labels),
            "rules": LEARNER_RULES,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": _meta(LEARNER_ROLE, namespace, labels),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": LEARNER_ROLE},
            "subjects": [{"kind": "ServiceAccount", "name": LEARNER_SA, "namespace": namespace}],
        },
    ]
