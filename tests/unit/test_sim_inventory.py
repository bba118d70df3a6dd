"""The `labctl sim nodes` rows: pools, capacity and the GPUs bound pods use."""

from __future__ import annotations

from typing import Any

from labctl.localcluster.realnode.kubelet import NODE_LABEL
from labctl.localcluster.sim.inventory import node_rows
from labctl.localcluster.sim.nodes import GPU_RESOURCE, POOL_LABEL


def node(name: str, labels: dict[str, str], gpus: int = 0) -> dict[str, Any]:
    allocatable = {"cpu": "2", "memory": "8Gi", **({GPU_RESOURCE: str(gpus)} if gpus else {})}
    return {
        "metadata": {"name": name, "labels": labels},
        "status": {"allocatable": allocatable, "conditions": [{"type": "Ready", "status": "True"}]},
    }


def pod(node_name: str, gpus: int, phase: str = "Running") -> dict[str, Any]:
    resources = {"limits": {GPU_RESOURCE: str(gpus)}} if gpus else {}
    return {
        "spec": {"nodeName": node_name, "containers": [{"resources": resources}]},
        "status": {"phase": phase},
    }


def test_pools_gpus_in_use_and_the_real_node() -> None:
    nodes = [node("lab-gpu-0", {POOL_LABEL: "gpu"}, gpus=4), node("lab-node", {NODE_LABEL: "lab"})]
    pods = [pod("lab-gpu-0", 3), pod("lab-gpu-0", 1, phase="Succeeded"), pod("lab-node", 0)]
    rows = {r["name"]: r for r in node_rows(nodes, pods)}
    assert (rows["lab-gpu-0"]["pool"], rows["lab-gpu-0"]["gpus"], rows["lab-gpu-0"]["gpus_used"]) == (
        "gpu",
        4,
        3,
    )
    assert rows["lab-gpu-0"]["pods"] == 1  # a finished pod holds nothing
    assert (rows["lab-node"]["pool"], rows["lab-node"]["pods"], rows["lab-node"]["ready"]) == (
        "real",
        1,
        True,
    )
