"""graders._kube_pods: what a pod's spec and managedFields say about its placement (no cluster)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from graders import _kube_pods as kp

AMPERE_IN = {"key": "nvidia.com/gpu.family", "operator": "In", "values": ["ampere"]}


def affinity(*terms: list[dict[str, Any]]) -> dict[str, Any]:
    required = {"nodeSelectorTerms": [{"matchExpressions": list(t)} for t in terms]}
    return {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}}}


@pytest.mark.parametrize(
    ("spec", "value", "required"),
    [
        ({"nodeSelector": {"nvidia.com/gpu.family": "ampere"}}, "ampere", True),
        ({"nodeSelector": {"nvidia.com/gpu.family": "turing"}}, "ampere", False),
        ({"nodeSelector": {"nvidia.com/gpu.family": "turing"}}, None, True),
        (affinity([AMPERE_IN]), "ampere", True),
        (affinity([{**AMPERE_IN, "values": ["ampere", "hopper"]}]), "ampere", False),  # hopper would do too
        (affinity([{**AMPERE_IN, "values": ["ampere", "hopper"]}]), None, True),
        (affinity([AMPERE_IN], [{"key": "zone", "operator": "Exists"}]), "ampere", False),  # terms are ORed
        (affinity([AMPERE_IN], [AMPERE_IN, {"key": "zone", "operator": "Exists"}]), "ampere", True),
        (affinity([{"key": "nvidia.com/gpu.family", "operator": "Exists"}]), None, True),
        (
            affinity([{"key": "nvidia.com/gpu.family", "operator": "NotIn", "values": ["turing"]}]),
            None,
            False,
        ),
        ({}, None, False),
    ],
)
def test_a_node_label_is_required_by_selector_or_every_affinity_term(
    spec: dict[str, Any], value: str | None, required: bool
) -> None:
    assert kp.requires_label(spec, "nvidia.com/gpu.family", value) is required


def test_node_labels_lacking_and_carried() -> None:
    labels = {"nvidia.com/gpu.present": "true", "nvidia.com/gpu.family": "ampere"}
    assert kp.lacking(labels, {"nvidia.com/gpu.present": "true", "nvidia.com/gpu.product": None}) == [
        "nvidia.com/gpu.product"
    ]
    assert kp.carrying(labels, {"nvidia.com/gpu.present": None, "nvidia.com/gpu.family": "hopper"}) == [
        "nvidia.com/gpu.present=true"
    ]


def managed(manager: str, fields: dict[str, Any], subresource: str | None = None) -> dict[str, Any]:
    entry = {"manager": manager, "operation": "Update", "fieldsV1": fields}
    return {**entry, "subresource": subresource} if subresource else entry


def test_who_wrote_spec_node_name() -> None:
    scheduled = {
        "metadata": {
            "managedFields": [
                managed("kube-controller-manager", {"f:spec": {"f:containers": {}, "f:tolerations": {}}}),
                managed("kwok-controller", {"f:status": {"f:phase": {}}}, subresource="status"),
            ]
        },
        "spec": {"nodeName": "gpu-0"},
    }
    assert kp.pinned_by(scheduled) is None
    assert kp.pinned_by(scheduled, {"spec": {"containers": []}}) is None

    pinned = {
        "metadata": {"managedFields": [managed("kubectl-client-side-apply", {"f:spec": {"f:nodeName": {}}})]}
    }
    assert kp.pinned_by(pinned) == (
        "spec.nodeName was written by kubectl-client-side-apply, not bound by the scheduler"
    )
    assert kp.pinned_by(scheduled, {"spec": {"nodeName": "gpu-1"}}) == (
        "its Job's pod template sets spec.nodeName: gpu-1"
    )


def test_an_object_made_in_the_same_second_as_the_session_counts_as_newer() -> None:
    start = dt.datetime(2026, 12, 5, 9, 0, 0, 700000, tzinfo=dt.UTC)
    same_second = {"metadata": {"creationTimestamp": "2026-12-05T09:00:00Z"}}
    before = {"metadata": {"creationTimestamp": "2026-12-05T08:59:59Z"}}
    assert not kp.older_than(same_second, start)
    assert kp.older_than(before, start)
    assert not kp.older_than({"metadata": {}}, start)  # no timestamp: nothing to judge by
    assert kp.stamp(start) == "2026-12-05 09:00:00 UTC"
