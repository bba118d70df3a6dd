"""What a namespace holds, counted the way the ResourceQuota controller counts it.

Tests compare this with a quota's ``status.used``: admission charges a create before the
object is stored, so a create that fails afterwards (a lost race, a cancelled request) leaves
``used`` above what is held until the quota controller recounts. Counted here from the
objects themselves, independently of the quota system.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from labctl.kube import Kube
from labctl.provision.stacks.settings import parse_quantity

POD_RESOURCES = ("cpu", "memory", "ephemeral-storage")
GPU = "nvidia.com/gpu"


def namespace_usage(kube: Kube, namespace: str) -> dict[str, Decimal]:
    """Every quota resource labctl's profiles limit, as held by ``namespace`` now."""
    return usage_of(
        pods=kube.list("v1", "Pod", namespace=namespace),
        services=kube.list("v1", "Service", namespace=namespace),
        claims=kube.list("v1", "PersistentVolumeClaim", namespace=namespace),
    )


def usage_of(
    *,
    pods: Iterable[Mapping[str, Any]],
    services: Iterable[Mapping[str, Any]],
    claims: Iterable[Mapping[str, Any]],
) -> dict[str, Decimal]:
    services, claims = list(services), list(claims)
    exposed = [s for s in services if _type(s) in ("NodePort", "LoadBalancer")]
    live = [p for p in pods if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
    usage: dict[str, Decimal] = {
        "pods": Decimal(len(live)),
        "services": Decimal(len(services)),
        "services.loadbalancers": Decimal(sum(1 for s in services if _type(s) == "LoadBalancer")),
        "services.nodeports": Decimal(sum(len(s["spec"].get("ports") or []) for s in exposed)),
        "persistentvolumeclaims": Decimal(len(claims)),
        "requests.storage": sum(
            (parse_quantity(c["spec"]["resources"]["requests"]["storage"]) for c in claims), Decimal(0)
        ),
    }
    for kind in ("requests", "limits"):
        names = [*POD_RESOURCES, GPU] if kind == "requests" else list(POD_RESOURCES)
        for name in names:
            usage[f"{kind}.{name}"] = sum((pod_amount(p["spec"], kind, name) for p in live), Decimal(0))
    return usage


def pod_amount(spec: Mapping[str, Any], kind: str, name: str) -> Decimal:
    """A pod's ``kind`` (requests/limits) of ``name``, as the scheduler and quota reckon it.

    App containers and sidecars (init containers that keep running) add up; a plain init
    container runs alone beside the sidecars started before it, so the pod needs the larger.
    """

    def amount(container: Mapping[str, Any]) -> Decimal:
        value = ((container.get("resources") or {}).get(kind) or {}).get(name)
        if value is None and kind == "requests":  # a limit alone is the request too
            value = ((container.get("resources") or {}).get("limits") or {}).get(name)
        return parse_quantity(str(value)) if value is not None else Decimal(0)

    sidecars, init_peak = Decimal(0), Decimal(0)
    for init in spec.get("initContainers") or []:
        if init.get("restartPolicy") == "Always":
            sidecars += amount(init)
            init_peak = max(init_peak, sidecars)
        else:
            init_peak = max(init_peak, sidecars + amount(init))
    running = sum((amount(c) for c in spec.get("containers") or []), Decimal(0)) + sidecars
    overhead = (spec.get("overhead") or {}).get(name)
    return max(running, init_peak) + (parse_quantity(str(overhead)) if overhead else Decimal(0))


def _type(service: Mapping[str, Any]) -> str:
    return str(service["spec"].get("type") or "ClusterIP")
