"""Each learner's stacks, rendered as plain Kubernetes objects: MLflow, an S3 object store,
Prometheus and Alertmanager, in the learner's own namespace.

Pure: the same namespace, labels, credentials and settings give byte-identical objects (the
controller compares digests to skip re-applies), and nothing here talks to a cluster or draws
a random number. The manifests are for real clusters: on the simulated one kwok plays the pods.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from labctl.provision.stacks import alertmanager, mlflow_server, object_store, prometheus
from labctl.provision.stacks.common import STACK_LABEL, Stack
from labctl.provision.stacks.object_store import ObjectStoreCredentials
from labctl.provision.stacks.readiness import deployment_ready, stack_readiness
from labctl.provision.stacks.settings import (
    STACK_COMPONENTS,
    Component,
    StackSettings,
    load_stack_settings,
)

__all__ = [
    "STACK_COMPONENTS",
    "STACK_LABEL",
    "Component",
    "ObjectStoreCredentials",
    "StackSettings",
    "deployment_ready",
    "enabled_components",
    "load_stack_settings",
    "render_stacks",
    "stack_readiness",
]


def enabled_components(settings: StackSettings) -> tuple[Component, ...]:
    """The components ``settings`` renders, in STACK_COMPONENTS order (for ``stack_readiness``)."""
    return tuple(c for c in STACK_COMPONENTS if settings.is_enabled(c))


def render_stacks(
    namespace: str,
    labels: Mapping[str, str],
    credentials: ObjectStoreCredentials,
    settings: StackSettings,
) -> list[dict[str, Any]]:
    """Every object of the learner's enabled stacks; each carries ``labels`` and its component's.

    The object store comes first: MLflow's pod reads the store's Secret.
    """
    stack = Stack(namespace, dict(labels), settings)
    objects: list[dict[str, Any]] = []
    if settings.is_enabled("object-store"):
        objects += object_store.render(stack, credentials)
    if settings.is_enabled("mlflow"):
        objects += mlflow_server.render(stack)
    if settings.is_enabled("prometheus"):
        objects += prometheus.render(stack)
    if settings.is_enabled("alertmanager"):
        objects += alertmanager.render(stack)
    return objects
