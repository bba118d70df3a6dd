"""reconcile_cohort with no cluster: it writes only the Learners that differ, and deletes leavers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from labctl.controller.reconcile import reconcile_cohort
from labctl.kube import ApplyResult, Listing
from labctl.provision.cohort_learners import render_learners

T = TypeVar("T")


def cohort(*emails: str) -> dict[str, Any]:
    return {
        "apiVersion": "labctl.dev/v1alpha1",
        "kind": "Cohort",
        "metadata": {"name": "c1", "uid": "u-1"},
        "spec": {"level": "professional", "learners": [{"email": e} for e in emails]},
    }


class FakeKube:
    def __init__(self, live: list[dict[str, Any]]) -> None:
        self.live = live
        self.applied: list[str] = []
        self.deleted: list[str] = []

    def list(
        self,
        api_version: str,
        kind: str,
        *,
        label_selector: str | None = None,
        pick: Callable[[dict[str, Any]], T],
    ) -> Listing[T]:
        assert (kind, label_selector) == ("Learner", "labctl.dev/cohort=c1")
        items = Listing(pick(obj) for obj in self.live)
        items.resource_version = "1"
        return items

    def apply(self, objects: Sequence[dict[str, Any]], *, quiet: bool = False) -> list[ApplyResult]:
        assert quiet  # a reconcile tracks its own changes: the server's answers are not decoded
        self.applied += [o["metadata"]["name"] for o in objects]
        return [ApplyResult(o, "applied") for o in objects]

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        self.deleted.append(name)
        return True


def with_server_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """A Learner as the API server returns it: status, managedFields and all."""
    meta = {**obj["metadata"], "uid": "x", "resourceVersion": "9", "managedFields": [{"manager": "labctl"}]}
    return {**obj, "metadata": meta, "status": {"phase": "Ready"}}


def test_an_unchanged_roster_writes_nothing() -> None:
    body = cohort("ada@uni.edu", "bob@uni.edu")
    kube = FakeKube([with_server_fields(o) for o in render_learners(body)])
    result = reconcile_cohort(kube, body)  # type: ignore[arg-type]
    assert (result.applied, result.deleted, result.unchanged) == (0, 0, 2)
    assert kube.applied == kube.deleted == []


def test_a_changed_roster_applies_newcomers_and_changes_and_deletes_leavers() -> None:
    before = render_learners(cohort("ada@uni.edu", "bob@uni.edu", "cy@uni.edu"))
    before[0]["spec"]["labs"] = ["foundation/experiment-tracking"]  # ada's spec differs from the roster's
    kube = FakeKube([with_server_fields(o) for o in before])
    body = cohort("ada@uni.edu", "bob@uni.edu", "dee@uni.edu")
    result = reconcile_cohort(kube, body)  # type: ignore[arg-type]
    names = {o["spec"]["email"]: o["metadata"]["name"] for o in render_learners(body) + before}
    assert sorted(kube.applied) == sorted([names["ada@uni.edu"], names["dee@uni.edu"]])
    assert kube.deleted == [names["cy@uni.edu"]]
    assert (result.applied, result.deleted, result.unchanged) == (2, 1, 1)
