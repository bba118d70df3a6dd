"""apply_quotas with no cluster: which writes make the quota controller recount, and when.

The fake stands in for the API server and a quota controller that counts at once; what the
real kube-controller-manager does with these writes is tested in
tests/cluster/test_controller_crash.py.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from typing import Any

import pytest

from labctl.controller.quotas import QuotaApplied, apply_quotas, corrections, settle_counts
from labctl.core.errors import LabctlError
from labctl.kube import ApplyResult, Kube
from labctl.provision.quota import OBJECT_RESOURCES, PROFILES, RECOUNT_MARKER, with_recount_marker
from labctl.provision.tenancy import COMPUTE_QUOTA, OBJECT_QUOTA, render_guardrails

CREATES = {"Service", "PersistentVolumeClaim", "Deployment", "ConfigMap"}


def rendered_quotas() -> dict[str, dict[str, Any]]:
    objects = render_guardrails("ns1", cohort="c", quota=PROFILES["small"])
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == "ResourceQuota"}


class FakeQuotaServer:
    """ResourceQuotas of one namespace; with ``counts``, a write is counted by the next GET."""

    def __init__(self, live: Sequence[dict[str, Any]] = (), *, counts: bool = True, held: int = 0) -> None:
        self.live = {q["metadata"]["name"]: copy.deepcopy(q) for q in live}
        self.counts = counts
        self.held = held  # Services in the namespace
        self.written: list[tuple[str, set[str]]] = []  # (name, spec.hard keys) of each apply
        self.pending: set[str] = set()  # written, not yet counted

    def get(self, name: str) -> dict[str, Any] | None:
        quota = self.live.get(name)
        if quota is not None and name in self.pending and self.counts:
            self.pending.discard(name)
            used = {"services": str(self.held)} if "services" in quota["spec"]["hard"] else {"pods": "4"}
            quota["status"] = {"hard": dict(quota["spec"]["hard"]), "used": used}
        return copy.deepcopy(quota)

    def apply(self, objects: Sequence[dict[str, Any]], *, quiet: bool = False) -> list[ApplyResult]:
        assert quiet  # quotas are written without decoding the answers
        for obj in objects:
            name = obj["metadata"]["name"]
            self.written.append((name, set(obj["spec"]["hard"])))
            status = self.live.get(name, {}).get("status")
            self.live[name] = {**copy.deepcopy(obj), **({"status": status} if status else {})}
            self.pending.add(name)
        return [ApplyResult(o, "applied") for o in objects]

    def list(self, api_version: str, kind: str, *, namespace: str | None = None) -> list[dict[str, Any]]:
        assert namespace == "ns1"
        if kind == "ResourceQuota":
            return [q for q in map(self.get, list(self.live)) if q is not None]
        return [{"kind": kind}] * (self.held if kind == "Service" else 0)

    wait_for = Kube.wait_for


def counted(quota: dict[str, Any], used: dict[str, str]) -> dict[str, Any]:
    return {**copy.deepcopy(quota), "status": {"hard": dict(quota["spec"]["hard"]), "used": used}}


def apply(server: FakeQuotaServer, *, creates: set[str] = CREATES, within: float = 5) -> list[QuotaApplied]:
    quotas = list(rendered_quotas().values())
    return apply_quotas(server, quotas, creates=creates, deadline=time.monotonic() + within)  # type: ignore[arg-type]


def test_compute_and_objects_are_two_quotas_of_the_profile() -> None:
    quotas = rendered_quotas()
    compute, objects = quotas[COMPUTE_QUOTA]["spec"]["hard"], quotas[OBJECT_QUOTA]["spec"]["hard"]
    assert set(objects) == OBJECT_RESOURCES and not set(compute) & OBJECT_RESOURCES
    assert {**compute, **objects} == PROFILES["small"].hard()


def test_fresh_quotas_are_applied_once_and_waited_for() -> None:
    server = FakeQuotaServer()
    assert [a.recounted for a in apply(server)] == [False, False]
    assert [name for name, _ in server.written] == [COMPUTE_QUOTA, OBJECT_QUOTA]


def test_a_quota_counting_more_than_is_held_is_recounted_and_left_as_rendered() -> None:
    quotas = rendered_quotas()
    live = [counted(quotas[COMPUTE_QUOTA], {"pods": "4"}), counted(quotas[OBJECT_QUOTA], {"services": "10"})]
    server = FakeQuotaServer(live, held=4)
    applied = apply(server)
    assert applied[1] == QuotaApplied(
        OBJECT_QUOTA, counted_before=True, recounted=True, corrected={"services": ("10", "4")}
    )
    assert applied[0] == QuotaApplied(COMPUTE_QUOTA, counted_before=True, recounted=False, corrected={})
    hard = set(quotas[OBJECT_QUOTA]["spec"]["hard"])
    objects_writes = [keys for name, keys in server.written if name == OBJECT_QUOTA]
    assert objects_writes == [hard | {RECOUNT_MARKER}, hard]  # a change of spec.hard, then back
    assert set(server.live[OBJECT_QUOTA]["spec"]["hard"]) == hard


def test_a_quota_counting_what_is_held_is_applied_alone() -> None:
    quotas = rendered_quotas()
    server = FakeQuotaServer([counted(quotas[OBJECT_QUOTA], {"services": "4"})], held=4)
    assert not any(a.recounted for a in apply(server))
    assert all(RECOUNT_MARKER not in keys for _, keys in server.written)


def test_a_quota_never_counted_has_nothing_to_recount() -> None:
    """Until its usage is known, admission refuses every create the quota would charge."""
    server = FakeQuotaServer(list(rendered_quotas().values()))
    assert not any(a.recounted for a in apply(server))


def test_only_kinds_about_to_be_created_are_looked_at() -> None:
    """A quota counting more Services than held is no business of an apply that makes none."""
    quotas = rendered_quotas()
    server = FakeQuotaServer([counted(quotas[OBJECT_QUOTA], {"services": "10"})], held=4)
    assert not any(a.recounted for a in apply(server, creates={"ConfigMap"}))


def test_a_recount_that_never_comes_times_out_naming_the_quota() -> None:
    quotas = rendered_quotas()
    server = FakeQuotaServer([counted(quotas[OBJECT_QUOTA], {"services": "10"})], counts=False, held=4)
    with pytest.raises(LabctlError, match="quota ns1/labctl-objects to recount usage"):
        apply(server, within=0.3)


def test_the_marker_leaves_the_rendered_quota_alone() -> None:
    quota = rendered_quotas()[OBJECT_QUOTA]
    marked = with_recount_marker(quota)
    assert marked["spec"]["hard"] == {**quota["spec"]["hard"], RECOUNT_MARKER: "0"}
    assert RECOUNT_MARKER not in quota["spec"]["hard"]


def test_corrections_compare_quantities_by_value() -> None:
    before = {"services": "10", "requests.cpu": "500m", "requests.memory": "1Gi"}
    after = {"services": "4", "requests.cpu": "0.5", "requests.memory": "1Gi"}
    assert corrections(before, after) == {"services": ("10", "4")}


def test_after_the_apply_a_count_below_what_is_held_is_recounted() -> None:
    """A create of the killed controller's that landed after the first recount: left out of it."""
    quotas = rendered_quotas()
    server = FakeQuotaServer([counted(quotas[OBJECT_QUOTA], {"services": "3"})], held=4)
    settled = settle_counts(server, list(quotas.values()), creates=CREATES, deadline=time.monotonic() + 5)  # type: ignore[arg-type]
    assert settled == [
        QuotaApplied(OBJECT_QUOTA, counted_before=True, recounted=True, corrected={"services": ("3", "4")})
    ]
    assert settle_counts(server, list(quotas.values()), creates=CREATES, deadline=time.monotonic() + 5) == []  # type: ignore[arg-type]
