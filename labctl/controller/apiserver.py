"""Where the API server is, for learners' egress policies: a watch of ``default/kubernetes``.

A NetworkPolicy sees a pod's connection to ``kubernetes.default.svc`` after the ClusterIP is
rewritten to one of the Service's endpoints, so the policies that let learners (kubectl) and
Prometheus (service discovery) reach the API server name those endpoint addresses
(labctl.provision.egress). The API server itself keeps the Service's EndpointSlice current:
control-plane nodes come and go with upgrades, and on managed clusters their addresses change.

This watch asks for that slice only (by label; a learner's own Service named ``kubernetes``
lives elsewhere and is ignored), and whenever the endpoints change — and once per watch
window, which heals a policy a reconcile wrote with an address seen a moment earlier — it
brings every learner's API-server policies in line: one list of those policies (picked to a
few fields), an apply only where they differ. New learners are rendered with
:meth:`ApiServerWatch.current`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from labctl.core.errors import LabctlError
from labctl.core.labels import MANAGED_BY
from labctl.kube import Kube, KubeError
from labctl.provision.egress import (
    API_SERVER_LABEL,
    API_SERVER_VALUE,
    ApiServer,
    api_server_of,
    render_api_server_policies,
)

log = logging.getLogger(__name__)

SERVICE_SELECTOR = "kubernetes.io/service-name=kubernetes"
POLICY_SELECTOR = ",".join(
    [f"{API_SERVER_LABEL}={API_SERVER_VALUE}", *(f"{k}={v}" for k, v in MANAGED_BY.items())]
)
WATCH_S = 300  # each window ends in a re-list and a re-check of every learner's policies
RETRY_S = (1.0, 2.0, 5.0, 10.0, 30.0)
FIRST_LIST_S = 60.0

Picked = tuple[str, str, dict[str, str], list[dict[str, Any]]]  # namespace, name, labels, egress


def pick_slice(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The slice if it is ``default/kubernetes``'s, else None."""
    meta = obj.get("metadata") or {}
    return obj if meta.get("namespace") == "default" else None


def pick_policy(obj: Mapping[str, Any]) -> Picked:
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    return (
        meta.get("namespace", ""),
        meta.get("name", ""),
        dict(meta.get("labels") or {}),
        spec.get("egress") or [],
    )


def stale_policies(picked: list[Picked], api_server: ApiServer) -> list[dict[str, Any]]:
    """The API-server policies to apply again: those whose rules differ from ``api_server``'s."""
    stale = []
    for namespace, name, labels, egress in picked:
        base = {k: v for k, v in labels.items() if k != API_SERVER_LABEL}
        wanted = {p["metadata"]["name"]: p for p in render_api_server_policies(namespace, base, api_server)}
        if name in wanted and wanted[name]["spec"]["egress"] != egress:
            stale.append(wanted[name])
    return stale


def sync_policies(kube: Kube, api_server: ApiServer) -> int:
    """Bring every learner's API-server policies in line with ``api_server``; how many changed."""
    picked = kube.list(
        "networking.k8s.io/v1", "NetworkPolicy", label_selector=POLICY_SELECTOR, pick=pick_policy
    )
    stale = stale_policies(list(picked), api_server)
    kube.apply(stale, quiet=True)
    if stale:
        log.info("API server endpoints %s: %d learner policies updated", api_server.endpoints, len(stale))
    return len(stale)


class ApiServerWatch:
    """The ``kubernetes`` Service's endpoints, current; ``on_change`` runs in the watch's thread."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._api_server = ApiServer()
        self._slices: dict[str, Mapping[str, Any]] = {}  # name -> slice, written by the watch thread only
        self._known = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, on_change: Callable[[ApiServer], None]) -> None:
        self._thread = threading.Thread(
            target=self._run, args=(on_change,), name="api-server-watch", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def current(self, *, timeout: float = FIRST_LIST_S) -> ApiServer:
        """The endpoints; before the first list, wait for it (rendering without them would cut
        learners off the API server until the next change)."""
        if not self._known.wait(timeout):
            raise LabctlError(
                "the API server's endpoints (EndpointSlices of default/kubernetes) are not known yet"
            )
        return self._api_server

    def _run(self, on_change: Callable[[ApiServer], None]) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                version = self._relist(on_change)
                failures = 0
                self._watch(version, on_change)
            except KubeError as exc:
                if exc.status != 410:  # 410 Gone: the version expired, a re-list is all it takes
                    log.warning("API server watch: %s; re-listing", exc)
                    self._stop.wait(RETRY_S[min(failures, len(RETRY_S) - 1)])
                    failures += 1
            except Exception:  # never let the thread die: learners' policies would go stale silently
                log.exception("API server watch failed; re-listing")
                self._stop.wait(RETRY_S[min(failures, len(RETRY_S) - 1)])
                failures += 1

    def _relist(self, on_change: Callable[[ApiServer], None]) -> str:
        slices = self.kube.list(
            "discovery.k8s.io/v1", "EndpointSlice", label_selector=SERVICE_SELECTOR, pick=pick_slice
        )
        self._slices = {s["metadata"]["name"]: s for s in slices if s is not None}
        self._update(on_change, always=True)
        return slices.resource_version

    def _watch(self, version: str, on_change: Callable[[ApiServer], None]) -> None:
        for kind, obj in self.kube.watch(
            "discovery.k8s.io/v1",
            "EndpointSlice",
            resource_version=version,
            label_selector=SERVICE_SELECTOR,
            timeout_seconds=WATCH_S,
        ):
            if self._stop.is_set():
                return
            if kind == "BOOKMARK" or pick_slice(obj) is None:
                continue
            name = obj["metadata"]["name"]
            if kind == "DELETED":
                self._slices.pop(name, None)
            else:
                self._slices[name] = obj
            self._update(on_change, always=False)

    def _update(self, on_change: Callable[[ApiServer], None], *, always: bool) -> None:
        found = api_server_of(list(self._slices.values()))
        changed = found != self._api_server
        if not found.endpoints and self._known.is_set():
            # An apiserver restarting removes itself for a moment: keep the last address rather
            # than cut every learner off (no endpoints means no rule at all).
            return
        if not found.endpoints:
            log.warning("the kubernetes Service has no endpoints: learners' pods cannot reach the API server")
        self._api_server = found
        self._known.set()
        if changed or always:
            on_change(found)
