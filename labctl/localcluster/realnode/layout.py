"""Where a real node keeps its files, and the names and ports it uses.

Everything lives under ``<cluster dir>/node/`` so ``labctl sim down`` finds and removes it.
Unix sockets sit in that tree too, so its path must stay short (the kernel caps a socket
path at 107 bytes); :func:`layout_for` refuses a tree too deep for that.
"""

from __future__ import annotations

import json
import socket
from dataclasses import asdict, dataclass
from pathlib import Path

from labctl.core.errors import UsageError

NODE_DIR = "node"
STATE_FILE = "node.json"
BRIDGE = "labctl0"
POD_CIDR = "10.244.0.0/24"
GATEWAY_IP = "10.244.0.1"  # on the bridge; also the node's InternalIP (kubelet refuses loopback)
CLUSTER_DOMAIN = "cluster.local"
# kubelet's longest socket below its root dir: "kubelet/device-plugins/kubelet.sock" (35).
MAX_NODE_DIR_LEN = 107 - len("/kubelet/device-plugins/kubelet.sock") - 8
# Only one real node per machine: the bridge, the pod CIDR and kube-proxy's KUBE-* chains are global.
LOCK_FILE = Path("/run/labctl-realnode.owner")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Ports:
    kubelet: int
    kubelet_healthz: int
    proxy_metrics: int
    proxy_healthz: int

    @classmethod
    def pick(cls) -> Ports:
        return cls(free_port(), free_port(), free_port(), free_port())


@dataclass(frozen=True)
class Layout:
    """Paths and names of the real node of one sim cluster."""

    cluster: str
    cluster_dir: Path

    @property
    def node_name(self) -> str:
        return f"{self.cluster}-node"

    @property
    def network_name(self) -> str:
        """The CNI network name; CNI tags its iptables rules and caches with it."""
        return f"labctl-{self.cluster}"

    @property
    def cgroup_root(self) -> str:
        return f"/labctl-{self.cluster}"

    @property
    def root(self) -> Path:
        return self.cluster_dir / NODE_DIR

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    @property
    def pid_dir(self) -> Path:
        return self.path("pids")

    @property
    def log_dir(self) -> Path:
        return self.path("logs")

    @property
    def containerd_socket(self) -> Path:
        return self.path("containerd", "containerd.sock")

    @property
    def kubeconfig(self) -> Path:
        """The cluster's admin kubeconfig (kwokctl's)."""
        return self.cluster_dir / "kubeconfig.yaml"

    @property
    def pki(self) -> Path:
        """kwokctl's PKI: ca.crt, ca.key, admin.crt, admin.key."""
        return self.cluster_dir / "pki"


def layout_for(cluster: str, cluster_dir: Path) -> Layout:
    layout = Layout(cluster, cluster_dir)
    if len(str(layout.root)) > MAX_NODE_DIR_LEN:
        raise UsageError(
            f"the state directory is too deep for a real node's unix sockets: {layout.root} is "
            f"{len(str(layout.root))} characters, at most {MAX_NODE_DIR_LEN} fit. "
            "Set LABCTL_STATE_DIR to a shorter path."
        )
    return layout


@dataclass(frozen=True)
class NodeState:
    """What ``up`` chose once and ``down`` must undo; kept in ``node/node.json``."""

    ports: Ports
    sysctls: dict[str, str]  # values before the node changed them, restored on teardown

    def save(self, layout: Layout) -> None:
        layout.root.mkdir(parents=True, exist_ok=True)
        layout.path(STATE_FILE).write_text(json.dumps(asdict(self), indent=2, sort_keys=True))

    @classmethod
    def load(cls, layout: Layout) -> NodeState | None:
        try:
            data = json.loads(layout.path(STATE_FILE).read_text())
            return cls(Ports(**data["ports"]), dict(data["sysctls"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
