"""Quota profiles: what one learner's namespace may consume.

Ephemeral storage (container logs, writable layers, disk-backed emptyDirs) is the node's own
disk, shared by every learner on it: left unbounded, one learner filling it makes the kubelet
evict everyone's pods. The quota caps the namespace's total and the LimitRange gives every
container a request and a limit (tenancy.py), so the kubelet evicts only the pod that wrote
past its own limit.

The limits come as two ResourceQuotas: one on compute (pods and what they request), one on the
objects labctl itself creates in the namespace too (Services, claims and their storage). A
create admitted and then lost leaves the quota it was charged to too high until that quota is
recounted (labctl.controller.quotas); apart, a recount of the objects' quota never races the
pods the namespace's Deployments are creating, and the compute quota is never touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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

    def compute_hard(self) -> dict[str, str]:
        """The limits of the compute quota: pods and what they request."""
        return {k: v for k, v in self.hard().items() if k not in OBJECT_RESOURCES}

    def object_hard(self) -> dict[str, str]:
        """The limits of the objects' quota: Services and claims, counted and summed."""
        return {k: v for k, v in self.hard().items() if k in OBJECT_RESOURCES}


# What the objects' quota limits: the kinds labctl creates in a learner's namespace that quota
# counts (no pods: the Deployments' controller creates those).
OBJECT_RESOURCES = frozenset(
    {"services", "services.nodeports", "services.loadbalancers", "persistentvolumeclaims", "requests.storage"}
)


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


# The kinds labctl creates in a learner's namespace that the quota counts one by one, and the
# quota resource each is counted as: a create of one that failed after admission shows as a
# count above what the namespace holds (labctl.controller.quotas).
COUNTED_KINDS = {"Service": "services", "PersistentVolumeClaim": "persistentvolumeclaims"}

# A hard limit on a kind that does not exist: it limits nothing, and adding or removing it is a
# change of `spec.hard`, the one change of a ResourceQuota on which kube-controller-manager's
# quota controller recounts its usage at once instead of at its next full resync (see
# labctl.controller.quotas). Its group is labctl's own, so no resource will ever answer to it.
RECOUNT_MARKER = "count/recounts.labctl.dev"


def with_recount_marker(quota: dict[str, Any]) -> dict[str, Any]:
    """A copy of a rendered ResourceQuota whose ``spec.hard`` also holds :data:`RECOUNT_MARKER`."""
    spec = quota["spec"]
    return {**quota, "spec": {**spec, "hard": {**spec["hard"], RECOUNT_MARKER: "0"}}}
