"""Status refreshes driven by events: a Learner's from its stack Deployments, a Cohort's
from its Learners.

Every status write produces an event on the object written, which is evaluated again with
the fresh body: two refreshes racing can at worst write a stale value that the next event
corrects, so status converges without any periodic polling.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
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

    def ref(self) -> dict[str, Any]:
        """An object reference for posting Events about it."""
        meta = {"name": self.name, "uid": self.uid}
        return {"apiVersion": API_VERSION, "kind": self.kind, "metadata": meta}


def _write_status(kube: Kube, seen: Seen, changes: dict[str, Any]) -> bool:
    try:
        kube.patch(API_VERSION, seen.kind, seen.name, {"status": changes}, subresource="status")
    except KubeError as exc:
        if exc.status == 404:  # deleted meanwhile: nothing to report on
            return False
        raise
    return True


def refresh_learner(kube: Kube, seen: Seen, ready_by_stack: Mapping[str, bool]) -> str | None:
    """Write the learner's stack readiness and phase if they changed; the new phase, if any."""
    changes = statuses.learner_changes(seen.status, seen.meta, seen.spec, ready_by_stack)
    if not changes or not _write_status(kube, seen, changes):
        return None
    return changes.get("phase")


def refresh_cohort(kube: Kube, seen: Seen, members: Iterable[tuple[str, str | None]]) -> None:
    """Write the cohort's learner counts and Ready condition if they changed."""
    members = list(members)
    metrics.observe_cohort(
        seen.name, wanted=len(seen.spec.get("learners") or []), phases=[phase for _, phase in members]
    )
    if changes := statuses.cohort_changes(seen.status, seen.meta, seen.spec, members):
        _write_status(kube, seen, changes)
