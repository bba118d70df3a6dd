"""Status refreshes driven by events: a Learner's from its stack Deployments, a Cohort's
from its Learners.

Every status write produces an event on the object written, which is evaluated again with
the fresh body: two refreshes racing can at worst write a stale value that the next event
corrects, so status converges without any periodic polling. What this process last wrote
is remembered, so the many events that arrive before a write comes back (a Deployment's
status changes several times on its way to ready) do not write the same value again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from labctl.api.v1alpha1 import API_VERSION
from labctl.controller import metrics, statuses
from labctl.kube import Kube, KubeError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Seen:
    """What the controller last saw of a Learner or Cohort: enough to compute its status."""

    kind: str
    name: str
    uid: str
    meta: Mapping[str, Any]
    spec: Mapping[str, Any]
    status: Mapping[str, Any]

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> Seen:
        meta = body["metadata"]
        return cls(
            kind=body["kind"],
            name=meta["name"],
            uid=meta.get("uid", ""),
            meta={"generation": meta.get("generation")},
            spec=dict(body.get("spec") or {}),
            status=dict(body.get("status") or {}),
        )

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.name, self.uid)  # the uid: a re-created object starts afresh

    def ref(self) -> dict[str, Any]:
        """An object reference for posting Events about it."""
        meta = {"name": self.name, "uid": self.uid}
        return {"apiVersion": API_VERSION, "kind": self.kind, "metadata": meta}


def _comparable(value: Any) -> Any:
    """Conditions compare without their timestamps: a recomputed one is the same condition."""
    if isinstance(value, list):
        return [
            {k: v for k, v in item.items() if k != "lastTransitionTime"} if isinstance(item, dict) else item
            for item in value
        ]
    return value


class Written:
    """The status fields this process last wrote, per object: the fields it alone owns.

    A write is checked, made and recorded under the object's own lock: two events of one
    learner handled at the same moment write a value once.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_object: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._locks: dict[tuple[str, str, str], threading.Lock] = {}

    def lock(self, seen: Seen) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(seen.key, threading.Lock())

    def already(self, seen: Seen, changes: Mapping[str, Any]) -> bool:
        """True when every change is what this process last wrote for that field."""
        with self._lock:
            last = self._by_object.get(seen.key, {})
            return all(k in last and _comparable(last[k]) == _comparable(v) for k, v in changes.items())

    def record(self, seen: Seen, changes: Mapping[str, Any]) -> None:
        with self._lock:
            self._by_object.setdefault(seen.key, {}).update(changes)

    def forget(self, seen: Seen) -> None:
        with self._lock:
            self._by_object.pop(seen.key, None)
            self._locks.pop(seen.key, None)


def _write_status(kube: Kube, written: Written, seen: Seen, changes: dict[str, Any]) -> bool:
    with written.lock(seen):
        if written.already(seen, changes):  # our own write, not back yet: nothing new
            return False
        log.debug("status of %s %s: %s", seen.kind, seen.name, changes)
        try:
            kube.patch(
                API_VERSION, seen.kind, seen.name, {"status": changes}, subresource="status", quiet=True
            )
        except KubeError as exc:
            if exc.status == 404:  # deleted meanwhile: nothing to report on
                written.forget(seen)
                return False
            raise
        written.record(seen, changes)
        return True


Pending = Callable[[], tuple[Seen, dict[str, Any]]]


class StatusWriter:
    """Computes status in the event loop and writes it from pools of its own.

    Reconciles hold kopf's handler threads for seconds (quota settling, dozens of applies);
    status writes queued behind them made a learner Ready a minute after its stacks were.
    Writes are coalesced per object: one in flight, then only the latest value computed
    meanwhile (a learner's four stacks turning ready in a second are one or two writes; a
    cohort's count changes with every learner). Cohorts have a pool of their own.
    """

    def __init__(self, kube: Kube, *, workers: int = 16) -> None:
        self.kube = kube
        self.written = Written()
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="status")
        self.cohort_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="cohort-status")
        # Only the event loop touches these two: no lock needed.
        self._pending: dict[tuple[str, str, str], Pending] = {}
        self._writing: set[tuple[str, str, str]] = set()

    async def _coalesced(
        self, key: tuple[str, str, str], compute: Pending, pool: ThreadPoolExecutor
    ) -> list[dict[str, Any]]:
        """Write what ``compute`` gives now, or leave it to the write in flight for ``key``,
        which computes again when done. The changes this call wrote, in order."""
        self._pending[key] = compute
        if key in self._writing:
            return []
        self._writing.add(key)
        written: list[dict[str, Any]] = []
        try:
            while key in self._pending:
                seen, changes = self._pending.pop(key)()
                if await self._write(seen, changes, pool):
                    written.append(changes)
        finally:
            self._writing.discard(key)
        return written

    async def _write(self, seen: Seen, changes: dict[str, Any], pool: ThreadPoolExecutor) -> bool:
        if not changes or self.written.already(seen, changes):  # cheap, and most events end here
            return False
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(pool, _write_status, self.kube, self.written, seen, changes)

    async def learner(self, seen: Seen, ready_by_stack: Mapping[str, bool]) -> str | None:
        """Write the learner's stack readiness and phase if they changed; the new phase, if any."""

        def compute() -> tuple[Seen, dict[str, Any]]:
            return seen, statuses.learner_changes(seen.status, seen.meta, seen.spec, ready_by_stack)

        phases = [c["phase"] for c in await self._coalesced(seen.key, compute, self.pool) if "phase" in c]
        return phases[-1] if phases else None

    async def cohort(self, seen: Seen, members: Iterable[tuple[str, str | None]]) -> None:
        """Write the cohort's learner counts and Ready condition if they changed."""
        members = list(members)
        wanted = len(seen.spec.get("learners") or [])
        metrics.observe_cohort(seen.name, wanted=wanted, phases=[phase for _, phase in members])

        def compute() -> tuple[Seen, dict[str, Any]]:
            return seen, statuses.cohort_changes(seen.status, seen.meta, seen.spec, members)

        await self._coalesced(seen.key, compute, self.cohort_pool)
