"""Quota profiles: what one learner's namespace may consume."""

from __future__ import annotations

from dataclasses import dataclass

from labctl.errors import UsageError


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
        }


PROFILES: dict[str, QuotaProfile] = {
    p.name: p
    for p in (
        QuotaProfile("small", "2", "4", "4Gi", "8Gi", 20, 10, 5, "20Gi", 0),
        QuotaProfile("medium", "4", "8", "8Gi", "16Gi", 40, 20, 10, "50Gi", 0),
        QuotaProfile("large", "8", "16", "16Gi", "32Gi", 80, 30, 20, "100Gi", 0),
        QuotaProfile("gpu", "8", "16", "32Gi", "64Gi", 40, 20, 10, "100Gi", 2),
    )
}


def profile(name: str) -> QuotaProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise UsageError(f"unknown quota profile {name!r}; choose one of: {', '.join(PROFILES)}") from None
