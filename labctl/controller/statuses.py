"""Status of Learners and Cohorts, written only when it differs from what is there.

Unchanged status is never re-written: an idle controller makes no API writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from labctl.controller.reconcile import LearnerApplied, condition, learner_phase


def record_applied(patch: Any, body: Mapping[str, Any], applied: LearnerApplied | None) -> None:
    """After a reconcile: which desired state is applied, for which generation, in which namespace."""
    status = body.get("status") or {}
    generation = body["metadata"].get("generation")
    name = body["metadata"]["name"]
    if applied is not None:
        patch.status["appliedHash"] = applied.digest
        known = status.get("stacks") or {}
        if missing := {c: False for c in applied.stacks if c not in known}:
            patch.status["stacks"] = missing
    if status.get("namespace") != name:
        patch.status["namespace"] = name
    if status.get("observedGeneration") != generation:
        patch.status["observedGeneration"] = generation


def update_learner(
    patch: Any,
    status: Mapping[str, Any],
    meta: Mapping[str, Any],
    spec: Mapping[str, Any],
    ready_by_stack: dict[str, bool],
) -> None:
    """Phase and stack readiness from the applied state and the live stack Deployments."""
    known = dict(status.get("stacks") or {})
    stacks = {c: bool(ready_by_stack.get(c, False)) for c in set(known) | set(ready_by_stack)}
    generation = meta.get("generation")
    applied = bool(status.get("appliedHash")) and status.get("observedGeneration") == generation
    phase = learner_phase(applied=applied, stacks=stacks, suspended=bool(spec.get("suspended")))
    if stacks != known:
        patch.status["stacks"] = stacks
    if status.get("phase") != phase:
        waiting = sorted(c for c, ok in stacks.items() if not ok)
        message = (
            "namespace and stacks ready"
            if phase == "Ready"
            else (f"waiting for: {', '.join(waiting)}" if waiting and applied else f"phase {phase}")
        )
        patch.status["phase"] = phase
        patch.status["conditions"] = [condition("Ready", phase == "Ready", phase, message, generation)]


def update_cohort(
    patch: Any,
    status: Mapping[str, Any],
    meta: Mapping[str, Any],
    spec: Mapping[str, Any],
    members: Iterable[tuple[str, str | None]],
) -> None:
    """Learner counts and the Ready condition of a cohort."""
    wanted = len(spec.get("learners") or [])
    phases = dict(members)
    ready = sum(1 for phase in phases.values() if phase == "Ready")
    generation = meta.get("generation")
    if status.get("learners") != wanted:
        patch.status["learners"] = wanted
    if status.get("ready") != ready:
        patch.status["ready"] = ready
    if status.get("observedGeneration") != generation:
        patch.status["observedGeneration"] = generation
    is_ready = wanted > 0 and ready == wanted and len(phases) == wanted
    current = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    if current is None or (current.get("status") == "True") != is_ready:
        message = f"{ready}/{wanted} learners ready"
        patch.status["conditions"] = [
            condition("Ready", is_ready, "Ready" if is_ready else "Provisioning", message, generation)
        ]
