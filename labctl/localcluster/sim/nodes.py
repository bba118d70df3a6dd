"""Render the kwok nodes of a simulated cluster as plain Kubernetes objects.

GPU nodes carry what a real GPU node carries once the NVIDIA device plugin and GPU
feature discovery have run: ``nvidia.com/gpu`` in capacity and allocatable, the
``nvidia.com/gpu=present:NoSchedule`` taint cloud providers put on GPU pools, and the
``nvidia.com/gpu.*`` product labels. That is what lets the GPU-scheduling lab be taught
and graded by the real kube-scheduler with no GPU in sight.
"""

from __future__ import annotations

from typing import Any

from labctl.core.labels import GROUP, MANAGED_BY
from labctl.localcluster.sim.spec import SimSpec

GPU_RESOURCE = "nvidia.com/gpu"
GPU_TAINT = {"key": GPU_RESOURCE, "value": "present", "effect": "NoSchedule"}
POOL_LABEL = f"{GROUP}/pool"
SIM_LABEL = f"{GROUP}/sim"
# kwok only takes over nodes carrying this annotation (kwokctl's default selector).
KWOK_ANNOTATION = {"kwok.x-k8s.io/node": "fake"}

GPU_PRODUCT = "NVIDIA-A100-SXM4-40GB"
GPU_MEMORY_MIB = 40960

CPU_NODE_CAPACITY = {"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"}
GPU_NODE_CAPACITY = {"cpu": "32", "memory": "256Gi", "pods": "110", "ephemeral-storage": "500Gi"}


def node_names(spec: SimSpec) -> list[str]:
    return [f"{spec.name}-cpu-{i}" for i in range(spec.cpu_nodes)] + [
        f"{spec.name}-gpu-{i}" for i in range(spec.gpu_nodes)
    ]


def _node(
    spec: SimSpec,
    name: str,
    pool: str,
    labels: dict[str, str],
    capacity: dict[str, str],
    taints: list[dict[str, str]],
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": dict(KWOK_ANNOTATION),
            "labels": {
                **MANAGED_BY,
                SIM_LABEL: spec.name,
                POOL_LABEL: pool,
                "type": "kwok",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/role": "agent",
                "node.kubernetes.io/instance-type": f"kwok-{pool}",
                **labels,
            },
        },
        "spec": {"taints": taints} if taints else {},
        "status": {
            "capacity": dict(capacity),
            "allocatable": dict(capacity),
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": "fake",
                "kubeProxyVersion": "fake",
                "containerRuntimeVersion": "kwok",
            },
        },
    }


def render_nodes(spec: SimSpec) -> list[dict[str, Any]]:
    """Every Node of the cluster: the CPU pool, then the GPU pool."""
    nodes = [
        _node(spec, name, "cpu", {}, CPU_NODE_CAPACITY, []) for name in node_names(spec)[: spec.cpu_nodes]
    ]
    gpu_labels = {
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.product": GPU_PRODUCT,
        "nvidia.com/gpu.count": str(spec.gpus_per_node),
        "nvidia.com/gpu.memory": str(GPU_MEMORY_MIB),
        "nvidia.com/gpu.family": "ampere",
        "nvidia.com/gpu.machine": "kwok-gpu",
        "nvidia.com/cuda.driver.major": "550",
        "nvidia.com/cuda.runtime.major": "12",
    }
    gpu_capacity = {**GPU_NODE_CAPACITY, GPU_RESOURCE: str(spec.gpus_per_node)}
    nodes += [
        _node(spec, name, "gpu", gpu_labels, gpu_capacity, [dict(GPU_TAINT)])
        for name in node_names(spec)[spec.cpu_nodes :]
    ]
    return nodes
