"""What `labctl install` puts in a cluster: CRDs, the admission policy, the controller.

Rendered here, applied by the CLI, and checked in under manifests/ for people to read
(hack/gen-manifests.py writes them; a unit test keeps them in sync).
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
from collections.abc import Mapping
from typing import Any

from labctl.api.crds import crds
from labctl.provision import network
from labctl.provision.dashboard import render_dashboard
from labctl.provision.policies import render_policies
from labctl.provision.tenancy import (
    ALL_VERBS,
    CONTROLLER_NAMESPACE,
    LEARNER_RULES,
    MONITORING_LABEL,
    READ_VERBS,
)
from labctl.sandbox import pod as sandbox_pod

CONTROLLER_NAME = "labctl-controller"
KEY_SECRET = "labctl-controller-key"
METRICS_PORT = 8080
LIVENESS_PORT = 8081
DEFAULT_IMAGE = "labctl.local/labctl-controller:0.1.0"
SETTINGS_CONFIGMAP = "labctl-stack-settings"
SETTINGS_KEY = "stack-settings.yaml"
SETTINGS_DIR = "/etc/labctl"
SETTINGS_CHECKSUM = "labctl.dev/stack-settings-sha256"
PART_OF = {"app.kubernetes.io/part-of": "labctl"}
CONTROLLER_LABELS = {**PART_OF, "app.kubernetes.io/name": CONTROLLER_NAME}


def controller_rules() -> list[dict[str, Any]]:
    """Least privilege for the controller. It must hold every right it grants learners
    (RBAC forbids granting what you do not have), and what it needs to build namespaces."""
    return [
        {
            "apiGroups": ["labctl.dev"],
            "resources": ["cohorts", "learners", "labs", "labsessions", "gradeattempts"],
            "verbs": ALL_VERBS,
        },
        {
            "apiGroups": ["labctl.dev"],
            "resources": ["cohorts/status", "learners/status", "labsessions/status"],
            "verbs": ["get", "update", "patch"],
        },
        {
            "apiGroups": [""],
            "resources": ["namespaces"],
            "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
        },
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch", "update"]},
        {"apiGroups": [""], "resources": ["resourcequotas", "limitranges"], "verbs": ALL_VERBS},
        {
            "apiGroups": ["rbac.authorization.k8s.io"],
            "resources": ["roles", "rolebindings"],
            "verbs": ALL_VERBS,
        },
        {
            "apiGroups": ["apiextensions.k8s.io"],
            "resources": ["customresourcedefinitions"],
            "verbs": READ_VERBS,
        },
        *LEARNER_RULES,
    ]


def render_namespace() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": CONTROLLER_NAMESPACE,
            "labels": {**PART_OF, "pod-security.kubernetes.io/enforce": "restricted"},
        },
    }


def render_key_secret() -> dict[str, Any]:
    """Created once, never re-applied: it is the root of every learner's derived credentials."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": KEY_SECRET, "namespace": CONTROLLER_NAMESPACE, "labels": dict(PART_OF)},
        "type": "Opaque",
        "stringData": {"key": secrets.token_hex(32)},
    }


