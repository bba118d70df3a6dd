"""Where pods of a learner's namespace may connect to: the egress NetworkPolicies labctl renders.

Every pod of the namespace is selected by ``labctl-default-deny-egress``, so a pod no other
egress policy names opens no connection at all. Then:

- the learner's own pods (every pod without labctl's stack label) may reach cluster DNS, the
  pods of their own namespace (their stacks included) and, in ``labctl-egress-api-server``,
  the API server (learners run kubectl and the MLflow/S3 clients from pods); the cohort's
  ``egress`` adds, in ``labctl-egress-learner``:
    ``none``      nothing more;
    ``cluster``   pods of every namespace that is neither a learner's nor the platform's
                  (:data:`PLATFORM_NAMESPACES`, and namespaces labelled as monitoring);
    ``internet``  that, and public addresses: every IPv4/IPv6 address outside the private,
                  shared, loopback and link-local ranges (network.PRIVATE, network.LINK_LOCAL);
- each stack pod is named by a policy of its own stack (labctl.provision.stacks): only what it
  needs. Prometheus's service discovery needs the API server: ``labctl-egress-api-server-prometheus``.

Link-local and cloud-metadata addresses are reachable in no mode. Other learners' namespaces,
labctl's (``labctl-system``, ``labctl-sandbox``) and ``kube-system`` beyond DNS are reachable in
no mode either. A learner's pod labelled with the stack label only loses what it had: no stack
policy selects it (those also require ``managed-by: labctl``, which admission refuses learners).

The API server: a NetworkPolicy sees a connection after kube-proxy (or its replacement) has
rewritten the ``kubernetes`` Service's ClusterIP to an endpoint, so the rule names the Service's
endpoint addresses and port. The controller reads them from the EndpointSlices of
``default/kubernetes`` and keeps these two policies current when the control plane moves
(labctl.controller.apiserver); both carry :data:`API_SERVER_LABEL` so it finds them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from labctl.api.v1alpha1 import EgressMode
from labctl.core.labels import GROUP
from labctl.provision import network
from labctl.provision.stacks.common import STACK_LABEL, selector
from labctl.provision.tenancy import CONTROLLER_NAMESPACE, MONITORING_LABEL, ROLE_LABEL
from labctl.sandbox.pod import NAMESPACE as SANDBOX_NAMESPACE

Object = dict[str, Any]

PLATFORM_NAMESPACES = (CONTROLLER_NAMESPACE, SANDBOX_NAMESPACE, network.DNS_NAMESPACE)
API_SERVER_LABEL = f"{GROUP}/egress"
API_SERVER_VALUE = "api-server"
DEFAULT_DENY = "labctl-default-deny-egress"
LEARNER_POLICY = "labctl-egress-learner"
API_SERVER_POLICY = "labctl-egress-api-server"
PROMETHEUS_API_SERVER_POLICY = "labctl-egress-api-server-prometheus"

# The learner's own pods: everything but labctl's stacks, whose policies are their own.
# NB: DoesNotExist rather than "managed-by NotIn [labctl]": analyzers (cyclonus) disagree with
# Kubernetes on NotIn over a missing label, and this selector must mean the same to both.
LEARNER_PODS: Object = {"matchExpressions": [{"key": STACK_LABEL, "operator": "DoesNotExist"}]}


@dataclass(frozen=True)
class ApiServer:
    """The ``kubernetes`` Service's endpoints: (address, port) pairs, sorted. Empty: not known."""

    endpoints: tuple[tuple[str, int], ...] = ()

    @classmethod
    def of(cls, endpoints: list[tuple[str, int]]) -> ApiServer:
        return cls(tuple(sorted(set(endpoints))))


def api_server_of(slices: Sequence[Mapping[str, Any]]) -> ApiServer:
    """The endpoints of ``default/kubernetes`` from its EndpointSlices (ready or not: a restarting
    apiserver is still where kubectl's next connection goes)."""
    found: list[tuple[str, int]] = []
    for endpoint_slice in slices:
        ports = [int(p["port"]) for p in endpoint_slice.get("ports") or [] if p.get("port")]
        for endpoint in endpoint_slice.get("endpoints") or []:
            found += [(address, port) for address in endpoint.get("addresses") or [] for port in ports]
    return ApiServer.of(found)


