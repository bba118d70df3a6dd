"""A learner's ResourceQuotas: applied, their usage known, and recounted when inflated.

Why a recount. Quota admission charges a create to the quota's ``status.used`` *before* the
object is stored. When the create then fails, the charge stays: a create that lost a race
(AlreadyExists, an apply retried as an update) or one the API server abandoned because its
client died, as a SIGKILLed controller's in-flight applies are. Only kube-controller-manager's
quota controller takes charges back, when it recounts, and it recounts a quota only when (a)
its ``spec.hard`` changes, (b) a counted object in the namespace is deleted, or (c) at its
full resync, every ``--resource-quota-sync-period`` (5 min by default, a flag of the control
plane that a cloud cluster's operator does not let us change). Measured, the controller killed
10 times during a 50-learner provision: a learner at ``used: services=10`` holding 2, its
stacks' Services refused ("exceeded quota") until the resync, all Ready 283 s after the last
restart; recounts here corrected e.g. ``services 4 -> 0, persistentvolumeclaims 2 -> 0``: creates
charged, none stored.

The alternatives, and why not alone:
- No racing creates (read before create, one process at a time): a create the API server
  abandons when its client is killed is charged all the same; no client can prevent it.
- Headroom for labctl's own objects: quota scopes select pods only (Terminating, BestEffort,
  PriorityClass...), not Services or claims; and extra room only hides a leak of any size,
  while the learner's own Services still count against the inflated figure.

So labctl asks for (a), when there is evidence. Before it applies into a namespace whose quota
was counted before (a previous apply, perhaps an interrupted one), it compares the quota's
count of Services and claims, the kinds labctl creates that it counts, with what the namespace
holds (a LIST each). If the count is higher, it adds a hard limit on a kind that does not exist
(:data:`~labctl.provision.quota.RECOUNT_MARKER`), waits until the quota controller has
recounted (the marker shows in ``status.hard``), removes it and waits for the second recount;
only then does it create anything. kube-controller-manager's ``pkg/controller/resourcequota``:
the quota informer's UpdateFunc enqueues a quota only when ``quota.Equals(old.Spec.Hard,
cur.Spec.Hard)`` is false, into the priority queue as ``spec.hard`` then differs from
``status.hard``; ``syncResourceQuota`` recounts every resource of that quota from informer
caches. A touch of labels, annotations or an equal quantity (``10`` vs ``10000m``) does not.

That recount is racy: an object charged while it counts, but not yet in its cache, is left out
(a count too low). Hence recount before labctl creates anything, and hence the objects labctl
creates are limited by a quota of their own (labctl.provision.quota): recounting a quota that
also counted pods raced the pods the namespace's Deployments were creating (measured: a quota
left at ``pods: 3`` with 4 running). The compute quota is never touched.

Cost: a GET per quota on every apply, two LISTs on a re-apply; on an inflated quota, two
writes of it and two short waits. One crash test: 3 of the 50 learners' quotas were inflated.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from labctl.kube import Kube
from labctl.provision.quota import COUNTED_KINDS, RECOUNT_MARKER, with_recount_marker
from labctl.provision.stacks.settings import parse_quantity

POLL_S = 0.2  # cheap GETs of one quota while its controller catches up


@dataclass(frozen=True)
class QuotaApplied:
    name: str
    recounted: bool  # it counted more than the namespace held, and was recounted
    corrected: dict[str, tuple[str, str]]  # resource: (used before, used after the recount)


def apply_quotas(
    kube: Kube, quotas: list[dict[str, Any]], *, creates: set[str], deadline: float
) -> list[QuotaApplied]:
    """Apply ``quotas`` (of one namespace); return once their usage is counted, and what
    recounts corrected.

    ``creates`` are the kinds the caller is about to apply in that namespace; a quota counting
    more of them than the namespace holds is recounted first. ``deadline`` is a
    ``time.monotonic()`` value for the waits.
    """
    leaked = [_counted_before(kube, quota, creates) for quota in quotas]
    # All written at once, then waited for: the quota controller counts them side by side.
    kube.apply_many([with_recount_marker(q) if used else q for q, used in zip(quotas, leaked, strict=True)])
    recounting = [q for q, used in zip(quotas, leaked, strict=True) if used]
    for quota in recounting:
        _wait(kube, quota["metadata"], deadline, _marked, "to recount usage")
    kube.apply_many(recounting)  # as rendered again: the marker goes, and the count is made once more
    applied = []
    for quota, used in zip(quotas, leaked, strict=True):
        limits = partial(_limits, set(quota["spec"]["hard"]))
        status = _wait(kube, quota["metadata"], deadline, limits, "to compute usage")
        fixed = corrections(used, status.get("used") or {}) if used else {}
        applied.append(QuotaApplied(quota["metadata"]["name"], recounted=bool(used), corrected=fixed))
    return applied


def _counted_before(kube: Kube, quota: dict[str, Any], creates: set[str]) -> dict[str, str] | None:
    """The live quota's ``status.used`` if it counts more of ``creates`` than its namespace
    holds, else None.

    A quota never counted has nothing to take back: admission refused every create it would
    have charged ("status unknown for quota").
    """
    meta = quota["metadata"]
    live = kube.get("v1", "ResourceQuota", meta["name"], meta["namespace"]) or {}
    used: dict[str, str] = (live.get("status") or {}).get("used") or {}
    return used if used and _inflated(kube, meta["namespace"], used, creates) else None


def _inflated(kube: Kube, namespace: str, used: dict[str, str], creates: set[str]) -> bool:
    """Does the quota count more of a kind in ``creates`` than ``namespace`` holds?"""
    for kind, resource in COUNTED_KINDS.items():
        if kind in creates and resource in used:
            held = len(kube.list("v1", kind, namespace=namespace))
            if parse_quantity(used[resource]) > held:
                return True
    return False


def corrections(before: dict[str, str], after: dict[str, str]) -> dict[str, tuple[str, str]]:
    """The resources whose usage differs, as (before, after); quantities compared by value."""
    return {
        name: (before[name], after[name])
        for name in before.keys() & after.keys()
        if parse_quantity(before[name]) != parse_quantity(after[name])
    }


def _marked(hard: dict[str, Any]) -> bool:
    return RECOUNT_MARKER in hard


def _limits(wanted: set[str], hard: dict[str, Any]) -> bool:
    return set(hard) == wanted


def _wait(
    kube: Kube, meta: dict[str, Any], deadline: float, synced: Callable[[dict[str, Any]], bool], what: str
) -> dict[str, Any]:
    """The quota's status, once the quota controller has written one that ``synced`` accepts."""
    return kube.wait_for(
        partial(_synced, kube, meta, synced),
        timeout=max(0.0, deadline - time.monotonic()),
        what=f"quota {meta['namespace']}/{meta['name']} {what}",
        interval=POLL_S,
    )


def _synced(
    kube: Kube, meta: dict[str, Any], synced: Callable[[dict[str, Any]], bool]
) -> dict[str, Any] | None:
    live = kube.get("v1", "ResourceQuota", meta["name"], meta["namespace"]) or {}
    status: dict[str, Any] = live.get("status") or {}
    return status if synced(status.get("hard") or {}) and "used" in status else None
