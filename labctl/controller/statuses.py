"""Status of Learners and Cohorts: what to write, computed from what is known.

Pure functions returning only the fields that differ from the status given: unchanged
status is never re-written, so an idle controller makes no API writes. Each field has
one writer: the reconcile owns what was applied (appliedHash, appliedStacks, namespace,
observedGeneration), the status refresh owns stacks, phase, conditions and counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from labctl.controller.reconcile import LearnerApplied, condition, learner_phase


def applied_changes(body: Mapping[str, Any], applied: LearnerApplied | None) -> dict[str, Any]:
    """After a reconcile: which desired state is applied, for which generation, in which namespace."""
    status = body.get("status") or {}
    generation = body["metadata"].get("generation")
    name = body["metadata"]["name"]
    changes: dict[str, Any] = {}
    if applied is not None:
        changes["appliedHash"] = applied.digest
        if status.get("appliedStacks") != list(applied.stacks):
            changes["appliedStacks"] = list(applied.stacks)
    if status.get("namespace") != name:
        changes["namespace"] = name
    if status.get("observedGeneration") != generation:
        changes["observedGeneration"] = generation
    return changes


def learner_changes(
    status: Mapping[str, Any],
    meta: Mapping[str, Any],
    spec: Mapping[str, Any],
    ready_by_stack: Mapping[str, bool],
) -> dict[str, Any]:
    """Phase and stack readiness from the applied state and the live stack Deployments.

    Every applied stack counts, ready or not yet seen: a learner is never Ready because
    its Deployments have not been observed yet.
    """
    known = dict(status.get("stacks") or {})
    generation = meta.get("generation")
    applied = bool(status.get("appliedHash")) and status.get("observedGeneration") == generation
    # Until the apply is recorded the stacks are still arriving one by one: wait for all.
    wanted = set(status.get("appliedStacks") or []) | set(ready_by_stack) if applied else set(known)
    stacks = {c: bool(ready_by_stack.get(c, False)) for c in wanted}
    phase = learner_phase(applied=applied, stacks=stacks, suspended=bool(spec.get("suspended")))
    changes: dict[str, Any] = {}
    if stacks != known:
        changes["stacks"] = stacks
    if status.get("phase") != phase:
        waiting = sorted(c for c, ok in stacks.items() if not ok)
        message = (
            "namespace and stacks ready"
            if phase == "Ready"
            else (f"waiting for: {', '.join(waiting)}" if waiting and applied else f"phase {phase}")
        )
        changes["phase"] = phase
        changes["conditions"] = [condition("Ready", phase == "Ready", phase, message, generation)]
    return changes


def cohort_changes(
    status: Mapping[str, Any],
    meta: Mapping[str, Any],
    spec: Mapping[str, Any],
    members: Iterable[tuple[str, str | None]],
) -> dict[str, Any]:
    """Learner counts and the Ready condition of a cohort."""
    wanted = len(spec.get("learners") or [])
    phases = dict(members)
    ready = sum(1 for phase in phases.values() if phase == "Ready")
    generation = meta.get("generation")
    changes: dict[str, Any] = {}
    if status.get("learners") != wanted:
        changes["learners"] = wanted
    if status.get("ready") != ready:
        changes["ready"] = ready
    if status.get("observedGeneration") != generation:
        changes["observedGeneration"] = generation
    is_ready = wanted > 0 and ready == wanted and len(phases) == wanted
    current = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    if current is None or (current.get("status") == "True") != is_ready:
        message = f"{ready}/{wanted} learners ready"
        changes["conditions"] = [
            condition("Ready", is_ready, "Ready" if is_ready else "Provisioning", message, generation)
        ]
    return changes
