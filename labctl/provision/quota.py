"""Quota profiles: what one learner's namespace may consume.

Ephemeral storage (container logs, writable layers, disk-backed emptyDirs) is the node's own
disk, shared by every learner on it: left unbounded, one learner filling it makes the kubelet
evict everyone's pods. The quota caps the namespace's total and the LimitRange gives every
container a request and a limit (tenancy.py), so the kubelet evicts only the pod that wrote
past its own limit.
"""

from __future__ import annotations

from dataclasses import dataclass

from labctl.core.errors import UsageError


@dataclass(frozen=True)
class EphemeralStorage:
    """Node-local disk: the namespace's total requests and limits, and a container's defaults."""

    requests: str  # reserved on nodes: what the scheduler packs by
    limits: str  # the most the namespace's pods may write before the kubelet evicts them
    default: str  # a container's limit when it names none (LimitRange default)
    default_request: str  # and its request (LimitRange defaultRequest)


@dataclass(frozen=True)
class QuotaProfile:
    """Hard limits of a learner namespace (ResourceQuota) and per-container defaults (LimitRange)."""

    name: str
    requests_cpu: str
    limits_cpu: str
    requests_memory: str
    limits_memory: str
    pods: int
    services: int
    pvcs: int
    storage: str
    gpus: int
    ephemeral: EphemeralStorage

    def hard(self) -> dict[str, str]:
        return {
            "requests.cpu": self.requests_cpu,
            "limits.cpu": self.limits_cpu,
            "requests.memory": self.requests_memory,
            "limits.memory": self.limits_memory,
            "pods": str(self.pods),
            "services": str(self.services),
            # NodePorts and LoadBalancers would expose a learner's services beyond the cluster.
            "services.nodeports": "0",
            "services.loadbalancers": "0",
            "persistentvolumeclaims": str(self.pvcs),
            "requests.storage": self.storage,
            "requests.nvidia.com/gpu": str(self.gpus),
            "requests.ephemeral-storage": self.ephemeral.requests,
            "limits.ephemeral-storage": self.ephemeral.limits,
        }


# The stacks take ~0.3Gi of these requests and ~2.5Gi of the limits (their emptyDirs' size
# limits plus room for logs, see stacks/common.py). What is left admits at least as many pods
# with the defaults as the CPU quota does: disk is not what a learner runs out of first. Limits
# stay below the claims' storage: data belongs on claims, the node's disk is scratch. A default
# of 1Gi holds a lab's data set, a pip cache and the logs; gpu pods unpack larger data sets and
# write checkpoints before they upload them.
_EPHEMERAL = {
    "small": EphemeralStorage("4Gi", "10Gi", "1Gi", "128Mi"),
    "medium": EphemeralStorage("8Gi", "20Gi", "1Gi", "128Mi"),
    "large": EphemeralStorage("16Gi", "40Gi", "1Gi", "128Mi"),
    "gpu": EphemeralStorage("16Gi", "64Gi", "2Gi", "256Mi"),
}

PROFILES: dict[str, QuotaProfile] = {
    p.name: p
    for p in (
        QuotaProfile("small", "2", "4", "4Gi", "8Gi", 20, 10, 5, "20Gi", 0, _EPHEMERAL["small"]),
        QuotaProfile("medium", "4", "8", "8Gi", "16Gi", 40, 20, 10, "50Gi", 0, _EPHEMERAL["medium"]),
        QuotaProfile("large", "8", "16", "16Gi", "32Gi", 80, 30, 20, "100Gi", 0, _EPHEMERAL["large"]),
        QuotaProfile("gpu", "8", "16", "32Gi", "64Gi", 40, 20, 10, "100Gi", 2, _EPHEMERAL["gpu"]),
    )
}


def profile(name: str) -> QuotaProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise UsageError(f"unknown quota profile {name!r}; choose one of: {', '.join(PROFILES)}") from None
