"""Everything one learner gets, rendered from their Learner object: namespace, guard-rails, stacks."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from labctl.api.v1alpha1 import LearnerSpec
from labctl.provision.cohort_learners import owner_reference
from labctl.provision.egress import ApiServer, render_egress
from labctl.provision.quota import profile
from labctl.provision.stacks import ObjectStoreCredentials, StackSettings, render_stacks
from labctl.provision.tenancy import learner_labels, render_guardrails, render_namespace


def derive_secret(key: bytes, namespace: str, purpose: str, length: int = 32) -> str:
    """A per-learner secret derived from the controller's key: stable across reconciles and
    restarts (so a re-apply writes nothing), different for every learner and purpose."""
    digest = hmac.new(key, f"{namespace}/{purpose}".encode(), hashlib.sha256).hexdigest()
    return digest[:length]


def render_learner_objects(
    learner: dict[str, Any],
    *,
    key: bytes,
    stack_settings: StackSettings | None = None,
    api_server: ApiServer | None = None,
) -> list[dict[str, Any]]:
    """The namespace first, then its contents. ``stack_settings=None`` means default stacks;
    ``api_server=None``: its address is not known, so no pod may reach it (the controller knows)."""
    name = learner["metadata"]["name"]
    spec = LearnerSpec.model_validate(learner["spec"])
    owner = owner_reference(learner) if learner["metadata"].get("uid") else None
    objects = [render_namespace(name, cohort=spec.cohort, email=spec.email, owner=owner)]
    objects += render_guardrails(name, cohort=spec.cohort, quota=profile(spec.quota_profile))
    labels = learner_labels(spec.cohort, name)
    objects += render_egress(name, labels, mode=spec.egress, api_server=api_server or ApiServer())
    objects += _stacks(name, spec.cohort, key, stack_settings)
    return objects


def _stacks(namespace: str, cohort: str, key: bytes, settings: StackSettings | None) -> list[dict[str, Any]]:
    credentials = ObjectStoreCredentials(
        access_key=f"lab{derive_secret(key, namespace, 'access-key', 17)}",
        secret_key=derive_secret(key, namespace, "secret-key", 40),
    )
    return render_stacks(
        namespace, learner_labels(cohort, namespace), credentials, settings or StackSettings()
    )


def objects_hash(objects: list[dict[str, Any]]) -> str:
    """A digest of the desired state: equal digests mean nothing to apply."""
    return hashlib.sha256(json.dumps(objects, sort_keys=True).encode()).hexdigest()[:16]
