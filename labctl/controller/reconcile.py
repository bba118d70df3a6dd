"""Idempotent reconcilers. Each takes the live object and converges the cluster to it.

They are plain functions of (Kube, object) so they can be tested and benchmarked without
kopf; the handlers only route events here.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import Any

from labctl.api.v1alpha1 import API_VERSION
from labctl.controller.quotas import QuotaApplied, apply_quotas, settle_counts
from labctl.kube import Kube, KubeError
from labctl.provision.cohort_learners import render_learners
from labctl.provision.egress import ApiServer
from labctl.provision.learner import objects_hash, render_learner_objects
from labctl.provision.stacks import STACK_LABEL, StackSettings
from labctl.provision.tenancy import COHORT_LABEL, LEARNER_LABEL

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CohortResult:
    applied: int
    deleted: int
    unchanged: int


def _same(live: dict[str, Any], desired: dict[str, Any]) -> bool:
    meta_live, meta_want = live["metadata"], desired["metadata"]
    return (
        live.get("spec") == desired["spec"]
        and all((meta_live.get("labels") or {}).get(k) == v for k, v in meta_want["labels"].items())
        and [o["uid"] for o in meta_live.get("ownerReferences") or []]
        == [o["uid"] for o in meta_want.get("ownerReferences") or []]
    )


def _comparable(obj: dict[str, Any]) -> dict[str, Any]:
    """What ``_same`` compares of a live Learner; the rest (its status, managedFields) is let go."""
    meta = obj.get("metadata") or {}
    return {
        "metadata": {k: meta[k] for k in ("name", "labels", "ownerReferences") if k in meta},
        "spec": obj.get("spec"),
    }


def reconcile_cohort(kube: Kube, cohort: dict[str, Any]) -> CohortResult:
    """Make the cohort's Learner objects match its roster: apply what differs, delete who left."""
    name = cohort["metadata"]["name"]
    desired = {obj["metadata"]["name"]: obj for obj in render_learners(cohort)}
    listed = kube.list(API_VERSION, "Learner", label_selector=f"{COHORT_LABEL}={name}", pick=_comparable)
    live = {obj["metadata"]["name"]: obj for obj in listed}
    changed = [obj for key, obj in desired.items() if key not in live or not _same(live[key], obj)]
    kube.apply(changed, quiet=True)
    gone = [key for key in live if key not in desired]
    for key in gone:
        kube.delete(API_VERSION, "Learner", key)
    return CohortResult(applied=len(changed), deleted=len(gone), unchanged=len(desired) - len(changed))


@dataclass(frozen=True)
class LearnerApplied:
    digest: str
    stacks: tuple[str, ...]  # the stack components rendered, whose readiness decides "Ready"
    objects: int = 0
    seconds: float = 0.0  # the whole apply
    quota_wait_s: float = 0.0  # of which waiting for the new quota's usage


def reconcile_learner(
    kube: Kube,
    learner: dict[str, Any],
    *,
    key: bytes,
    stack_settings: StackSettings | None = None,
    api_server: ApiServer | None = None,
) -> LearnerApplied | None:
    """Apply the learner's namespace and everything in it, unless the last apply was identical.

    Returns what was applied, or None when nothing had to be written. ``api_server``: the
    endpoints learners' egress policies name. They are in the digest, so a controller that
    restarts after they moved applies again; while it runs, its watch updates those policies
    alone (labctl.controller.apiserver), and the learner's next reconcile finds a new digest
    and applies again (a no-op for every object already as rendered).
    """
    objects = render_learner_objects(learner, key=key, stack_settings=stack_settings, api_server=api_server)
    digest = objects_hash(objects)
    status = learner.get("status") or {}
    if status.get("appliedHash") == digest:
        return None
    started = time.monotonic()
    kube.apply(objects[0], quiet=True)  # the namespace, before what lives in it
    quota_wait_s = _apply_under_new_quota(kube, objects[1:])
    stacks = sorted(
        {
            o["metadata"]["labels"][STACK_LABEL]
            for o in objects
            if o["kind"] == "Deployment" and STACK_LABEL in o["metadata"].get("labels", {})
        }
    )
    return LearnerApplied(digest, tuple(stacks), len(objects), time.monotonic() - started, quota_wait_s)


QUOTA_SETTLE_S = 30.0


def _apply_under_new_quota(kube: Kube, objects: list[dict[str, Any]]) -> float:
    """Apply the quotas first and wait (cheap LISTs) until the quota controller has computed their
    usage: until then admission refuses everything a quota counts ("status unknown for
    quota"). Then apply the rest in one go. Retrying the whole apply instead would hammer the
    API server with hundreds of doomed writes when a cohort of hundreds is provisioned.

    Quotas counted before (a re-apply, perhaps after a crash) are recounted when their count of
    what labctl creates is off: before the rest, or leaked charges would refuse it, and after,
    once every create has landed (labctl.controller.quotas). Returns the seconds spent on quotas.
    """
    quotas = [o for o in objects if o["kind"] == "ResourceQuota"]
    rest = [o for o in objects if o["kind"] != "ResourceQuota"]
    creates = {o["kind"] for o in rest}
    started = time.monotonic()
    deadline = started + QUOTA_SETTLE_S
    applied = apply_quotas(kube, quotas, creates=creates, deadline=deadline)
    _log_corrections(applied, quotas)
    waited = time.monotonic() - started
    while True:
        try:
            kube.apply(rest, quiet=True)
            break
        except KubeError as exc:  # a quota re-synced under us: brief, so retry briefly
            if exc.status != 403 or "status unknown for quota" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    if any(a.counted_before for a in applied):
        settling = time.monotonic()
        settled = settle_counts(kube, quotas, creates=creates, deadline=settling + QUOTA_SETTLE_S)
        _log_corrections(settled, quotas)
        waited += time.monotonic() - settling
    return waited


def _log_corrections(applied: list[QuotaApplied], quotas: list[dict[str, Any]]) -> None:
    for quota in applied:
        if quota.corrected:
            fixed = ", ".join(f"{k} {was} -> {now}" for k, (was, now) in sorted(quota.corrected.items()))
            log.warning("quota %s/%s recounted: %s", quotas[0]["metadata"]["namespace"], quota.name, fixed)


def learner_phase(*, applied: bool, stacks: dict[str, bool], suspended: bool) -> str:
    if suspended:
        return "Suspended"
    if not applied:
        return "Provisioning"
    return "Ready" if all(stacks.values()) else "Provisioning"


def condition(kind: str, ok: bool, reason: str, message: str, generation: int | None) -> dict[str, Any]:
    return {
        "type": kind,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
        "lastTransitionTime": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "observedGeneration": generation,
    }


def cohort_counts(learners: list[dict[str, Any]]) -> tuple[int, int]:
    """(learners, ready) from the cohort's Learner objects."""
    ready = sum(1 for obj in learners if (obj.get("status") or {}).get("phase") == "Ready")
    return len(learners), ready


def learners_of(kube: Kube, cohort: str) -> list[dict[str, Any]]:
    return kube.list(API_VERSION, "Learner", label_selector=f"{COHORT_LABEL}={cohort}")


def learner_of_namespace(namespace_labels: dict[str, str]) -> str | None:
    return namespace_labels.get(LEARNER_LABEL)
