"""What the dashboard knows of the cluster: a picked copy of each object, kept by one watch per kind.

Every viewer reads this copy; none of them makes a request of their own for the grid. Each kind
is listed once (in pages, keeping only the fields the pages show: evidence and conditions are
dropped, so 500 learners x 14 labs fit in a few megabytes), then watched from the list's
resourceVersion. A watch that ends is resumed; one the server refuses (410 Gone: too old) or
that breaks is followed by a fresh list, which replaces that kind's copy whole.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from labctl.api.v1alpha1 import API_VERSION
from labctl.kube import Kube, KubeError

log = logging.getLogger(__name__)

COHORT, LEARNER, SESSION, ATTEMPT = "Cohort", "Learner", "LabSession", "GradeAttempt"
KINDS = (COHORT, LEARNER, SESSION, ATTEMPT)
FEEDBACK_KEPT = 500  # per check in the copy; the learner's page reads the whole attempt afresh


@dataclass(frozen=True)
class Change:
    """One object changed: its kind, and the cohort / learner / lab it concerns (when known)."""

    kind: str
    cohort: str | None = None
    learner: str | None = None
    lab: str | None = None


def pick_cohort(obj: dict[str, Any]) -> dict[str, Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return {
        "name": obj["metadata"]["name"],
        "level": spec.get("level", ""),
        "labs": list(spec.get("labs") or []),
        "size": len(spec.get("learners") or []),
        "expires": spec.get("expires"),
        "suspended": bool(spec.get("suspended")),
        "ready": int(status.get("ready") or 0),
    }


def pick_learner(obj: dict[str, Any]) -> dict[str, Any]:
    """The shape :func:`labctl.grading.records.learner_grades` reads, with the environment's state."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return {
        "metadata": {"name": obj["metadata"]["name"]},
        "spec": {
            key: spec.get(key)
            for key in ("cohort", "email", "displayName", "id", "level", "labs", "suspended")
        },
        "status": {
            "namespace": status.get("namespace"),
            "phase": status.get("phase"),
            "stacks": dict(status.get("stacks") or {}),
        },
    }


def pick_session(obj: dict[str, Any]) -> dict[str, Any]:
    status = obj.get("status") or {}
    return {
        "namespace": obj["metadata"]["namespace"],
        "lab": (obj.get("spec") or {}).get("lab", ""),
        "phase": status.get("phase"),
        "title": status.get("title", ""),
        "score": float(status.get("score") or 0),
        "maxScore": float(status.get("maxScore") or 0),
        "attempts": int(status.get("attempts") or 0),
        "startedAt": status.get("startedAt"),
        "lastCheckAt": status.get("lastCheckAt"),
    }


def pick_attempt(obj: dict[str, Any]) -> dict[str, Any]:
    """The shape :func:`labctl.grading.records.results_of` reads, without evidence."""
    spec = obj.get("spec") or {}
    results = [
        {
            "check": r.get("check", ""),
            "status": r.get("status", "error"),
            "points": r.get("points", 0),
            "maxPoints": r.get("maxPoints", 0),
            "feedback": (r.get("feedback") or "")[:FEEDBACK_KEPT],
        }
        for r in spec.get("results") or []
    ]
    kept = ("cohort", "learner", "email", "lab", "attempt", "gradedAt", "status", "score", "maxScore")
    return {
        "metadata": {"name": obj["metadata"]["name"]},
        "spec": {
            **{key: spec.get(key) for key in kept},
            "passMark": spec.get("passMark", 1.0),
            "required": list(spec.get("required") or []),
            "results": results,
        },
    }


PICKS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    COHORT: pick_cohort,
    LEARNER: pick_learner,
    SESSION: pick_session,
    ATTEMPT: pick_attempt,
}


