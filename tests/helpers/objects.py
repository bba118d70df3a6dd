"""Plain Kubernetes objects for tests, written the way a learner would write them."""

from __future__ import annotations

from typing import Any

GPU = "nvidia.com/gpu"
GPU_TOLERATION = {"key": GPU, "operator": "Exists", "effect": "NoSchedule"}
RESTRICTED_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def container(
    *,
    name: str = "main",
    cpu: str = "100m",
    memory: str = "64Mi",
    gpus: int = 0,
    security: dict[str, Any] | None = None,
) -> dict[str, Any]:
    requests: dict[str, str] = {"cpu": cpu, "memory": memory}
    limits: dict[str, str] = {"cpu": cpu, "memory": memory}
    if gpus:
        # Extended resources must be set in limits; requests default to them.
        requests[GPU] = limits[GPU] = str(gpus)
    spec: dict[str, Any] = {
        "name": name,
        "image": "registry.invalid/labctl/train:1",
        "resources": {"requests": requests, "limits": limits},
    }
    if security is not None:
        spec["securityContext"] = security
    return spec


def pod_spec(
    *, gpus: int = 0, tolerate_gpu: bool = False, security: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [container(gpus=gpus, security=security)], **extra}
    if tolerate_gpu:
        spec["tolerations"] = [dict(GPU_TOLERATION)]
    return spec


def pod(name: str, namespace: str, **kwargs: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": pod_spec(**kwargs),
    }
