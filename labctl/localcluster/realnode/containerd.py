"""A containerd of the node's own: root, state, socket and runc root under the node dir.

Its CRI plugin runs pods with runc (cgroupfs driver: no systemd here), the pause image
labctl builds (:mod:`labctl.localcluster.images.pause`) and the CNI config of
:mod:`labctl.localcluster.realnode.cni`.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from labctl.localcluster.images import pause
from labctl.localcluster.realnode import daemons
from labctl.localcluster.realnode.layout import Layout

NAMESPACE = "k8s.io"  # the CRI plugin's namespace
CNI_BIN_DIRS = ("/usr/lib/cni", "/opt/cni/bin")


def cni_bin_dir() -> str | None:
    for candidate in CNI_BIN_DIRS:
        if os.access(Path(candidate) / "bridge", os.X_OK):
            return candidate
    return None


def _toml(value: object) -> str:
    return json.dumps(value)  # TOML basic strings, booleans and arrays of strings are JSON-compatible


def render_config(layout: Layout) -> str:
    """containerd's config (version 2, containerd 1.6/1.7)."""
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    values = {
        "root": str(layout.path("containerd", "root")),
        "state": str(layout.path("containerd", "state")),
    }
    lines = ["version = 2"]
    lines += [f"{key} = {_toml(value)}" for key, value in values.items()]
    lines += [
        # Snapshotters that cannot work here only log noise.
        'disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",'
        ' "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]',
        "",
        "[grpc]",
        f"  address = {_toml(str(layout.containerd_socket))}",
        "",
        '[plugins."io.containerd.internal.v1.opt"]',
        f"  path = {_toml(str(layout.path('containerd', 'opt')))}",
        "",
        f"[{cri}]",
        f"  sandbox_image = {_toml(pause.NAME)}",
        '  stream_server_address = "127.0.0.1"',
        '  stream_server_port = "0"',
        "  enable_selinux = false",
        "  disable_apparmor = true",
        # Sandboxes ask for oom_score_adj -998; lowering it needs CAP_SYS_RESOURCE, which a
        # container host (like labctl's CI) may lack: runc init then dies with "can't get final
        # child's PID from pipe". Clamp at containerd's own score instead.
        "  restrict_oom_score_adj = true",
        f"[{cri}.containerd]",
        '  snapshotter = "overlayfs"',
        '  default_runtime_name = "runc"',
        f"[{cri}.containerd.runtimes.runc]",
        '  runtime_type = "io.containerd.runc.v2"',
        f"[{cri}.containerd.runtimes.runc.options]",
        "  SystemdCgroup = false",
        f"  Root = {_toml(str(layout.path('runc')))}",
        f"[{cri}.cni]",
        f"  bin_dir = {_toml(cni_bin_dir() or CNI_BIN_DIRS[0])}",
        f"  conf_dir = {_toml(str(layout.path('cni', 'net.d')))}",
        "  max_conf_num = 1",
        "",
    ]
    return "\n".join(lines)


def ctr(layout: Layout, *args: str, what: str, timeout: float = 120, check: bool = True) -> str:
    """Run ``ctr`` against this node's containerd, in the CRI namespace."""
    cmd = ["ctr", "--address", str(layout.containerd_socket), "--namespace", NAMESPACE, *args]
    return daemons.run(cmd, what=what, timeout=timeout, check=check)


def pid_file(layout: Layout) -> Path:
    return layout.pid_dir / "containerd.pid"


def healthy(layout: Layout) -> bool:
    if daemons.running(pid_file(layout)) is None or not layout.containerd_socket.exists():
        return False
    return bool(ctr(layout, "version", what="containerd version", timeout=10, check=False).strip())


def ensure(layout: Layout) -> bool:
    """Start containerd unless it runs with the current config; True when (re)started."""
    config = layout.path("containerd", "config.toml")
    text = render_config(layout)
    changed = not config.exists() or config.read_text() != text
    if not changed and healthy(layout):
        return False
    stop(layout)
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(text)
    log = layout.log_dir / "containerd.log"
    daemons.start(
        [shutil.which("containerd") or "containerd", "--config", str(config)],
        pid_file=pid_file(layout),
        log=log,
    )
    daemons.wait_until(lambda: healthy(layout), timeout=30, what="containerd to answer", log=log)
    return True


def image_present(layout: Layout, name: str) -> bool:
    listing = ctr(layout, "images", "list", "--quiet", what="list images", check=False)
    return name in listing.split()


def import_image(layout: Layout, archive: Path, name: str) -> bool:
    """Import an OCI archive (:mod:`labctl.localcluster.images.oci`) unless ``name`` is there; True if so."""
    if image_present(layout, name):
        return False
    ctr(layout, "images", "import", str(archive), what=f"import {archive.name}")
    return True


def container_ids(layout: Layout) -> list[str]:
    return ctr(layout, "containers", "list", "--quiet", what="list containers", check=False).split()


def sandboxes_netns(layout: Layout) -> list[str]:
    """Network namespace paths of every container (CRI puts sandboxes in /var/run/netns/cni-*)."""
    found = []
    for cid in container_ids(layout):
        info = ctr(layout, "containers", "info", cid, what="container info", check=False)
        try:
            namespaces = json.loads(info)["Spec"]["linux"]["namespaces"]
        except (ValueError, KeyError, TypeError):
            continue
        found += [ns["path"] for ns in namespaces if ns.get("type") == "network" and ns.get("path")]
    return sorted(set(found))


def remove_all_containers(layout: Layout) -> None:
    """Kill every task and delete every container of this containerd (best effort)."""
    for cid in ctr(layout, "tasks", "list", "--quiet", what="list tasks", check=False).split():
        ctr(layout, "tasks", "kill", "--signal", "SIGKILL", cid, what="kill task", check=False)
    for cid in ctr(layout, "tasks", "list", "--quiet", what="list tasks", check=False).split():
        ctr(layout, "tasks", "delete", "--force", cid, what="delete task", check=False)
    for cid in container_ids(layout):
        ctr(layout, "containers", "delete", cid, what="delete container", check=False)


def stop(layout: Layout) -> None:
    daemons.stop_pid_file(pid_file(layout))