class Store:
    """The picked objects, indexed as the pages read them. Thread-safe; tells listeners of changes."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.cohorts: dict[str, dict[str, Any]] = {}
        self.learners: dict[str, dict[str, Any]] = {}
        self.sessions: dict[tuple[str, str], dict[str, Any]] = {}  # (namespace, lab) ->
        self.attempts: dict[tuple[str, str], dict[str, Any]] = {}  # (learner, lab) -> the latest
        self._by_namespace: dict[str, str] = {}  # learner namespace -> Learner name
        self._listeners: list[Callable[[Change], None]] = []
        self._synced: set[str] = set()
        self.synced = threading.Event()  # set once every kind has been listed

    def subscribe(self, listener: Callable[[Change], None]) -> None:
        self._listeners.append(listener)

    # --- reads -----------------------------------------------------------------------------------

    def learners_of(self, cohort: str) -> list[dict[str, Any]]:
        with self.lock:
            found = [lr for lr in self.learners.values() if lr["spec"]["cohort"] == cohort]
        return sorted(found, key=lambda lr: str(lr["spec"]["email"]))

    def namespace_of(self, learner: dict[str, Any]) -> str:
        return str(learner["status"].get("namespace") or learner["metadata"]["name"])

    def learner_at(self, namespace: str) -> dict[str, Any] | None:
        with self.lock:
            name = self._by_namespace.get(namespace)
            return self.learners.get(name) if name else None

    # --- writes (the watches) --------------------------------------------------------------------

    def replace(self, kind: str, items: Iterable[dict[str, Any]]) -> None:
        """A fresh list of ``kind``: its copy replaced whole; listeners hear of every cohort."""
        with self.lock:
            if kind == COHORT:
                self.cohorts = {c["name"]: c for c in items}
            elif kind == LEARNER:
                self.learners = {lr["metadata"]["name"]: lr for lr in items}
                self._by_namespace = {self.namespace_of(lr): n for n, lr in self.learners.items()}
            elif kind == SESSION:
                self.sessions = {(s["namespace"], s["lab"]): s for s in items}
            else:
                self.attempts = {}
                for attempt in items:
                    self._keep_latest(attempt)
            self._synced.add(kind)
            if self._synced >= set(KINDS):
                self.synced.set()
        self._tell(Change(kind))

    def apply(self, kind: str, event: str, item: dict[str, Any]) -> None:
        """One watch event (ADDED, MODIFIED, DELETED) of a picked object."""
        deleted = event == "DELETED"
        with self.lock:
            if kind == COHORT:
                change = Change(kind, cohort=item["name"])
                self._put(self.cohorts, item["name"], item, deleted)
            elif kind == LEARNER:
                name = item["metadata"]["name"]
                change = Change(kind, cohort=item["spec"]["cohort"], learner=name)
                self._put(self.learners, name, item, deleted)
                self._by_namespace = {self.namespace_of(lr): n for n, lr in self.learners.items()}
            elif kind == SESSION:
                self._put(self.sessions, (item["namespace"], item["lab"]), item, deleted)
                learner = self.learner_at(item["namespace"])
                change = Change(
                    kind,
                    cohort=learner["spec"]["cohort"] if learner else None,
                    learner=learner["metadata"]["name"] if learner else None,
                    lab=item["lab"],
                )
            else:
                spec = item["spec"]
                change = Change(kind, cohort=spec["cohort"], learner=spec["learner"], lab=spec["lab"])
                key = (spec["learner"], spec["lab"])
                if deleted:
                    # Attempts go only with their Learner: the earlier ones are going too.
                    self.attempts.pop(key, None)
                else:
                    self._keep_latest(item)
        self._tell(change)

    def _keep_latest(self, attempt: dict[str, Any]) -> None:
        spec = attempt["spec"]
        key = (spec["learner"], spec["lab"])
        held = self.attempts.get(key)
        if held is None or int(spec["attempt"]) >= int(held["spec"]["attempt"]):
            self.attempts[key] = attempt

    @staticmethod
    def _put(table: dict[Any, dict[str, Any]], key: Any, item: dict[str, Any], deleted: bool) -> None:
        if deleted:
            table.pop(key, None)
        else:
            table[key] = item

    def _tell(self, change: Change) -> None:
        for listener in self._listeners:
            try:
                listener(change)
            except Exception:  # a viewer's trouble must not stop the watch
                log.exception("dashboard listener failed on %s", change)


class Watches:
    """One thread per kind: list, then watch from the list's resourceVersion, forever."""

    def __init__(self, kube: Kube, store: Store, *, watch_seconds: int = 300) -> None:
        self.kube = kube
        self.store = store
        self.watch_seconds = watch_seconds
        self.stopping = threading.Event()
        self.threads = [
            threading.Thread(target=self._run, args=(kind,), name=f"watch-{kind}", daemon=True)
            for kind in KINDS
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.stopping.set()

    def _run(self, kind: str) -> None:
        pause = 0.5
        while not self.stopping.is_set():
            try:
                items = self.kube.list(API_VERSION, kind, pick=PICKS[kind])
                self.store.replace(kind, items)
                version = items.resource_version
                pause = 0.5
                while not self.stopping.is_set():
                    version = self._watch(kind, version)
            except KubeError as exc:
                if exc.status != 410:  # Gone: our version is too old, list again at once
                    log.warning("dashboard: %s; listing again in %.0fs", exc, pause)
                    self.stopping.wait(pause)
                    pause = min(pause * 2, 30.0)
            except Exception:
                log.exception("dashboard: the %s watch failed; listing again", kind)
                self.stopping.wait(pause)
                pause = min(pause * 2, 30.0)

    def _watch(self, kind: str, version: str) -> str:
        """Watch until the server ends it; returns the resourceVersion to resume from."""
        pick = PICKS[kind]
        for event, obj in self.kube.watch(
            API_VERSION, kind, resource_version=version, timeout_seconds=self.watch_seconds
        ):
            with contextlib.suppress(KeyError, TypeError):
                version = str(obj["metadata"]["resourceVersion"])
            if event == "BOOKMARK":
                continue
            self.store.apply(kind, event, pick(obj))
            if self.stopping.is_set():
                break
        return version
