"""kube-proxy in iptables mode, so ClusterIP Services reach pods on the real node.

It is told to leave host-wide knobs alone (conntrack sizes, ``route_localnet``) and to
open NodePorts on the node's bridge address only. Its KUBE-* chains are removed on
teardown with ``kube-proxy --cleanup``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from labctl.localcluster.realnode import daemons
from labctl.localcluster.realnode.layout import GATEWAY_IP, POD_CIDR, Layout, Ports
from labctl.localcluster.toolchain import paths


def config(layout: Layout, ports: Ports, kubeconfig: Path) -> dict[str, Any]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "oomScoreAdj": 0,  # the default -999 needs CAP_SYS_RESOURCE
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": layout.node_name,
        "bindAddress": GATEWAY_IP,
        "clusterCIDR": POD_CIDR,
        "detectLocalMode": "ClusterCIDR",
        "healthzBindAddress": f"127.0.0.1:{ports.proxy_healthz}",
        "metricsBindAddress": f"127.0.0.1:{ports.proxy_metrics}",
        "nodePortAddresses": [f"{GATEWAY_IP}/32"],
        # 0 = leave the host's conntrack settings as they are.
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        "iptables": {"localhostNodePorts": False, "syncPeriod": "30s", "minSyncPeriod": "1s"},
    }


FIREWALL_CHAIN = "KUBE-FIREWALL"


def pid_file(layout: Layout) -> Path:
    return layout.pid_dir / "kube-proxy.pid"


def write_config(layout: Layout, ports: Ports, kubeconfig: Path) -> bool:
    path = layout.path("kube-proxy-config.yaml")
    text = yaml.safe_dump(config(layout, ports, kubeconfig), sort_keys=True)
    if path.exists() and path.read_text() == text:
        return False
    path.write_text(text)
    return True


def ensure(layout: Layout, *, restart: bool) -> bool:
    if daemons.running(pid_file(layout)) is not None and not restart:
        return False
    stop(layout)
    cmd = [str(paths.binary("kube-proxy")), f"--config={layout.path('kube-proxy-config.yaml')}", "--v=1"]
    daemons.start(cmd, pid_file=pid_file(layout), log=layout.log_dir / "kube-proxy.log")
    return True


def stop(layout: Layout) -> None:
    daemons.stop_pid_file(pid_file(layout))


def cleanup_rules(layout: Layout) -> None:
    """Remove the KUBE-* chains and rules (``kube-proxy --cleanup``); best effort.

    ``--cleanup`` leaves KUBE-FIREWALL (a copy of the kubelet's chain, jumped to from INPUT and
    OUTPUT, in both IP families) on purpose: no kubelet of ours needs it after teardown.
    """
    binary = paths.binary("kube-proxy")
    if binary.exists():
        daemons.run([str(binary), "--cleanup", "--v=1"], what="kube-proxy --cleanup", check=False)
    for tool in ("iptables", "ip6tables"):
        for chain in ("INPUT", "OUTPUT"):
            while daemons.succeeds([tool, "-D", chain, "-j", FIREWALL_CHAIN]):
                pass
        daemons.succeeds([tool, "-F", FIREWALL_CHAIN])
        daemons.succeeds([tool, "-X", FIREWALL_CHAIN])
