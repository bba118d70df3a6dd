"""What each node offers and what is placed on it: the `labctl sim nodes` table."""

from __future__ import annotations

from typing import Any

from labctl.kube import condition_true
from labctl.localcluster.realnode.kubelet import NODE_LABEL as REAL_NODE_LABEL
from labctl.localcluster.sim.nodes import GPU_RESOURCE, POOL_LABEL

ACTIVE_PHASES = ("Pending", "Running")


def _gpus_requested(pod: dict[str, Any]) -> int:
    total = 0
    for container in pod["spec"].get("containers") or []:
        resources = container.get("resources") or {}
        value = (resources.get("requests") or {}).get(GPU_RESOURCE) or (resources.get("limits") or {}).get(
            GPU_RESOURCE
        )
        total += int(value or 0)
    return total


def node_rows(nodes: list[dict[str, Any]], pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per node: pool, readiness, capacity, GPUs in use by bound, active pods, taints."""
    placed: dict[str, list[dict[str, Any]]] = {}
    for pod in pods:
        node_name = pod["spec"].get("nodeName")
        if node_name and (pod.get("status") or {}).get("phase") in ACTIVE_PHASES:
            placed.setdefault(node_name, []).append(pod)
    rows = []
    for node in sorted(nodes, key=lambda n: n["metadata"]["name"]):
        name = node["metadata"]["name"]
        labels = node["metadata"].get("labels") or {}
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        on_node = placed.get(name, [])
        gpus = int(allocatable.get(GPU_RESOURCE, 0))
        rows.append(
            {
                "name": name,
                # The real node is in no kwok pool: containers really run there.
                "pool": labels.get(POOL_LABEL) or ("real" if REAL_NODE_LABEL in labels else ""),
                "ready": condition_true(node, "Ready"),
                "cpu": allocatable.get("cpu", ""),
                "memory": allocatable.get("memory", ""),
                "gpus": gpus,
                "gpus_used": sum(_gpus_requested(p) for p in on_node),
                "gpu_product": labels.get("nvidia.com/gpu.product", ""),
                "pods": len(on_node),
                "taints": ",".join(
                    f"{t['key']}={t.get('value', '')}:{t['effect']}"
                    for t in (node.get("spec") or {}).get("taints") or []
                ),
            }
        )
    return rows
