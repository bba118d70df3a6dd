"""``labctl sim``: local simulated clusters (real control plane, kwok CPU and GPU nodes)."""

from __future__ import annotations

import time

import click

from labctl.cli.output import emit, err_console, output_option
from labctl.core.errors import LabctlError
from labctl.localcluster.sim import cluster as sim_cluster
from labctl.localcluster.sim.spec import DEFAULT_NAME, SimSpec

# labctl.localcluster.sim.lifecycle and .inventory import the Kubernetes client: the commands that talk to the
# cluster import them in their bodies, so `labctl sim list` and `kubeconfig` start fast.

name_argument = click.argument("name", default=DEFAULT_NAME, required=False)


@click.group()
def sim() -> None:
    """Simulated clusters for development, tests and rehearsals."""


@sim.command("up")
@name_argument
@click.option("--cpu-nodes", type=int, default=3, show_default=True, help="kwok CPU nodes.")
@click.option("--gpu-nodes", type=int, default=2, show_default=True, help="kwok GPU nodes.")
@click.option(
    "--gpus-per-node",
    type=int,
    default=4,
    show_default=True,
    help="nvidia.com/gpu capacity of each GPU node.",
)
@click.option(
    "--real-node",
    is_flag=True,
    help="Also join a real kubelet node (NAME-node) on this machine, so real pods run here "
    "(root; containerd, runc and CNI plugins installed). `down` removes it too.",
)
def up_cmd(name: str, cpu_nodes: int, gpu_nodes: int, gpus_per_node: int, real_node: bool) -> None:
    """Start (or keep) a simulated cluster and print its kubeconfig path."""
    from labctl.localcluster.sim import lifecycle

    spec = SimSpec(name=name, cpu_nodes=cpu_nodes, gpu_nodes=gpu_nodes, gpus_per_node=gpus_per_node)
    started = time.monotonic()
    with err_console.status(f"sim {name}: starting") as status:
        result = lifecycle.up(
            spec, real_node=real_node, report=lambda msg: status.update(f"sim {name}: {msg}")
        )
    extra = f" + real node {name}-node" if real_node else ""
    err_console.print(
        f"sim {name}: {result.action} — {spec.describe()}{extra}, ready in {time.monotonic() - started:.1f}s"
    )
    click.echo(result.cluster.kubeconfig)


@sim.command("down")
@name_argument
def down_cmd(name: str) -> None:
    """Stop the cluster's processes and delete its files."""
    from labctl.localcluster.sim import lifecycle

    SimSpec(name=name)  # validates the name
    if lifecycle.down(name):
        err_console.print(f"sim {name}: deleted")
    else:
        err_console.print(f"sim {name}: not found, nothing to do")


@sim.command("list")
@output_option
def list_cmd(output: str) -> None:
    """List simulated clusters."""
    rows = [c.as_dict() for c in sim_cluster.list_clusters()]
    emit(
        rows,
        output=output,
        title="simulated clusters",
        columns=["name", "running", "cpu_nodes", "gpu_nodes", "gpus_per_node", "server"],
    )


@sim.command("nodes")
@name_argument
@output_option
def nodes_cmd(name: str, output: str) -> None:
    """Show the cluster's nodes: pools, capacity, GPUs in use, taints."""
    from labctl.localcluster.sim import lifecycle
    from labctl.localcluster.sim.inventory import node_rows

    cluster = _existing(name)
    kube = lifecycle.connect(cluster)
    rows = node_rows(kube.list("v1", "Node"), kube.list("v1", "Pod"))
    emit(rows, output=output, title="nodes")


def _existing(name: str) -> sim_cluster.SimCluster:
    SimSpec(name=name)  # validates the name
    cluster = sim_cluster.find(name)
    if cluster is None:
        raise LabctlError(f"simulated cluster {name!r} not found; start it with `labctl sim up {name}`")
    return cluster


@sim.command("kubeconfig")
@name_argument
def kubeconfig_cmd(name: str) -> None:
    """Print the kubeconfig path of a simulated cluster."""
    click.echo(_existing(name).kubeconfig)
