"""The controller's side of a LabSession: gate the start, apply setup, run checks, write status.

``reconcile_session`` is idempotent and is all the kopf handlers call. Learners ask for things by
writing the spec (``checkRequest``, ``resetRequest``, ``stopped``); the controller answers in the
status, which only it can write. Checks run here, in the controller, with the grader's rights and
the lab's hidden data — never on the learner's side — and every check run is recorded as a
GradeAttempt the learner cannot read or change.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from graders.core import as_is
from labctl.api.labs import LabSessionSpec, LabSessionStatus, LabSpec, SessionPhase, lab_object_name
from labctl.api.v1alpha1 import API_VERSION
from labctl.catalog.publish import LAB_LABEL, hidden_files
from labctl.core.labels import GROUP
from labctl.grading import records
from labctl.grading.run import grade
from labctl.kube import Kube
from labctl.sessions import gates
from labctl.sessions.plan import hidden_dir, place_of, plan_of
from labctl.sessions.results import initial_tasks, task_results

SETUP_MANAGER = "labctl-lab-setup"
SETUP_LABEL = f"{GROUP}/lab-setup"
GRADED_BY = "labctl-controller (lab check)"
TERMINAL = ("Refused", "Expired", "Stopped")
NOT_STARTED = (None, "Pending")  # no start decided yet: gates apply


class NotYet(Exception):
    """The session cannot move on yet (e.g. the learner's stacks are starting): try again soon."""


@dataclass
class Session:
    """One LabSession as read."""

    name: str
    namespace: str
    spec: LabSessionSpec
    status: LabSessionStatus

    @classmethod
    def of(cls, body: dict[str, Any]) -> Session:
        meta = body["metadata"]
        return cls(
            name=meta["name"],
            namespace=meta["namespace"],
            spec=LabSessionSpec.model_validate(body["spec"]),
            status=LabSessionStatus.model_validate(body.get("status") or {}),
        )


def write_status(kube: Kube, session: Session, status: LabSessionStatus) -> None:
    body = {"status": status.model_dump(by_alias=True, mode="json", exclude_none=True)}
    kube.patch(
        API_VERSION, "LabSession", session.name, body, namespace=session.namespace, subresource="status"
    )


def _passed_labs(kube: Kube, learner: str) -> set[str]:
    attempts = kube.list(API_VERSION, records.KIND, label_selector=f"{records.LEARNER}={learner}")
    return {a["spec"]["lab"] for a in attempts if a["spec"].get("status") == "passed"}


def _setup(kube: Kube, lab: LabSpec, namespace: str) -> None:
    """Apply the lab's setup objects into the learner's namespace (server-side apply: idempotent).
    They are the learner's to change, so they carry no managed-by label."""
    for obj in lab.setup:
        meta = dict(obj.get("metadata") or {})
        labels = {**(meta.get("labels") or {}), SETUP_LABEL: "true", LAB_LABEL: lab.id.replace("/", ".")}
        kube.apply(
            {**obj, "metadata": {**meta, "namespace": namespace, "labels": labels}},
            field_manager=SETUP_MANAGER,
        )


def _stacks_ready(learner: dict[str, Any], lab: LabSpec) -> list[str]:
    """The lab's stacks that are not ready yet in the learner's namespace."""
    ready = (learner.get("status") or {}).get("stacks") or {}
    return [s for s in lab.definition.stacks if not ready.get(s)]


def _settle(kube: Kube, session: Session, status: LabSessionStatus, phase: SessionPhase, why: str) -> None:
    status.phase, status.message = phase, why
    write_status(kube, session, status)


def _expired(kube: Kube, session: Session, status: LabSessionStatus, now: dt.datetime) -> bool:
    """Mark the session Expired if its time is up; whether it is."""
    ends = status.expires_at
    if ends is None or now < ends:
        return False
    _settle(kube, session, status, "Expired", f"the session ended at {ends.isoformat()}")
    return True


def reconcile_session(
    kube: Kube, body: dict[str, Any], *, reach: Callable[[str], str] = as_is, now: dt.datetime | None = None
) -> LabSessionStatus:
    """Move one session on as far as it can go now; write and return its status."""
    session = Session.of(body)
    status = session.status.model_copy(deep=True)
    now = now or gates.now()
    if status.phase in TERMINAL and not (status.phase == "Stopped" and not session.spec.stopped):
        return _answer_checks(kube, session, status, f"this session is {status.phase.lower()}")
    lab_obj = kube.get(API_VERSION, "Lab", lab_object_name(session.spec.lab, session.spec.version))
    learner = kube.get(API_VERSION, "Learner", session.namespace)  # a learner's namespace bears its name
    if learner is None:
        why = f"namespace {session.namespace} belongs to no learner: start labs in your own namespace"
        _settle(kube, session, status, "Refused", why)
        return status
    if lab_obj is None:
        why = f"{session.spec.lab} version {session.spec.version} is not published (labctl lab list)"
        _settle(kube, session, status, "Refused", why)
        return status
    lab = LabSpec.model_validate(lab_obj["spec"])
    if status.phase in NOT_STARTED:
        refusal = gates.start_refusal(
            lab.definition,
            cohort_level=learner["spec"]["level"],
            passed=_passed_labs(kube, learner["metadata"]["name"]),
            override=session.spec.override,
        )
        if refusal:
            _settle(kube, session, status, "Refused", refusal)
            return status
    if session.spec.stopped:
        _settle(kube, session, status, "Stopped", "stopped: labctl lab start to begin again")
        return status
    if _expired(kube, session, status, now):
        return status
    if (
        status.phase in (*NOT_STARTED, "SettingUp", "Stopped")
        or session.spec.reset_request > status.resets_served
    ):
        _start(kube, session, status, lab, learner, now)
    if session.spec.check_request > status.checks_served:
        _check(kube, session, status, lab, learner, now, reach)
    return status


def _start(
    kube: Kube,
    session: Session,
    status: LabSessionStatus,
    lab: LabSpec,
    learner: dict[str, Any],
    now: dt.datetime,
) -> None:
    """Setup applied and the lab's stacks ready: the session is Ready (first start, reset or restart)."""
    first = status.started_at is None
    if first:
        status.started_at = now
        status.expires_at = gates.expires_at(now, lab.definition)
        status.seed = gates.seed(learner["metadata"]["name"], lab.id)
        status.title = lab.definition.title
        status.tasks = initial_tasks(lab.definition)
        status.max_score = sum(c.points for c in lab.definition.checks)
    status.phase, status.message = "SettingUp", f"applying {len(lab.setup)} setup objects"
    write_status(kube, session, status)
    _setup(kube, lab, session.namespace)
    status.resets_served = session.spec.reset_request
    if waiting := _stacks_ready(learner, lab):
        status.message = f"waiting for your stacks: {', '.join(waiting)}"
        write_status(kube, session, status)
        raise NotYet(status.message)
    status.phase = "Ready" if status.attempts == 0 else ("Passed" if status.passed else "Failed")
    status.message = "ready: follow the README (labctl lab show), then labctl lab check"
    write_status(kube, session, status)


def _answer_checks(kube: Kube, session: Session, status: LabSessionStatus, why: str) -> LabSessionStatus:
    """Refuse any pending check request with ``why`` (so a waiting `lab check` hears the answer)."""
    if session.spec.check_request > status.checks_served:
        status.checks_served = session.spec.check_request
        status.message = f"{gates.CHECK_REFUSED}{why}"
        write_status(kube, session, status)
    return status


def _check(
    kube: Kube,
    session: Session,
    status: LabSessionStatus,
    lab: LabSpec,
    learner: dict[str, Any],
    now: dt.datetime,
    reach: Callable[[str], str],
) -> None:
    wait = gates.cooldown_left(status.last_check_at, now, lab.definition.cooldown_seconds)
    if wait > 0:
        _answer_checks(
            kube,
            session,
            status,
            f"checks are at least {lab.definition.cooldown_seconds}s apart: try again in {wait:.0f}s",
        )
        return
    status.phase, status.message = "Checking", f"running {len(lab.definition.checks)} checks"
    write_status(kube, session, status)
    plan = plan_of(lab)
    with hidden_dir(hidden_files(kube, lab)) as hidden:
        graded = grade(
            kube,
            plan,
            [learner],
            graded_by=GRADED_BY,
            concurrency=1,
            reach=reach,
            places=lambda lr: place_of(lr, lab.id, hidden=hidden, session_start=status.started_at),
        )
    result = graded[0]
    status.tasks = task_results(lab.definition, result.results, status.tasks)
    status.attempts += 1
    status.checks_served = session.spec.check_request
    status.last_check_at = gates.now()
    status.score, status.max_score = result.score.score, result.score.max_score
    status.passed = result.score.status.value == "passed"
    status.phase = "Passed" if status.passed else "Failed"
    status.message = (
        f"attempt {result.attempt}: {result.score.status.value}, {status.score:g}/{status.max_score:g}"
    )
    write_status(kube, session, status)


def expire_if_due(kube: Kube, body: dict[str, Any], *, now: dt.datetime | None = None) -> bool:
    """Mark the session Expired once its time is up (a check running now still records)."""
    session = Session.of(body)
    if session.status.phase in (*TERMINAL, "Checking"):
        return False
    return _expired(kube, session, session.status, now or gates.now())
