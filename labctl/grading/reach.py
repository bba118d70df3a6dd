"""How graders reach learners' Services: by cluster DNS, or through port-forwards.

Checks name a learner's Service by its cluster DNS name (``http://mlflow.<ns>.svc:5000``,
``http://<svc>.<ns>.svc.cluster.local:8080``). That resolves inside the cluster only. Graded from
anywhere else (an instructor's laptop, CI), :class:`PortForwards` rewrites such a URL to a local
port that reaches a ready pod behind the Service through the API server, as
``kubectl port-forward svc/<svc>`` does: the pod is taken from the Service's EndpointSlices, the
port from the slice's port of the same name. Other URLs pass unchanged.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any, Literal
from urllib.parse import SplitResult, urlsplit, urlunsplit

from graders.core import GraderError, NoRoute, as_is
from labctl.core.errors import LabctlError
from labctl.kube import Kube
from labctl.portforward import forwarded

Reach = Callable[[str], str]
Mode = Literal["auto", "cluster-dns", "port-forward"]
MODES: tuple[Mode, ...] = ("auto", "cluster-dns", "port-forward")

# <service>.<namespace>.svc, optionally .cluster.local: a Service's cluster DNS name.
_SERVICE_HOST = re.compile(r"^(?P<service>[a-z0-9-]+)\.(?P<namespace>[a-z0-9-]+)\.svc(\.cluster\.local)?\.?$")


def in_cluster() -> bool:
    """Whether this process runs in a pod (the kubelet sets this for every container)."""
    return "KUBERNETES_SERVICE_HOST" in os.environ


def service_of(url: str) -> tuple[str, str, int, SplitResult] | None:
    """(namespace, service, port, parts) when ``url`` names a Service by cluster DNS, else None."""
    parts = urlsplit(url)
    match = _SERVICE_HOST.match(parts.hostname or "")
    if match is None:
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return match["namespace"], match["service"], port, parts


def target(service: dict[str, Any], slices: list[dict[str, Any]], port: int) -> tuple[str, int]:
    """The ready pod and its port behind ``service``'s ``port``: what a connection would reach."""
    name = f"{service['metadata']['namespace']}/{service['metadata']['name']}"
    ports = (service.get("spec") or {}).get("ports") or []
    entry = next((p for p in ports if int(p.get("port", 0)) == port), None)
    if entry is None:
        exposed = ", ".join(str(p.get("port")) for p in ports) or "no ports"
        raise NoRoute(f"Service {name} does not expose port {port} (it exposes {exposed})")
    port_name = entry.get("name") or ""
    for endpoint_slice in slices:
        numbers = [p["port"] for p in endpoint_slice.get("ports") or [] if (p.get("name") or "") == port_name]
        if not numbers:
            continue
        for endpoint in endpoint_slice.get("endpoints") or []:
            ref = endpoint.get("targetRef") or {}
            ready = (endpoint.get("conditions") or {}).get("ready") is not False
            if ready and ref.get("kind") == "Pod" and ref.get("name"):
                return ref["name"], int(numbers[0])
    raise NoRoute(f"Service {name} has no ready pod behind port {port}")


class PortForwards:
    """URLs naming Services by cluster DNS -> local port-forwards, one per (namespace, service,
    port), kept open until :meth:`close`. Callable: the ``reach`` of a grading run."""

    def __init__(self, kube: Kube, *, fixed_ports: bool = False, port_offset: int = 0) -> None:
        self.kube = kube
        # Listen on the Service's own port number, plus an offset (labctl lab connect).
        self.fixed_ports = fixed_ports
        self.port_offset = port_offset
        self._open: dict[tuple[str, str, int], str] = {}
        self._lock = threading.Lock()
        self._forwards = contextlib.ExitStack()

    def __call__(self, url: str) -> str:
        found = service_of(url)
        if found is None:
            return url
        namespace, service, port, parts = found
        local = urlsplit(self._local(namespace, service, port))
        return urlunsplit(parts._replace(netloc=local.netloc))

    def _local(self, namespace: str, service: str, port: int) -> str:
        key = (namespace, service, port)
        with self._lock:  # checks run in threads; one forward per Service port
            if key not in self._open:
                pod, pod_port = self._target(namespace, service, port)
                local = port + self.port_offset if self.fixed_ports else 0
                self._open[key] = self._forwards.enter_context(
                    forwarded(self.kube, namespace, pod, pod_port, local_port=local)
                )
            return self._open[key]

    def _target(self, namespace: str, service: str, port: int) -> tuple[str, int]:
        try:
            svc = self.kube.get("v1", "Service", service, namespace)
            if svc is None:
                raise NoRoute(f"Service {service!r} not found in namespace {namespace!r}")
            slices = self.kube.list(
                "discovery.k8s.io/v1",
                "EndpointSlice",
                namespace=namespace,
                label_selector=f"kubernetes.io/service-name={service}",
            )
        except LabctlError as exc:
            raise GraderError(f"could not look up Service {namespace}/{service}: {exc}") from exc
        return target(svc, slices, port)

    def close(self) -> None:
        with self._lock:
            self._forwards.close()
            self._open.clear()


@contextlib.contextmanager
def reaching(kube: Kube | None, mode: Mode) -> Iterator[Reach]:
    """The ``reach`` for a grading run in ``mode`` (auto: cluster DNS inside a pod, else
    port-forwards when there is a cluster connection)."""
    if mode == "cluster-dns" or kube is None or (mode == "auto" and in_cluster()):
        yield as_is  # cluster DNS resolves here
        return
    forwards = PortForwards(kube)
    try:
        yield forwards
    finally:
        forwards.close()
