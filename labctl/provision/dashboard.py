"""The in-cluster dashboard (`labctl install --dashboard`): the controller's image running
`labctl dashboard --auth token`, reached with `kubectl port-forward`.

Its ServiceAccount may only read labctl's objects, and ask the API server about viewers' tokens
(``system:auth-delegator``: TokenReview and SubjectAccessReview): it never writes to the cluster,
and what each viewer sees is decided by their own rights, not the dashboard's.
"""

from __future__ import annotations

from typing import Any

from labctl.provision.tenancy import CONTROLLER_NAMESPACE, READ_VERBS

DASHBOARD_NAME = "labctl-dashboard"
DASHBOARD_PORT = 8080
DASHBOARD_LABELS = {"app.kubernetes.io/part-of": "labctl", "app.kubernetes.io/name": DASHBOARD_NAME}
RBAC = "rbac.authorization.k8s.io/v1"


def dashboard_rules() -> list[dict[str, Any]]:
    """Read what the pages show; nothing else."""
    return [
        {
            "apiGroups": ["labctl.dev"],
            "resources": ["cohorts", "learners", "labs", "labsessions", "gradeattempts"],
            "verbs": list(READ_VERBS),
        }
    ]


def render_dashboard(image: str) -> list[dict[str, Any]]:
    """ServiceAccount, read-only ClusterRole (+Binding), auth-delegator binding, Deployment, Service."""
    ns = CONTROLLER_NAMESPACE
    meta = {"name": DASHBOARD_NAME, "namespace": ns, "labels": dict(DASHBOARD_LABELS)}
    cluster_meta = {"name": DASHBOARD_NAME, "labels": dict(DASHBOARD_LABELS)}
    subject = [{"kind": "ServiceAccount", "name": DASHBOARD_NAME, "namespace": ns}]
    probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10}
    container = {
        "name": "dashboard",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        # Listening on every address of the pod is safe only because every viewer is authorised.
        "args": ["dashboard", "--auth", "token", "--address", "0.0.0.0", "--port", str(DASHBOARD_PORT)],
        "ports": [{"name": "http", "containerPort": DASHBOARD_PORT}],
        "resources": {
            "requests": {"cpu": "50m", "memory": "128Mi"},
            "limits": {"cpu": "1", "memory": "256Mi"},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "readinessProbe": probe,
        "livenessProbe": {**probe, "periodSeconds": 20, "failureThreshold": 6},
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {"apiVersion": RBAC, "kind": "ClusterRole", "metadata": cluster_meta, "rules": dashboard_rules()},
        {
            "apiVersion": RBAC,
            "kind": "ClusterRoleBinding",
            "metadata": cluster_meta,
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": DASHBOARD_NAME,
            },
            "subjects": subject,
        },
        {
            "apiVersion": RBAC,
            "kind": "ClusterRoleBinding",
            "metadata": {**cluster_meta, "name": f"{DASHBOARD_NAME}-auth-delegator"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "system:auth-delegator",
            },
            "subjects": subject,
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta,
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app.kubernetes.io/name": DASHBOARD_NAME}},
                "template": {
                    "metadata": {"labels": dict(DASHBOARD_LABELS)},
                    "spec": {
                        "serviceAccountName": DASHBOARD_NAME,
                        "containers": [container],
                        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
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
                "selector": {"app.kubernetes.io/name": DASHBOARD_NAME},
                "ports": [{"name": "http", "port": DASHBOARD_PORT, "targetPort": "http"}],
            },
        },
    ]
