"""Status computation for Learners and Cohorts: what is written, and that nothing is re-written."""

from __future__ import annotations

from labctl.controller.reconcile import LearnerApplied
from labctl.controller.statuses import applied_changes, cohort_changes, learner_changes

META = {"generation": 2}
APPLIED = {
    "appliedHash": "abc",
    "appliedStacks": ["mlflow", "prometheus"],
    "observedGeneration": 2,
    "stacks": {"mlflow": False, "prometheus": False},
}


def test_applied_records_what_was_rendered() -> None:
    body = {"metadata": {"name": "ada", "generation": 2}, "status": {"stacks": {"mlflow": True}}}
    changes = applied_changes(body, LearnerApplied("abc", ("mlflow", "prometheus"), 24))
    assert changes == {
        "appliedHash": "abc",
        "appliedStacks": ["mlflow", "prometheus"],
        "namespace": "ada",
        "observedGeneration": 2,
    }
    assert applied_changes({**body, "status": {**body["status"], **changes}}, None) == {}


def test_applied_stacks_not_seen_yet_are_not_ready() -> None:
    changes = learner_changes({**APPLIED, "stacks": {}}, META, {}, {})
    assert changes["stacks"] == {"mlflow": False, "prometheus": False}
    assert changes["phase"] == "Provisioning"


def test_learner_ready_only_when_applied_and_every_stack_ready() -> None:
    partly = learner_changes(APPLIED, META, {}, {"mlflow": True})
    assert partly["phase"] == "Provisioning"
    assert partly["stacks"] == {"mlflow": True, "prometheus": False}
    assert partly["conditions"][0]["message"] == "waiting for: prometheus"
    ready = learner_changes(APPLIED, META, {}, {"mlflow": True, "prometheus": True})
    assert ready["phase"] == "Ready" and ready["conditions"][0]["status"] == "True"


def test_learner_not_ready_until_this_generation_is_applied() -> None:
    all_ready = {"mlflow": True, "prometheus": True}
    stale = learner_changes({**APPLIED, "observedGeneration": 1}, META, {}, all_ready)
    assert stale["phase"] == "Provisioning"
    assert learner_changes({}, META, {}, {"mlflow": True})["phase"] == "Provisioning"


def test_learner_without_stacks_is_ready_once_applied() -> None:
    # Stack settings may render no stacks at all (stacks disabled): the namespace is the lab.
    no_stacks = {"appliedHash": "abc", "appliedStacks": [], "observedGeneration": 2}
    assert learner_changes(no_stacks, META, {}, {})["phase"] == "Ready"


def test_unchanged_learner_status_is_not_rewritten() -> None:
    ready = {**APPLIED, "stacks": {"mlflow": True, "prometheus": True}, "phase": "Ready"}
    assert learner_changes(ready, META, {}, {"mlflow": True, "prometheus": True}) == {}


def test_suspended_wins() -> None:
    assert learner_changes(APPLIED, META, {"suspended": True}, {})["phase"] == "Suspended"


def test_cohort_counts_and_condition() -> None:
    spec = {"learners": [{"email": "a@x"}, {"email": "b@x"}]}
    changes = cohort_changes({}, META, spec, [("a", "Ready"), ("b", "Provisioning")])
    assert changes["learners"] == 2 and changes["ready"] == 1
    assert changes["conditions"][0]["status"] == "False"
    done = cohort_changes({**changes}, META, spec, [("a", "Ready"), ("b", "Ready")])
    assert done["ready"] == 2 and done["conditions"][0]["status"] == "True"
    settled = {**changes, **done}
    assert cohort_changes(settled, META, spec, [("a", "Ready"), ("b", "Ready")]) == {}


def test_written_skips_only_what_this_process_wrote_last() -> None:
    from labctl.controller.refresh import Seen, Written

    seen = Seen.of({"kind": "Learner", "metadata": {"name": "ada", "uid": "u1"}, "status": {}})
    written = Written()
    first = learner_changes(APPLIED, META, {}, {"mlflow": True, "prometheus": True})
    assert not written.already(seen, first)
    written.record(seen, first)
    # The same result computed again a second later (a new condition timestamp) is not new.
    again = learner_changes(APPLIED, META, {}, {"mlflow": True, "prometheus": True})
    again["conditions"][0]["lastTransitionTime"] = "2099-01-01T00:00:00Z"
    assert written.already(seen, again)
    assert not written.already(seen, learner_changes(APPLIED, META, {}, {"mlflow": True}))
    recreated = Seen.of({"kind": "Learner", "metadata": {"name": "ada", "uid": "u2"}, "status": {}})
    assert not written.already(recreated, again)


def test_status_writes_coalesce_per_object() -> None:
    """While one write of an object is in flight, later values wait and only the latest is written."""
    import asyncio
    from typing import Any

    from labctl.controller.refresh import Seen, StatusWriter

    seen = Seen.of({"kind": "Cohort", "metadata": {"name": "c", "uid": "u"}, "status": {}})
    writes: list[int] = []

    class Recording(StatusWriter):
        async def _write(self, seen: Seen, changes: dict[str, Any], pool: Any) -> bool:
            writes.append(changes["ready"])
            await asyncio.sleep(0.01)  # a write in flight
            return True

    async def burst() -> list[list[dict[str, Any]]]:
        writer = Recording(kube=None)  # type: ignore[arg-type]  # _write is replaced: no API calls
        calls = [
            writer._coalesced(seen.key, lambda n=n: (seen, {"ready": n}), writer.pool) for n in range(1, 6)
        ]
        return await asyncio.gather(*calls)

    results = asyncio.run(burst())
    assert writes == [1, 5]  # the first, then only the latest of those that came meanwhile
    assert [len(r) for r in results] == [2, 0, 0, 0, 0]  # the caller in flight reports both
