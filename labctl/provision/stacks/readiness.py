"""Whether a learner's stacks are up, read from their live Deployments."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from labctl.core.labels import MANAGED_BY
from labctl.provision.stacks.common import STACK_LABEL
from labctl.provision.stacks.settings import STACK_COMPONENTS


def deployment_ready(deployment: Mapping[str, Any]) -> bool:
    """Rolled out and available, as ``kubectl rollout status`` would say; a Deployment scaled
    to zero or being deleted serves nothing and is not ready."""
    meta = deployment.get("metadata") or {}
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    wanted = spec.get("replicas", 1)
    if meta.get("deletionTimestamp") or wanted < 1:
        return False
    if status.get("observedGeneration", 0) < meta.get("generation", 0):
        return False  # the status describes an older spec
    updated = status.get("updatedReplicas", 0)
    return bool(
        updated >= wanted
        and status.get("availableReplicas", 0) >= wanted
        and status.get("replicas", 0) <= updated  # no pod of an older template left
    )


def stack_readiness(
    deployments: Iterable[Mapping[str, Any]], *, expected: Iterable[str] = STACK_COMPONENTS
) -> dict[str, bool]:
    """Component name -> ready, for every ``expected`` component, from one namespace's Deployments.

    A component with no Deployment is not ready. Only Deployments labctl made count: a learner
    cannot label theirs ``managed-by: labctl`` (the admission policy), so cannot mask ours.
    """
    wanted = tuple(expected)
    ready: dict[str, bool] = {}
    for obj in deployments:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        component = labels.get(STACK_LABEL)
        if component not in wanted or not labels.items() >= MANAGED_BY.items():
            continue
        ready[component] = ready.get(component, True) and deployment_ready(obj)
    return {component: ready.get(component, False) for component in wanted}
