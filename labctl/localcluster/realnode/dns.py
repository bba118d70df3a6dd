"""Cluster DNS for pods on the real node: CoreDNS as a node process on the bridge address.

Pods get ``nameserver 10.244.0.1`` (the kubelet's ``clusterDNS``) and resolve Services and
pods under ``cluster.local``. Nothing is forwarded: no name outside the cluster resolves,
so no pod query ever leaves this machine. CoreDNS reads the API as ``labctl:coredns``, a
client cert of its own bound to a read-only ClusterRole.
"""

from __future__ import annotations

import random
import socket
import struct
from pathlib import Path
from typing import Any

from labctl.kube import Kube
from labctl.localcluster.realnode import daemons, pki
from labctl.localcluster.realnode.layout import CLUSTER_DOMAIN, GATEWAY_IP, Layout
from labctl.localcluster.toolchain import paths

USER = "labctl:coredns"
PROBE_NAME = f"kubernetes.default.svc.{CLUSTER_DOMAIN}"


def rbac() -> list[dict[str, Any]]:
    """What CoreDNS's kubernetes plugin reads (as the upstream ``system:coredns`` role)."""
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": USER},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["list", "watch"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": USER},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": USER},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": USER}],
        },
    ]


def corefile(kubeconfig: Path) -> str:
    return f"""\
{CLUSTER_DOMAIN}:53 in-addr.arpa:53 ip6.arpa:53 {{
    bind {GATEWAY_IP}
    errors
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig} sim
        pods insecure
    }}
    cache 30
}}
"""


def pid_file(layout: Layout) -> Path:
    return layout.pid_dir / "coredns.pid"


def ensure(layout: Layout, kube: Kube) -> bool:
    """Start CoreDNS unless it runs with the current Corefile; True when (re)started."""
    cert, key = layout.path("pki", "coredns.crt"), layout.path("pki", "coredns.key")
    kubeconfig = layout.path("coredns.kubeconfig")
    if not (cert.exists() and key.exists()):
        pki.issue_client_cert(layout.pki, USER, [], cert, key)
    if not kubeconfig.exists():
        pki.write_kubeconfig(layout, kubeconfig, USER, cert, key)
    changed = sum(kube.apply(obj).action != "unchanged" for obj in rbac())
    conf = layout.path("Corefile")
    text = corefile(kubeconfig)
    if conf.exists() and conf.read_text() == text and daemons.running(pid_file(layout)) is not None:
        return bool(changed)
    stop(layout)
    conf.write_text(text)
    log = layout.log_dir / "coredns.log"
    daemons.start([str(paths.binary("coredns")), "-conf", str(conf)], pid_file=pid_file(layout), log=log)
    daemons.wait_until(_answers, timeout=30, what="CoreDNS to answer", log=log)
    return True


def _answers() -> bool:
    try:
        return bool(query_a(PROBE_NAME, GATEWAY_IP, timeout=0.5))
    except OSError:
        return False


def stop(layout: Layout) -> None:
    daemons.stop_pid_file(pid_file(layout))


def query_a(name: str, server: str, port: int = 53, timeout: float = 2.0) -> list[str]:
    """The A records of ``name`` from ``server`` (one UDP query; no search list)."""
    qid = random.randrange(1 << 16)
    qname = b"".join(bytes([len(label)]) + label.encode() for label in name.rstrip(".").split(".")) + b"\0"
    packet = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(packet, (server, port))
        reply = sock.recv(4096)
    rid, _flags, _qd, ancount, _ns, _ar = struct.unpack("!HHHHHH", reply[:12])
    if rid != qid:
        return []
    offset = 12 + len(qname) + 4
    found = []
    for _ in range(ancount):
        offset = _skip_name(reply, offset)
        rtype, _cls, _ttl, length = struct.unpack("!HHIH", reply[offset : offset + 10])
        offset += 10
        if rtype == 1 and length == 4:
            found.append(socket.inet_ntoa(reply[offset : offset + 4]))
        offset += length
    return found


def _skip_name(data: bytes, offset: int) -> int:
    while True:
        length = data[offset]
        if length & 0xC0 == 0xC0:  # compression pointer: two bytes, end of name
            return offset + 2
        if length == 0:
            return offset + 1
        offset += 1 + length
