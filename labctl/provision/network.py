"""Building blocks of labctl's NetworkPolicies: peers, address ranges and the policy itself.

NetworkPolicy has no deny rule: a pod that any policy of type Egress selects may open only
what one of those policies allows. So "never" is a property of every allow rule together:
no rule labctl renders names a link-local or cloud-metadata address (a unit test and the
cyclonus analysis check it), and an admission policy stops learners adding rules of their
own that would (labctl.provision.policies).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Object = dict[str, Any]

NAME_LABEL = "kubernetes.io/metadata.name"  # set by the API server on every namespace
DNS_NAMESPACE = "kube-system"
# CoreDNS keeps kube-dns's label on kubeadm, kind, EKS, GKE and AKS alike.
DNS_POD_LABELS = {"k8s-app": "kube-dns"}
DNS_PORT = 53

# Never reachable from a learner's pod or a stack, whatever the cohort's egress says.
LINK_LOCAL = ("169.254.0.0/16", "fe80::/10")
# Instance-metadata services: the node's cloud credentials are one GET away.
METADATA = (
    "169.254.169.254/32",  # AWS, GCP, Azure, OCI, OpenStack, DigitalOcean (IPv4)
    "169.254.170.2/32",  # AWS ECS task credentials
    "169.254.170.23/32",  # AWS EKS Pod Identity agent
    "fd00:ec2::254/128",  # AWS IMDS over IPv6
    "fd00:ec2::23/128",  # AWS EKS Pod Identity agent over IPv6
    "100.100.100.200/32",  # Alibaba Cloud
    "192.0.0.192/32",  # Oracle Cloud Infrastructure Classic
)
# Addresses that are not the public internet: pods, Services, nodes, the cloud's network.
# `internet` leaves them out, so no ipBlock ever matches another learner's pod (Calico and
# cyclonus match ipBlocks against pod IPs too) or a node's kubelet.
PRIVATE = (
    "0.0.0.0/8",  # "this network"
    "10.0.0.0/8",  # RFC 1918
    "100.64.0.0/10",  # shared address space: some clouds' pod ranges, Alibaba's metadata
    "127.0.0.0/8",  # loopback
    "172.16.0.0/12",  # RFC 1918
    "192.0.0.0/24",  # IETF protocol assignments (OCI Classic's metadata)
    "192.168.0.0/16",  # RFC 1918
    "::1/128",  # loopback
    "fc00::/7",  # unique local addresses (AWS's IPv6 metadata is one)
)


def blocked() -> tuple[str, ...]:
    """What no egress rule to an ipBlock may ever include."""
    return (*LINK_LOCAL, *METADATA)


def tcp(port: int | str) -> Object:
    return {"protocol": "TCP", "port": port}


def dns_rule() -> Object:
    """The cluster's DNS pods on 53/UDP and 53/TCP (TCP for answers too large for UDP)."""
    return {
        "to": [
            {
                "namespaceSelector": {"matchLabels": {NAME_LABEL: DNS_NAMESPACE}},
                "podSelector": {"matchLabels": dict(DNS_POD_LABELS)},
            }
        ],
        "ports": [{"protocol": "UDP", "port": DNS_PORT}, tcp(DNS_PORT)],
    }


def own_namespace_rule(*, pods: Mapping[str, str] | None = None, ports: Sequence[Object] = ()) -> Object:
    """Pods of the policy's own namespace (``pods``: only those labelled so), on ``ports`` (all: empty)."""
    rule: Object = {"to": [{"podSelector": {"matchLabels": dict(pods)} if pods else {}}]}
    if ports:
        rule["ports"] = [dict(p) for p in ports]
    return rule


def network_policy(
    name: str,
    namespace: str,
    labels: Mapping[str, str],
    pod_selector: Object,
    egress: Sequence[Object],
    *,
    annotations: Mapping[str, str] | None = None,
) -> Object:
    """An Egress policy. ``egress`` empty: the selected pods may open no connection at all."""
    meta: Object = {"name": name, "namespace": namespace, "labels": dict(labels)}
    if annotations:
        meta["annotations"] = dict(annotations)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta,
        "spec": {"podSelector": pod_selector, "policyTypes": ["Egress"], "egress": [dict(r) for r in egress]},
    }
