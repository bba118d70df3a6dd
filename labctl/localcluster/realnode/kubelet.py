"""The kubelet: its KubeletConfiguration, flags, and the kernel tunables it changes.

Traps handled here: kubelet >= 1.35 refuses cgroup v1 unless ``failCgroupV1: false``; the
cgroup driver must match containerd's (cgroupfs, no systemd); and with
``protectKernelDefaults: false`` it rewrites four sysctls, which :func:`record_sysctls`
notes first so teardown can put them back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from labctl.localcluster.realnode import daemons
from labctl.localcluster.realnode.layout import CLUSTER_DOMAIN, GATEWAY_IP, Layout, Ports
from labctl.localcluster.toolchain import paths

# What the kubelet sets (pkg/kubelet/cm/container_manager_linux.go) and the CNI bridge
# plugin (ip_forward, for its gateway): recorded before, restored after.
TOUCHED_SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/ipv4/ip_forward",
)
NODE_LABEL = "labctl.dev/real-node"


def config(layout: Layout, ports: Ports, cluster_dns: list[str]) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "failCgroupV1": False,  # this host has cgroup v1 hierarchies
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": layout.cgroup_root,
        "containerRuntimeEndpoint": f"unix://{layout.containerd_socket}",
        "address": GATEWAY_IP,
        "port": ports.kubelet,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": ports.kubelet_healthz,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(layout.pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "clusterDomain": CLUSTER_DOMAIN,
        "clusterDNS": cluster_dns,
        "resolvConf": "",  # pods get no host resolvers: nothing outside this machine is reachable
        "podLogsDir": str(layout.path("pod-logs")),
        "volumePluginDir": str(layout.path("kubelet-plugins")),
        "staticPodPath": "",
        "failSwapOn": False,
        "oomScoreAdj": 0,  # the default -999 needs CAP_SYS_RESOURCE (see containerd.render_config)
        "protectKernelDefaults": False,
        # Else the kubelet adds KUBE-FIREWALL to INPUT/OUTPUT (drops non-local traffic to
        # 127/8, host-wide) and never removes it; kube-proxy here does not need it.
        "makeIPTablesUtilChains": False,
        "imageGCHighThresholdPercent": 100,  # never collect the imported images (pause included)
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        # How often each pod's volumes are measured (du), for its ephemeral-storage limit and
        # emptyDir sizeLimit: every 1-2x this (jittered). The default 1m lets a pod writing to
        # an emptyDir run past its limit for up to ~2 min before the eviction manager (every
        # 10 s) sees it; 10s makes that ~30 s at most, for a few du runs per pod a minute.
        "volumeStatsAggPeriod": "10s",
        "serializeImagePulls": False,
        "maxPods": 110,
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
    }
    return cfg


def pid_file(layout: Layout) -> Path:
    return layout.pid_dir / "kubelet.pid"


def command(layout: Layout, kubeconfig: Path) -> list[str]:
    return [
        str(paths.binary("kubelet")),
        f"--config={layout.path('kubelet-config.yaml')}",
        f"--kubeconfig={kubeconfig}",
        f"--root-dir={layout.path('kubelet')}",
        f"--cert-dir={layout.path('kubelet', 'pki')}",
        f"--hostname-override={layout.node_name}",
        f"--node-ip={GATEWAY_IP}",
        f"--node-labels={NODE_LABEL}={layout.cluster}",
        "--v=1",
    ]


def write_config(layout: Layout, ports: Ports, cluster_dns: list[str]) -> bool:
    path = layout.path("kubelet-config.yaml")
    text = yaml.safe_dump(config(layout, ports, cluster_dns), sort_keys=True)
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return True


def ensure(layout: Layout, kubeconfig: Path, *, restart: bool) -> bool:
    """Start the kubelet unless it runs (or restart it when its config changed); True when started."""
    if daemons.running(pid_file(layout)) is not None and not restart:
        return False
    stop(layout)
    daemons.start(command(layout, kubeconfig), pid_file=pid_file(layout), log=layout.log_dir / "kubelet.log")
    return True


def stop(layout: Layout) -> None:
    daemons.stop_pid_file(pid_file(layout), grace=15)


def record_sysctls() -> dict[str, str]:
    values = {}
    for key in TOUCHED_SYSCTLS:
        try:
            values[key] = Path("/proc/sys", key).read_text().strip()
        except OSError:
            continue
    return values


def restore_sysctls(values: dict[str, str]) -> None:
    for key, value in values.items():
        path = Path("/proc/sys", key)
        try:
            if path.read_text().strip() != value:
                path.write_text(value)
        except OSError:
            continue
