"""``labctl sim up`` / ``down``: bring a simulated cluster to the asked shape, idempotently."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from labctl.kube import Kube, condition_true
from labctl.localcluster.realnode import node as realnode
from labctl.localcluster.sim import cluster as sim
from labctl.localcluster.sim.nodes import SIM_LABEL, render_nodes
from labctl.localcluster.sim.provisioner import storage_class
from labctl.localcluster.sim.spec import SimSpec

READY_TIMEOUT_S = 60


@dataclass(frozen=True)
class UpResult:
    cluster: sim.SimCluster
    action: str  # created | started | unchanged
    changes: int


def connect(cluster: sim.SimCluster) -> Kube:
    return Kube.connect(kubeconfig=str(cluster.kubeconfig), context=cluster.context)


def ensure_nodes(kube: Kube, spec: SimSpec) -> int:
    """Create missing nodes, status included; re-assert capacity where it drifted. Returns writes."""
    writes = 0
    for node in render_nodes(spec):
        name = node["metadata"]["name"]
        live = kube.get("v1", "Node", name)
        if live is None:
            # NB: a Node's status is kept on create (kubelets register that way), and kwok then
            # initialises around it. Applying status separately would race kwok's defaults.
            kube.create(node)
            writes += 1
            continue
        desired_status = node.pop("status")
        if _drifted(live, node):
            kube.apply(node)
            writes += 1
        live_status = live.get("status") or {}
        if any(live_status.get(key) != desired_status[key] for key in ("capacity", "allocatable")):
            patch = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": name},
                "status": {key: desired_status[key] for key in ("capacity", "allocatable")},
            }
            kube.apply(patch, subresource="status")
            writes += 1
    return writes


def _drifted(live: dict[str, Any], desired: dict[str, Any]) -> bool:
    """Whether a live node lacks any label, annotation or taint we want on it."""
    for key in ("labels", "annotations"):
        have = live["metadata"].get(key) or {}
        if any(have.get(k) != v for k, v in desired["metadata"][key].items()):
            return True
    return bool((live.get("spec") or {}).get("taints") != desired["spec"].get("taints"))


def wait_ready(kube: Kube, spec: SimSpec) -> None:
    """Nodes Ready (kwok took them over) and the default ServiceAccount made (controllers run)."""
    want = spec.cpu_nodes + spec.gpu_nodes

    def nodes_ready() -> bool:
        nodes = kube.list("v1", "Node", label_selector=f"{SIM_LABEL}={spec.name}")
        return len(nodes) == want and all(condition_true(n, "Ready") for n in nodes)

    kube.wait_for(nodes_ready, timeout=READY_TIMEOUT_S, what=f"{want} kwok nodes to be Ready")
    kube.wait_for(
        lambda: kube.get("v1", "ServiceAccount", "default", "default"),
        timeout=READY_TIMEOUT_S,
        what="kube-controller-manager to create the default ServiceAccount",
    )


def up(
    spec: SimSpec, *, real_node: bool = False, report: Callable[[str], None] = lambda _msg: None
) -> UpResult:
    """Create, restart or keep the cluster ``spec`` names; make its nodes match the spec.

    With ``real_node``, also run a real kubelet node on this machine (see labctl.localcluster.realnode).
    """
    spec.check_has_nodes(real_node=real_node)
    existing = sim.find(spec.name)
    if existing is not None:
        sim.check_compatible(existing, spec)  # validate before starting anything
    binaries = sim.require_binaries()
    if real_node:
        realnode.preflight(spec.name, sim.cluster_dir(spec.name))  # before starting anything, too
    if existing is None:
        report(
            f"starting control plane for {spec.name!r} (etcd, kube-apiserver, controller-manager, "
            "scheduler, kwok)"
        )
        cluster, action = sim.create(spec, binaries), "created"
    elif not existing.running:
        report(f"restarting stopped cluster {spec.name!r}")
        cluster, action = sim.start(existing, binaries), "started"
    else:
        cluster, action = existing, "unchanged"
    kube = connect(cluster)
    report(f"registering {spec.describe()}")
    changes = ensure_nodes(kube, spec)
    # Claims must bind as on a real cluster: a default StorageClass and its provisioner.
    if kube.apply(storage_class()).action != "unchanged":
        changes += 1
    if sim.ensure_provisioner(cluster) and action == "unchanged":
        changes += 1
    wait_ready(kube, spec)
    if real_node:
        changes += realnode.ensure(spec.name, cluster.directory, kube, report=report)
        report(f"waiting for the real node {spec.name}-node to be Ready")
        realnode.wait_ready(kube, spec.name, cluster.directory)
    if action == "unchanged" and changes:
        action = "configured"
    return UpResult(cluster, action, changes)


def down(name: str) -> bool:
    """Remove the cluster; False when there was none (that is not an error)."""
    return sim.destroy(name)
