"""Bring a real node up beside a sim's kwok nodes (``ensure``), and remove every trace (``teardown``)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from labctl.core.errors import LabctlError
from labctl.kube import Kube, condition_true
from labctl.localcluster import processes
from labctl.localcluster.realnode import (
    cgroups,
    cni,
    containerd,
    daemons,
    dns,
    images,
    kubelet,
    kubeproxy,
    pki,
    prereqs,
)
from labctl.localcluster.realnode.layout import GATEWAY_IP, LOCK_FILE, Layout, NodeState, Ports, layout_for

READY_TIMEOUT_S = 120
DRAIN_TIMEOUT_S = 30
POD_LOG_LINKS = Path("/var/log/containers")  # the kubelet's symlinks (not configurable)
DAEMONS = ("containerd", "kubelet", "kube-proxy", "coredns")  # their pid files: node/pids/<name>.pid
HOST_DIRS = (POD_LOG_LINKS, Path("/var/run/netns"))  # made by the kubelet and by CRI for pod netns


def exists(cluster_dir: Path) -> bool:
    return (cluster_dir / "node").is_dir()


def _check_control_plane(layout: Layout) -> None:
    """The cluster's own etcd and API server must run: a restarted API server whose etcd could not
    bind its old port talks to whatever etcd holds that port now (another cluster's)."""
    name = layout.cluster
    for component in ("etcd", "kube-apiserver"):
        if daemons.running(layout.cluster_dir / "pids" / f"{component}.pid") is None:
            log = layout.cluster_dir / "logs" / f"{component}.log"
            raise LabctlError(
                f"the {component} of simulated cluster {name!r} is not running (see {log}); not joining "
                f"a real node to it. Recreate it: labctl sim down {name} && labctl sim up {name} --real-node"
            )


def _check_kwok_scope(layout: Layout) -> None:
    """kwok must only take nodes with its annotation, or it would fake this node's pods."""
    try:
        text = (layout.cluster_dir / "kwok.yaml").read_text()
    except OSError:
        return
    if "--manage-all-nodes=true" in text and "--manage-all-nodes=false" not in text:
        raise LabctlError(
            f"simulated cluster {layout.cluster!r} was created before real nodes were supported: its kwok "
            f"controller manages every node. Recreate it: labctl sim down {layout.cluster} && "
            f"labctl sim up {layout.cluster} --real-node"
        )


def _take_lock(layout: Layout) -> None:
    """One real node per machine: its bridge, pod CIDR and KUBE-* chains are host-wide."""
    LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    LOCK_FILE.write_text(str(layout.root))


def _host_wide_is_ours(layout: Layout) -> bool:
    """Whether the bridge and KUBE-* chains are ours to remove (no other live real node owns them)."""
    try:
        owner = Path(LOCK_FILE.read_text().strip())
    except OSError:
        return True
    return owner == layout.root or not any(daemons.running(owner / "pids" / f"{n}.pid") for n in DAEMONS)


def _release_lock(layout: Layout) -> None:
    with contextlib.suppress(OSError):
        if Path(LOCK_FILE.read_text().strip()) == layout.root:
            LOCK_FILE.unlink()


def preflight(cluster: str, cluster_dir: Path) -> Layout:
    """Every check that needs no running cluster: host tools, binaries, path length, the machine lock."""
    prereqs.check()
    layout = layout_for(cluster, cluster_dir)
    if not _host_wide_is_ours(layout):
        raise LabctlError(
            f"another real node runs on this machine (its files: {LOCK_FILE.read_text().strip()}); only "
            "one fits. Stop it first with `labctl sim down` under that cluster's LABCTL_STATE_DIR."
        )
    return layout


def ensure(cluster: str, cluster_dir: Path, kube: Kube, *, report: Callable[[str], None]) -> int:
    """Start whatever of the node is not running; returns how many parts were (re)started or changed."""
    layout = preflight(cluster, cluster_dir)
    _check_control_plane(layout)
    _check_kwok_scope(layout)
    _take_lock(layout)
    state = NodeState.load(layout)
    changes = 0
    if state is None:
        state = NodeState(Ports.pick(), kubelet.record_sysctls())
        state.save(layout)
        changes += 1
    report(f"real node {layout.node_name}: cgroups, bridge, containerd")
    cgroups.ensure_root(layout.cgroup_root)
    changes += cni.ensure_bridge() + cni.write_config(layout)
    changes += containerd.ensure(layout)
    changes += images.ensure_pause(layout)
    kubelet_kubeconfig, proxy_kubeconfig = pki.ensure_identities(layout)
    report(f"real node {layout.node_name}: kubelet, kube-proxy")
    changed = kubelet.write_config(layout, state.ports, [GATEWAY_IP])  # CoreDNS listens there
    changes += kubelet.ensure(layout, kubelet_kubeconfig, restart=changed)
    changed = kubeproxy.write_config(layout, state.ports, proxy_kubeconfig)
    changes += kubeproxy.ensure(layout, restart=changed)
    report(f"real node {layout.node_name}: cluster DNS")
    changes += dns.ensure(layout, kube)
    return changes


def wait_ready(kube: Kube, cluster: str, cluster_dir: Path, timeout: float = READY_TIMEOUT_S) -> None:
    layout = Layout(cluster, cluster_dir)

    def ready() -> bool:
        if daemons.running(kubelet.pid_file(layout)) is None:
            raise LabctlError(
                f"the kubelet of {layout.node_name} exited; see {layout.log_dir / 'kubelet.log'}"
            )
        node = kube.get("v1", "Node", layout.node_name)
        return node is not None and condition_true(node, "Ready")

    kube.wait_for(ready, timeout=timeout, what=f"real node {layout.node_name} to be Ready")


def load_image(cluster: str, cluster_dir: Path, archive: Path, name: str) -> bool:
    """Import an OCI archive into the real node's containerd; True when imported."""
    layout = Layout(cluster, cluster_dir)
    if not containerd.healthy(layout):
        raise LabctlError(f"the real node of {cluster!r} is not running: labctl sim up {cluster} --real-node")
    return images.load(layout, archive, name)


def shim_pids(layout: Layout) -> list[int]:
    """containerd-shim processes of *this* containerd (their ``-address`` is our socket)."""
    found = []
    address = str(layout.containerd_socket).encode()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            args = cmdline.read_bytes().split(b"\0")
            if b"-address" in args and address in args:
                found.append(int(cmdline.parent.name))
    return found


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root).rstrip("/") + "/"
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point.startswith(prefix):
            found.append(point)
    return sorted(set(found), key=lambda p: -p.count("/"))