def render_controller(
    image: str = DEFAULT_IMAGE,
    stack_settings: str = "{}\n",
    node_selector: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """ServiceAccount, ClusterRole(+Binding), stack settings ConfigMap, Deployment and metrics
    Service of the in-cluster controller. ``stack_settings`` is the YAML text of the settings
    (images, resources, storage): `{}` is the defaults. ``node_selector``: where its pod may run."""
    ns = CONTROLLER_NAMESPACE
    meta = {"name": CONTROLLER_NAME, "namespace": ns, "labels": dict(CONTROLLER_LABELS)}
    security = {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,  # not root's group either: files it writes are not group 0's
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    container = {
        "name": "controller",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": [
            "controller",
            "run",
            "--metrics-port",
            str(METRICS_PORT),
            "--liveness-port",
            str(LIVENESS_PORT),
            "--stack-settings",
            f"{SETTINGS_DIR}/{SETTINGS_KEY}",
        ],
        "ports": [{"name": "metrics", "containerPort": METRICS_PORT}],
        "resources": {
            # Disk: its logs (the kubelet rotates them at ~30Mi) and the /tmp emptyDir (64Mi).
            "requests": {"cpu": "100m", "memory": "128Mi", "ephemeral-storage": "32Mi"},
            "limits": {"cpu": "1", "memory": "512Mi", "ephemeral-storage": "128Mi"},
        },
        "securityContext": security,
        # Ready: its Service's port answers (the metrics). Alive: kopf's own health check, which
        # fails when the operator's loop is wedged; a pod that is merely busy is not restarted.
        "readinessProbe": {"httpGet": {"path": "/metrics", "port": "metrics"}, "periodSeconds": 10},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": LIVENESS_PORT}, "periodSeconds": 20},
        "volumeMounts": [
            {"name": "stack-settings", "mountPath": SETTINGS_DIR, "readOnly": True},
            # The root filesystem is read-only; the API client caches discovery in /tmp.
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    # The settings are read at start: a checksum in the pod template rolls the controller
    # when they change (as Helm charts do with checksum/config).
    checksum = hashlib.sha256(stack_settings.encode()).hexdigest()
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": CONTROLLER_NAME, "labels": dict(CONTROLLER_LABELS)},
            "rules": controller_rules(),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": CONTROLLER_NAME, "labels": dict(CONTROLLER_LABELS)},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": CONTROLLER_NAME,
            },
            "subjects": [{"kind": "ServiceAccount", "name": CONTROLLER_NAME, "namespace": ns}],
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {**meta, "name": SETTINGS_CONFIGMAP},
            "data": {SETTINGS_KEY: stack_settings},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta,
            "spec": {
                "replicas": 1,
                "strategy": {"type": "Recreate"},  # kopf runs standalone: one at a time
                "selector": {"matchLabels": {"app.kubernetes.io/name": CONTROLLER_NAME}},
                "template": {
                    "metadata": {
                        "labels": dict(CONTROLLER_LABELS),
                        "annotations": {SETTINGS_CHECKSUM: checksum},
                    },
                    "spec": {
                        "serviceAccountName": CONTROLLER_NAME,
                        **({"nodeSelector": dict(node_selector)} if node_selector else {}),
                        "containers": [container],
                        "volumes": [
                            {"name": "stack-settings", "configMap": {"name": SETTINGS_CONFIGMAP}},
                            {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                        ],
                        "securityContext": {
                            "runAsNonRoot": True,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {
                "selector": {"app.kubernetes.io/name": CONTROLLER_NAME},
                "ports": [{"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics"}],
            },
        },
        render_controller_ingress(meta),
        render_controller_egress(meta),
    ]


def render_controller_ingress(meta: dict[str, Any]) -> dict[str, Any]:
    """Who may reach the controller's pod: monitoring namespaces, on its metrics port only.

    Nothing else ever connects to it (the kubelet's probes are not subject to policies); a
    learner's pod that could would read every learner's reconcile metrics."""
    monitoring = {"namespaceSelector": {"matchLabels": {MONITORING_LABEL: "true"}}}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {**meta, "name": f"{CONTROLLER_NAME}-ingress"},
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": CONTROLLER_NAME}},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [monitoring], "ports": [{"port": "metrics"}]}],
        },
    }


def render_controller_egress(meta: dict[str, Any]) -> dict[str, Any]:
    """Where the controller's pod may connect to: any pod (learners' Services it grades, cluster
    DNS) and any address (the API server, wherever the control plane lives: rendered once at
    install, so no address is known here) except link-local and cloud metadata, which it never
    needs and whose credentials are the node's, not labctl's."""
    blocked = network.blocked()
    v4 = [c for c in blocked if ipaddress.ip_network(c).version == 4]
    v6 = [c for c in blocked if ipaddress.ip_network(c).version == 6]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {**meta, "name": f"{CONTROLLER_NAME}-egress"},
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": CONTROLLER_NAME}},
            "policyTypes": ["Egress"],
            "egress": [
                {
                    "to": [
                        {"namespaceSelector": {}},
                        {"ipBlock": {"cidr": "0.0.0.0/0", "except": v4}},
                        {"ipBlock": {"cidr": "::/0", "except": v6}},
                    ]
                }
            ],
        },
    }


CATALOG_READER = "labctl-catalog-reader"


def render_catalog_reader() -> list[dict[str, Any]]:
    """Anyone signed in may read the published labs (learners list and show them): a Lab holds
    what a learner may see; solutions and hidden data are never in it."""
    meta = {"name": CATALOG_READER, "labels": dict(PART_OF)}
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": meta,
            "rules": [{"apiGroups": ["labctl.dev"], "resources": ["labs"], "verbs": READ_VERBS}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": meta,
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": CATALOG_READER,
            },
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:authenticated"},
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:serviceaccounts"},
            ],
        },
    ]


def render_install(
    *,
    controller: bool,
    image: str = DEFAULT_IMAGE,
    stack_settings: str = "{}\n",
    node_selector: Mapping[str, str] | None = None,
    dashboard: bool = False,
) -> list[dict[str, Any]]:
    """Everything `labctl install` applies, in order (the key Secret is handled separately).
    ``dashboard``: the in-cluster dashboard too (labctl.provision.dashboard), from the same image."""
    objects = [*crds(), *render_policies(), render_namespace(), *render_catalog_reader()]
    if controller:
        # The in-cluster controller runs learners' code in short-lived pods of a namespace of its own.
        objects += [*render_controller(image, stack_settings, node_selector), *sandbox_pod.render_namespace()]
    if dashboard:
        objects += render_dashboard(image)
    return objects
