"""Pod networking: a Linux bridge of labctl's own, the bridge + host-local + portmap CNI plugins.

The bridge and its gateway address are made here before the kubelet starts: the gateway
is the node's InternalIP (the kubelet refuses a loopback node IP). No masquerading: pods
only talk to each other and to this host.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import subprocess
from pathlib import Path
from typing import Any

from labctl.localcluster.realnode import daemons
from labctl.localcluster.realnode.layout import BRIDGE, GATEWAY_IP, POD_CIDR, Layout

CNI_CACHE = Path("/var/lib/cni")  # libcni's result cache (not configurable in containerd 1.6)
CNI_VERSION = "0.4.0"


def render_conflist(layout: Layout) -> dict[str, Any]:
    return {
        "cniVersion": CNI_VERSION,
        "name": layout.network_name,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,  # a pod reaching itself through its Service
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR, "gateway": GATEWAY_IP}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(layout.path("cni", "ipam")),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def write_config(layout: Layout) -> bool:
    """Write the conflist into containerd's CNI conf dir; True when it changed."""
    path = layout.path("cni", "net.d", "10-labctl.conflist")
    text = json.dumps(render_conflist(layout), indent=2) + "\n"
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return True


def bridge_exists() -> bool:
    return Path(f"/sys/class/net/{BRIDGE}").exists()


def ensure_bridge() -> bool:
    """Create the bridge with the gateway address, up; True when anything changed."""
    changed = False
    if not bridge_exists():
        daemons.run(["ip", "link", "add", BRIDGE, "type", "bridge"], what=f"create bridge {BRIDGE}")
        changed = True
    prefix = POD_CIDR.split("/")[1]
    addrs = daemons.run(["ip", "-4", "-o", "addr", "show", "dev", BRIDGE], what="read bridge addresses")
    if f"{GATEWAY_IP}/{prefix}" not in addrs:
        daemons.run(["ip", "addr", "add", f"{GATEWAY_IP}/{prefix}", "dev", BRIDGE], what="address the bridge")
        changed = True
    flags = daemons.run(["ip", "-o", "link", "show", BRIDGE], what="read bridge state").split(">")[0]
    if ",UP" not in flags and "<UP" not in flags:
        daemons.run(["ip", "link", "set", BRIDGE, "up"], what="bring the bridge up")
        changed = True
    return changed


def delete_bridge() -> None:
    """Remove the bridge (its veths go with their network namespaces)."""
    if bridge_exists():
        daemons.run(["ip", "link", "delete", BRIDGE], what=f"delete bridge {BRIDGE}", check=False)


def remove_netns(paths: list[str]) -> None:
    """Unmount and remove network namespace files (left when sandboxes were killed, not stopped)."""
    for path in paths:
        daemons.succeeds(["umount", path])
        Path(path).unlink(missing_ok=True)


def remove_tagged_iptables_rules(layout: Layout) -> int:
    """Delete rules whose comment names our CNI network, and the CNI-* chains they jumped to."""
    removed = 0
    tag = f'name: \\"{layout.network_name}\\"'  # iptables-save escapes the comment's quotes
    for table in ("nat", "filter"):
        dump = subprocess.run(
            ["iptables-save", "-t", table], capture_output=True, text=True, check=False
        ).stdout
        chains: set[str] = set()
        for line in dump.splitlines():
            if line.startswith("-A ") and tag in line:
                args = shlex.split(line[3:])
                daemons.succeeds(["iptables", "-t", table, "-D", *args])
                removed += 1
                if "-j" in args:
                    target = args[args.index("-j") + 1]
                    if target.startswith("CNI-") and not target.startswith("CNI-HOSTPORT"):
                        chains.add(target)
        for chain in chains:
            daemons.succeeds(["iptables", "-t", table, "-F", chain])
            daemons.succeeds(["iptables", "-t", table, "-X", chain])
    return removed


def remove_cache(layout: Layout, container_ids: list[str]) -> None:
    """libcni's cached results of our sandboxes (``<network>-<id>-<if>``, ``cni-loopback-<id>-lo``)."""
    results = CNI_CACHE / "results"
    if not results.is_dir():
        return
    for entry in results.glob(f"{layout.network_name}-*"):
        entry.unlink(missing_ok=True)
    for cid in container_ids:
        for entry in results.glob(f"*-{cid}-*"):
            entry.unlink(missing_ok=True)
    for directory in (results, CNI_CACHE):  # only when empty: other CNI users may share them
        with contextlib.suppress(OSError):
            directory.rmdir()