def unmount_all(root: Path) -> None:
    for _ in range(3):  # stacked mounts need more than one pass
        points = _mounts_under(root)
        if not points:
            return
        for point in points:
            if subprocess.run(["umount", point], capture_output=True, check=False).returncode != 0:
                subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def _remove_host_leftovers(layout: Layout) -> None:
    """The kubelet's log symlinks into our tree; the host dirs it and CRI made, when left empty."""
    if POD_LOG_LINKS.is_dir():
        for link in POD_LOG_LINKS.iterdir():
            with contextlib.suppress(OSError):
                if link.is_symlink() and os.readlink(link).startswith(str(layout.root) + "/"):
                    link.unlink()
    for directory in HOST_DIRS:
        with contextlib.suppress(OSError):
            directory.rmdir()  # only if empty: they may be another tool's


def drain(layout: Layout, timeout: float = DRAIN_TIMEOUT_S) -> bool:
    """Cordon the node and delete its pods, so the kubelet stops their sandboxes properly (CNI DEL).

    Best effort: False when the API server or the kubelet is not there or time ran out; teardown
    then removes what is left by force.
    """
    if daemons.running(kubelet.pid_file(layout)) is None or not containerd.healthy(layout):
        return False
    try:
        kube = Kube.connect(kubeconfig=str(layout.kubeconfig), context=f"kwok-{layout.cluster}")
        kube.patch("v1", "Node", layout.node_name, {"spec": {"unschedulable": True}})
        pods = kube.list("v1", "Pod", field_selector=f"spec.nodeName={layout.node_name}")
        for pod in pods:
            kube.delete("v1", "Pod", pod["metadata"]["name"], pod["metadata"]["namespace"])
    except LabctlError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(Path(ns).exists() for ns in containerd.sandboxes_netns(layout)):
            return True
        time.sleep(0.2)
    return False


def teardown(cluster: str, cluster_dir: Path) -> bool:
    """Stop the node's processes, remove its containers, mounts, bridge, rules and files."""
    layout = Layout(cluster, cluster_dir)
    if not layout.root.is_dir():
        return False
    state = NodeState.load(layout)
    drain(layout)
    kubelet.stop(layout)
    kubeproxy.stop(layout)
    dns.stop(layout)
    netns: list[str] = []
    ids: list[str] = []
    if containerd.healthy(layout):
        netns, ids = containerd.sandboxes_netns(layout), containerd.container_ids(layout)
        containerd.remove_all_containers(layout)
    containerd.stop(layout)
    processes.stop(shim_pids(layout), grace=5)
    cgroups.kill_all(layout.cgroup_root)
    cni.remove_netns(netns)
    unmount_all(layout.root)
    cgroups.remove_root(layout.cgroup_root)
    if _host_wide_is_ours(layout):
        kubeproxy.cleanup_rules(layout)
        cni.delete_bridge()
    cni.remove_tagged_iptables_rules(layout)
    cni.remove_cache(layout, ids)
    _remove_host_leftovers(layout)
    if state is not None:
        kubelet.restore_sysctls(state.sysctls)
    _release_lock(layout)
    shutil.rmtree(layout.root, ignore_errors=True)
    return True
