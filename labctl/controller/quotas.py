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
holds (a LIST each). If the count differs, it adds a hard limit on a kind that does not exist
(:data:`~labctl.provision.quota.RECOUNT_MARKER`), waits until the quota controller has
recounted (the marker shows in ``status.hard``), removes it and waits for the second recount;
only then does it create anything. kube-controller-manager's ``pkg/controller/resourcequota``:
the quota informer's UpdateFunc enqueues a quota only when ``quota.Equals(old.Spec.Hard,
cur.Spec.Hard)`` is false, into the priority queue as ``spec.hard`` then differs from
``status.hard``; ``syncResourceQuota`` recounts every resource of that quota from informer
caches. A touch of labels, annotations or an equal quantity (``10`` vs ``10000m``) does not.

That recount is racy: an object charged while it counts, but not yet in its cache, is left out
(a count too low). Hence (1) the recount before labctl creates anything; (2) one more look
after the apply, once all of labctl's creates have been answered (:func:`settle_counts`): the
API server may still be working through a killed controller's requests when the next one
recounts (measured: ``services`` left at 3 with 4 held); (3) the objects labctl creates are
limited by a quota of their own (labctl.provision.quota): recounting a quota that also counted
pods raced the pods the namespace's Deployments were creating (measured: ``pods`` left at 3
with 4 running). The compute quota is never touched.

Cost: one LIST of the namespace's quotas before every apply (and one per poll while waiting,
as before); on a re-apply, two LISTs before and three after; on a quota whose count is off, two
writes of it and two short waits. In one crash test 6 of the 50 learners' object quotas were
found inflated.
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

Predicate = Callable[[dict[str, Any]], bool]  # of a quota's status.hard
POLL_S = 0.25  # one LIST of the namespace's quotas while their controller catches up


SETTLE_ROUNDS = 3  # recounts after an apply, should the first one race a create still landing


@dataclass(frozen=True)
class QuotaApplied:
    name: str
    counted_before: bool  # it existed with a count: charges may have leaked into it
    recounted: bool  # its count of what labctl creates was off, and it was recounted
    corrected: dict[str, tuple[str, str]]  # resource: (used before, used after the recount)


def apply_quotas(
    kube: Kube, quotas: list[dict[str, Any]], *, creates: set[str], deadline: float
) -> list[QuotaApplied]:
    """Apply ``quotas`` (of one namespace); return once their usage is counted, and what
    recounts corrected.

    ``creates`` are the kinds the caller is about to apply in that namespace; a quota whose
    count of them is not what the namespace holds is recounted first, or its leaked charges
    could refuse them. ``deadline`` is a ``time.monotonic()`` value for the waits.
    """
    if not quotas:
        return []
    namespace = quotas[0]["metadata"]["namespace"]
    live = _statuses(kube, namespace)
    before = {
        q["metadata"]["name"]: (live.get(q["metadata"]["name"]) or {}).get("used") or {} for q in quotas
    }
    off = _miscounted(kube, namespace, before, creates)
    # All written at once, then waited for: the quota controller counts them side by side.
    kube.apply([with_recount_marker(q) if q["metadata"]["name"] in off else q for q in quotas], quiet=True)
    statuses = _recounted(kube, namespace, quotas, off, deadline)
    return [
        QuotaApplied(
            name,
            counted_before=bool(used),
            recounted=name in off,
            corrected=corrections(used, statuses[name].get("used") or {}) if name in off else {},
        )
        for name, used in before.items()
    ]


def settle_counts(
    kube: Kube, quotas: list[dict[str, Any]], *, creates: set[str], deadline: float
) -> list[QuotaApplied]:
    """After an apply into a namespace whose quotas were counted before: recount those whose
    count of ``creates`` still differs from what the namespace holds.

    Before the apply a create of the killed controller's may still have been landing (the API
    server works through a dead client's requests for a while): charged and not yet stored, it
    is left out of a recount, and the quota ends up lower than what is held. Once labctl's own
    creates have all been answered, a count that differs is stale, and a recount is sound.
    """
    if not quotas:
        return []
    namespace = quotas[0]["metadata"]["namespace"]
    settled: list[QuotaApplied] = []
    for _ in range(SETTLE_ROUNDS):
        live = _statuses(kube, namespace)
        used = {
            q["metadata"]["name"]: (live.get(q["metadata"]["name"]) or {}).get("used") or {} for q in quotas
        }
        off = _miscounted(kube, namespace, used, creates)
        if not off:
            break
        recounting = [q for q in quotas if q["metadata"]["name"] in off]
        kube.apply([with_recount_marker(q) for q in recounting], quiet=True)
        statuses = _recounted(kube, namespace, recounting, off, deadline)
        settled += [
            QuotaApplied(
                name,
                counted_before=True,
                recounted=True,
                corrected=corrections(used[name], statuses[name].get("used") or {}),
            )
            for name in off
        ]
    return settled


def _recounted(
    kube: Kube, namespace: str, quotas: list[dict[str, Any]], marked: set[str], deadline: float
) -> dict[str, dict[str, Any]]:
    """The quotas' statuses once counted, those ``marked`` (applied with the marker) recounted
    first and then applied as rendered again: the marker goes, and the count is made again."""
    if marked:
        _wait(kube, namespace, dict.fromkeys(marked, _marked), deadline, "to recount usage")
        kube.apply([q for q in quotas if q["metadata"]["name"] in marked], quiet=True)
    synced: dict[str, Predicate] = {
        q["metadata"]["name"]: partial(_limits, set(q["spec"]["hard"])) for q in quotas
    }
    return _wait(kube, namespace, synced, deadline, "to compute usage")


def _miscounted(kube: Kube, namespace: str, used: dict[str, dict[str, str]], creates: set[str]) -> set[str]:
    """The quotas (by name, with their ``status.used``) whose count of a kind in ``creates``
    is not what ``namespace`` holds.

    A quota never counted (no ``used``) has nothing to take back: admission refused every
    create it would have charged ("status unknown for quota").
    """
    held: dict[str, int] = {}  # one LIST per kind, whatever the number of quotas
    off = set()
    for name, counts in used.items():
        for kind, resource in COUNTED_KINDS.items():
            if kind not in creates or resource not in counts:
                continue
            if kind not in held:
                held[kind] = len(kube.list("v1", kind, namespace=namespace))
            if parse_quantity(counts[resource]) != held[kind]:
                off.add(name)
    return off


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
    kube: Kube,
    namespace: str,
    synced: dict[str, Predicate],
    deadline: float,
    what: str,
) -> dict[str, dict[str, Any]]:
    """The statuses of the namespace's quotas, once the quota controller has written, for each
    quota named in ``synced``, a status whose ``hard`` its predicate accepts."""

    def ready() -> dict[str, dict[str, Any]] | None:
        statuses = _statuses(kube, namespace)
        late = [n for n, ok in synced.items() if not _counted(statuses.get(n), ok)]
        return None if late else statuses

    names = ", ".join(f"{namespace}/{n}" for n in synced)
    return kube.wait_for(
        ready, timeout=max(0.0, deadline - time.monotonic()), what=f"quota {names} {what}", interval=POLL_S
    )


def _statuses(kube: Kube, namespace: str) -> dict[str, dict[str, Any]]:
    """Each ResourceQuota's status in ``namespace``, by name: one LIST for all."""
    quotas = kube.list("v1", "ResourceQuota", namespace=namespace)
    return {q["metadata"]["name"]: q.get("status") or {} for q in quotas}


def _counted(status: dict[str, Any] | None, synced: Predicate) -> bool:
    return status is not None and synced(status.get("hard") or {}) and "used" in status
