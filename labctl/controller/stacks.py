"""Readiness of labctl's stack Deployments, per learner namespace, from one lean watch.

kopf watched every Deployment in the cluster to find labctl's: it decoded each event into
a full body, deep-copied it for diffs, kept per-object state, queued bodies behind a busy
event loop and re-listed them all after a 410, so the controller's memory grew with every
Deployment anyone made (548 MiB at 500 learners). This watch asks the API server for
labctl's stack Deployments only (the selector travels with the request) and keeps three
fields of each; it runs in a thread of its own, so decoding never holds up the handlers.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from labctl.core.labels import MANAGED_BY
from labctl.kube import Kube, KubeError
from labctl.provision.stacks import STACK_LABEL

log = logging.getLogger(__name__)

# Only labctl's own Deployments: admission stops learners from labelling theirs so, so a
# learner cannot fake their stack's readiness.
SELECTOR = ",".join([STACK_LABEL, *(f"{k}={v}" for k, v in MANAGED_BY.items())])
WATCH_S = 120  # the server ends each watch this soon; the next resumes where it ended
RETRY_S = (1.0, 2.0, 5.0, 10.0, 30.0)

Picked = tuple[str, str, str, bool]  # namespace, name, stack, ready


def pick(obj: Mapping[str, Any]) -> Picked:
    """The little the controller needs of a stack Deployment."""
    meta = obj.get("metadata") or {}
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    ready = (status.get("readyReplicas") or 0) >= spec.get("replicas", 1)
    stack = (meta.get("labels") or {}).get(STACK_LABEL, "")
    return meta.get("namespace", ""), meta.get("name", ""), stack, ready


class StackWatch:
    """Which stacks of each namespace are ready; calls ``on_change(namespace)`` in the event loop.

    A stack is ready when every Deployment carrying its label in that namespace is.
    """

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._lock = threading.Lock()
        # namespace -> Deployment name -> (stack, ready): the watch writes, the loop reads
        self._by_namespace: dict[str, dict[str, tuple[str, bool]]] = {}
        self._stop = threading.Event()
        self._listed: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    def start(self, loop: asyncio.AbstractEventLoop, on_change: Callable[[str], None]) -> None:
        """Start watching in a daemon thread; ``on_change`` runs in ``loop``."""
        self._listed = asyncio.Event()
        listed = self._listed

        def notify(namespaces: set[str], *, first: bool = False) -> None:
            def deliver() -> None:
                if first:
                    listed.set()
                for namespace in sorted(namespaces):
                    on_change(namespace)

            loop.call_soon_threadsafe(deliver)

        self._thread = threading.Thread(target=self._run, args=(notify,), name="stack-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the watch to end; it does at its next event or timeout (a daemon: never waited for)."""
        self._stop.set()

    async def listed(self) -> None:
        """Wait until the first list is in: before, every stack would look not ready."""
        if self._listed is not None:
            await self._listed.wait()

    def ready_by_stack(self, namespace: str) -> dict[str, bool]:
        with self._lock:
            deployments = list(self._by_namespace.get(namespace, {}).values())
        ready: dict[str, bool] = {}
        for stack, ok in deployments:
            ready[stack] = ready.get(stack, True) and ok
        return ready

    def _run(self, notify: Callable[..., None]) -> None:
        failures, first = 0, True
        while not self._stop.is_set():
            try:
                version = self._relist(notify, first=first)
                first, failures = False, 0
                while not self._stop.is_set():
                    version = self._watch(version, notify)
            except KubeError as exc:
                if exc.status != 410:  # 410 Gone: the version expired, a re-list is all it takes
                    log.warning("stack watch: %s; re-listing", exc)
                    self._stop.wait(RETRY_S[min(failures, len(RETRY_S) - 1)])
                    failures += 1
            except Exception:  # never let the thread die: statuses would freeze silently
                log.exception("stack watch failed; re-listing")
                self._stop.wait(RETRY_S[min(failures, len(RETRY_S) - 1)])
                failures += 1

    def _relist(self, notify: Callable[..., None], *, first: bool) -> str:
        items = self.kube.list("apps/v1", "Deployment", label_selector=SELECTOR, pick=pick)
        fresh: dict[str, dict[str, tuple[str, bool]]] = {}
        for namespace, name, stack, ready in items:
            fresh.setdefault(namespace, {})[name] = (stack, ready)
        with self._lock:
            old, self._by_namespace = self._by_namespace, fresh
        changed = {ns for ns in old.keys() | fresh.keys() if old.get(ns) != fresh.get(ns)}
        notify(changed, first=first)
        return items.resource_version

    def _watch(self, version: str, notify: Callable[..., None]) -> str:
        """Apply one watch's events; the resourceVersion to resume from."""
        for kind, obj in self.kube.watch(
            "apps/v1",
            "Deployment",
            resource_version=version,
            label_selector=SELECTOR,
            timeout_seconds=WATCH_S,
        ):
            if self._stop.is_set():
                break
            version = (obj.get("metadata") or {}).get("resourceVersion") or version
            if kind == "BOOKMARK":
                continue
            namespace, name, stack, ready = pick(obj)
            with self._lock:
                deployments = self._by_namespace.setdefault(namespace, {})
                before = deployments.get(name)
                if kind == "DELETED":
                    deployments.pop(name, None)
                    if not deployments:
                        del self._by_namespace[namespace]
                    after = None
                else:
                    deployments[name] = after = (stack, ready)
            if before != after:  # most events are status churn that leaves readiness as it was
                notify({namespace})
        return version
