"""Simulated cluster specs and the nodes they render, with no cluster."""

from __future__ import annotations

import pytest

from labctl.core.errors import UsageError
from labctl.localcluster.sim.nodes import GPU_RESOURCE, GPU_TAINT, KWOK_ANNOTATION, POOL_LABEL, render_nodes
from labctl.localcluster.sim.spec import SimSpec


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Bad_Name!"}, "cluster name 'Bad_Name!'"),
        ({"name": ""}, "must not be empty"),
        ({"name": "a" * 41}, "at most 40 characters"),
        ({"gpu_nodes": -1}, "--gpu-nodes: must be a whole number >= 0 (got -1)"),
        ({"cpu_nodes": -3}, "--cpu-nodes"),
        ({"gpus_per_node": 0}, "--gpus-per-node: must be >= 1"),
    ],
)
def test_bad_specs_are_refused_with_the_flag_named(kwargs: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")) as exc:
        SimSpec(**kwargs)
    assert exc.value.exit_code == 2


def test_a_cluster_needs_a_kwok_node_or_the_real_one() -> None:
    empty = SimSpec(cpu_nodes=0, gpu_nodes=0)
    with pytest.raises(UsageError, match="at least one node") as exc:
        empty.check_has_nodes(real_node=False)
    assert exc.value.exit_code == 2
    empty.check_has_nodes(real_node=True)  # the real node is where its pods run
    SimSpec(cpu_nodes=1, gpu_nodes=0).check_has_nodes(real_node=False)


def test_default_spec() -> None:
    spec = SimSpec()
    assert (spec.name, spec.cpu_nodes, spec.gpu_nodes, spec.gpus_per_node) == ("labctl", 3, 2, 4)


def test_nodes_render_cpu_and_gpu_pools() -> None:
    nodes = render_nodes(SimSpec(name="c1", cpu_nodes=2, gpu_nodes=3, gpus_per_node=8))
    assert [n["metadata"]["name"] for n in nodes] == [
        "c1-cpu-0",
        "c1-cpu-1",
        "c1-gpu-0",
        "c1-gpu-1",
        "c1-gpu-2",
    ]
    cpu, gpu = nodes[0], nodes[2]
    assert cpu["metadata"]["annotations"] == KWOK_ANNOTATION
    assert GPU_RESOURCE not in cpu["status"]["capacity"]
    assert "taints" not in cpu["spec"]
    assert cpu["metadata"]["labels"][POOL_LABEL] == "cpu"
    assert gpu["status"]["capacity"][GPU_RESOURCE] == "8"
    assert gpu["status"]["allocatable"][GPU_RESOURCE] == "8"
    assert gpu["spec"]["taints"] == [GPU_TAINT]
    assert GPU_TAINT == {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
    labels = gpu["metadata"]["labels"]
    assert labels["nvidia.com/gpu.product"].startswith("NVIDIA-")
    assert labels["nvidia.com/gpu.count"] == "8"
    assert labels["nvidia.com/gpu.present"] == "true"
    assert labels[POOL_LABEL] == "gpu"


def test_gpu_free_cluster_has_no_gpu_nodes() -> None:
    nodes = render_nodes(SimSpec(cpu_nodes=1, gpu_nodes=0))
    assert len(nodes) == 1
    assert all(GPU_RESOURCE not in n["status"]["capacity"] for n in nodes)