def _host_cidr(address: str) -> str:
    ip = ipaddress.ip_address(address)
    return f"{ip}/{ip.max_prefixlen}"


def api_server_rules(api_server: ApiServer) -> list[Object]:
    """One rule per port, to the endpoint addresses. No endpoints: no rule (a rule with an
    empty ``to`` would allow every destination)."""
    rules: list[Object] = []
    for port in sorted({port for _, port in api_server.endpoints}):
        addresses = sorted({a for a, p in api_server.endpoints if p == port})
        blocks = [{"ipBlock": {"cidr": _host_cidr(a)}} for a in addresses]
        rules.append({"to": blocks, "ports": [network.tcp(port)]})
    return rules


def _internet() -> list[Object]:
    v4 = [c for c in (*network.PRIVATE, *network.blocked()) if ipaddress.ip_network(c).version == 4]
    v6 = [c for c in (*network.PRIVATE, *network.blocked()) if ipaddress.ip_network(c).version == 6]
    return [
        {"ipBlock": {"cidr": "0.0.0.0/0", "except": _outermost(v4)}},
        {"ipBlock": {"cidr": "::/0", "except": _outermost(v6)}},
    ]


def _outermost(cidrs: list[str]) -> list[str]:
    """The ranges not inside another of the list, sorted: the same exceptions, stated once."""
    nets = [ipaddress.ip_network(c) for c in cidrs]
    keep = {n for n in nets if not any(n != o and n.subnet_of(o) for o in nets)}  # type: ignore[arg-type]
    return [str(n) for n in sorted(keep, key=lambda n: (n.network_address, n.prefixlen))]


def cluster_peer() -> Object:
    """Pods of namespaces that are neither learners' nor the platform's (see the module docstring)."""
    return {
        "namespaceSelector": {
            "matchExpressions": [
                {"key": ROLE_LABEL, "operator": "DoesNotExist"},
                {"key": MONITORING_LABEL, "operator": "DoesNotExist"},
                {"key": network.NAME_LABEL, "operator": "NotIn", "values": list(PLATFORM_NAMESPACES)},
            ]
        }
    }


def learner_rules(mode: EgressMode) -> list[Object]:
    # DNS: every client resolves <svc>.<ns>.svc names. Own namespace: their stacks and their
    # own servers (a model server their Prometheus scrapes is reached the other way round).
    rules = [network.dns_rule(), network.own_namespace_rule()]
    if mode == "cluster":
        rules.append({"to": [cluster_peer()]})
    elif mode == "internet":
        rules.append({"to": [cluster_peer(), *_internet()]})
    return rules


def render_api_server_policies(
    namespace: str, labels: Mapping[str, str], api_server: ApiServer
) -> list[Object]:
    """The API server for the learner's pods and for Prometheus's service discovery."""
    marked = {**labels, API_SERVER_LABEL: API_SERVER_VALUE}
    rules = api_server_rules(api_server)
    return [
        network.network_policy(API_SERVER_POLICY, namespace, marked, LEARNER_PODS, rules),
        network.network_policy(
            PROMETHEUS_API_SERVER_POLICY, namespace, marked, {"matchLabels": selector("prometheus")}, rules
        ),
    ]


def render_egress(
    namespace: str, labels: Mapping[str, str], *, mode: EgressMode, api_server: ApiServer
) -> list[Object]:
    """Default deny, the learner's pods' egress for ``mode``, and the API server policies."""
    return [
        network.network_policy(DEFAULT_DENY, namespace, labels, {}, []),
        network.network_policy(LEARNER_POLICY, namespace, labels, LEARNER_PODS, learner_rules(mode)),
        *render_api_server_policies(namespace, labels, api_server),
    ]
