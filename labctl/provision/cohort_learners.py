"""A Cohort's desired Learner objects: one per roster entry, owned by the Cohort."""

from __future__ import annotations

from typing import Any

from labctl.api.v1alpha1 import API_VERSION, CohortSpec, LearnerSpec
from labctl.core.labels import MANAGED_BY
from labctl.provision.naming import learner_name, normalise_email
from labctl.provision.tenancy import COHORT_LABEL


def owner_reference(obj: dict[str, Any], *, controller: bool = True) -> dict[str, Any]:
    """An ownerReference to ``obj`` so that deleting it garbage-collects what we made from it."""
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def render_learners(cohort: dict[str, Any]) -> list[dict[str, Any]]:
    """The Learner objects a Cohort wants, in roster order."""
    name = cohort["metadata"]["name"]
    spec = CohortSpec.model_validate(cohort["spec"])
    owner = owner_reference(cohort) if cohort["metadata"].get("uid") else None
    learners = []
    for entry in spec.learners:
        email = normalise_email(entry.email)
        learner_spec = LearnerSpec(
            cohort=name,
            email=email,
            display_name=entry.name,
            id=entry.id,
            level=spec.level,
            labs=spec.labs,
            quota_profile=spec.quota_profile,
            egress=spec.egress,
            suspended=spec.suspended,
        )
        meta: dict[str, Any] = {
            "name": learner_name(name, email),
            "labels": {**MANAGED_BY, COHORT_LABEL: name},
        }
        if owner:
            meta["ownerReferences"] = [owner]
        learners.append(
            {
                "apiVersion": API_VERSION,
                "kind": "Learner",
                "metadata": meta,
                "spec": learner_spec.model_dump(by_alias=True, exclude_none=True, mode="json"),
            }
        )
    return learners
