"""Cohort operations the CLI performs: build, validate, apply, wait, report, delete.

The CLI writes desired state (the Cohort) and waits on status; the controller does the
provisioning. Everything here validates first and writes only when something differs.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from labctl.api.v1alpha1 import API_VERSION, COHORT_NAME_MAX, CohortSpec, RosterEntry
from labctl.core.errors import LabctlError, UsageError
from labctl.core.labels import MANAGED_BY, dns_label_problem
from labctl.core.typed_yaml import problems
from labctl.kube import Kube
from labctl.provision import quota
from labctl.provision.naming import learner_name, learner_namespace, normalise_email
from labctl.provision.roster import validate_rows
from labctl.provision.tenancy import COHORT_LABEL
from labctl.sessions import client as sessions_client


def check_name(name: str) -> None:
    if problem := dns_label_problem(name, max_len=COHORT_NAME_MAX):
        raise UsageError(f"cohort name {name!r}: {problem}")


def build_cohort(
    name: str,
    *,
    level: Any,
    learners: list[RosterEntry],
    labs: list[str],
    quota_profile: str,
    egress: str = "none",
    expires: dt.datetime | None,
    source: str,
) -> dict[str, Any]:
    """A validated Cohort object; every problem is reported before anything is written."""
    check_name(name)
    quota.profile(quota_profile)
    try:
        spec = CohortSpec.model_validate(
            {
                "level": level,
                "labs": labs,
                "quotaProfile": quota_profile,
                "egress": egress,
                "expires": expires,
                "learners": [e.model_dump(exclude_none=True) for e in learners],
            }
        )
    except ValidationError as exc:
        raise problems(source, exc) from None
    return {
        "apiVersion": API_VERSION,
        "kind": "Cohort",
        "metadata": {"name": name, "labels": dict(MANAGED_BY)},
        "spec": spec.model_dump(by_alias=True, exclude_none=True, mode="json"),
    }


SPEC_FIELDS = ("level", "labs", "quotaProfile", "egress", "expires", "suspended", "learners")


def load_cohort_manifest(path: Path, data: Any) -> dict[str, Any]:
    """Validate a Cohort manifest read from ``path`` (kubectl-style YAML)."""
    if not isinstance(data, dict) or data.get("kind") != "Cohort" or data.get("apiVersion") != API_VERSION:
        raise UsageError(f"{path}: expected kind: Cohort, apiVersion: {API_VERSION}")
    name = (data.get("metadata") or {}).get("name")
    if not name:
        raise UsageError(f"{path}: metadata.name: required")
    spec = data.get("spec") or {}
    if unknown := sorted(set(spec) - set(SPEC_FIELDS)):
        raise UsageError(f"{path}: spec: unknown field(s) {', '.join(unknown)}")
    rows = [(f"{path.name} spec.learners[{i}]", row) for i, row in enumerate(spec.get("learners") or [])]
    return build_cohort(
        name,
        level=spec.get("level"),
        learners=validate_rows(rows, source=path.name, cohort=name),
        labs=spec.get("labs") or [],
        quota_profile=spec.get("quotaProfile", "small"),
        egress=spec.get("egress", "none"),
        expires=spec.get("expires"),
        source=str(path),
    )


def apply_cohort(kube: Kube, cohort: dict[str, Any]) -> str:
    """Create or update the Cohort; "unchanged" (and no write at all) when it already matches."""
    name = cohort["metadata"]["name"]
    live = kube.get(API_VERSION, "Cohort", name)
    if live is not None and live.get("spec") == cohort["spec"]:
        return "unchanged"
    kube.apply(cohort, quiet=True)
    return "created" if live is None else "configured"


def get_cohort(kube: Kube, name: str) -> dict[str, Any]:
    cohort = kube.get(API_VERSION, "Cohort", name)
    if cohort is None:
        raise LabctlError(f'cohort "{name}" not found')
    return cohort


def exists(kube: Kube, name: str) -> bool:
    return kube.get(API_VERSION, "Cohort", name) is not None


def learners(kube: Kube, name: str) -> list[dict[str, Any]]:
    return sorted(
        kube.list(API_VERSION, "Learner", label_selector=f"{COHORT_LABEL}={name}"),
        key=lambda o: o["spec"]["email"],
    )


def status_rows(kube: Kube, name: str) -> list[dict[str, Any]]:
    """One row per learner: who, where, whether it is ready, its stacks and labs."""
    get_cohort(kube, name)
    rows = []
    for obj in learners(kube, name):
        status = obj.get("status") or {}
        stacks = status.get("stacks") or {}
        rows.append(
            {
                "learner": obj["spec"]["email"],
                "name": obj["spec"].get("displayName") or "",
                "namespace": status.get("namespace") or "",
                "ready": status.get("phase") == "Ready",
                "phase": status.get("phase") or "Pending",
                "stacks": f"{sum(stacks.values())}/{len(stacks)}" if stacks else "-",
                "labs": ",".join(obj["spec"].get("labs") or []) or "-",
            }
        )
    return rows


IN_PROGRESS_PHASES = ("ready", "settingup", "checking", "pending")


def session_state(phase: str | None) -> str:
    """A session's phase as the grid says it: in progress, passed, failed, expired, stopped, refused.

    `labctl cohort status` and the dashboard both say it this way."""
    state = {"Passed": "passed", "Failed": "failed"}.get(phase or "", (phase or "pending").lower())
    return "in progress" if state in IN_PROGRESS_PHASES else state


def progress_grid(kube: Kube, name: str) -> tuple[list[str], list[dict[str, Any]]]:
    """The cohort's labs and one row per learner: each lab's state from their session
    (not started, in progress, passed, failed, expired...) and score."""
    cohort = get_cohort(kube, name)
    people = learners(kube, name)
    namespaces = {learner_namespace(o) for o in people}
    sessions: dict[tuple[str, str], dict[str, Any]] = {}
    for item in kube.list(API_VERSION, sessions_client.KIND):
        if item["metadata"]["namespace"] in namespaces:
            sessions[(item["metadata"]["namespace"], item["spec"]["lab"])] = item
    labs = list(dict.fromkeys([*cohort["spec"].get("labs", []), *sorted(lab for _, lab in sessions)]))
    rows = []
    for obj in people:
        ns = learner_namespace(obj)
        row: dict[str, Any] = {"learner": obj["spec"]["email"]}
        for lab in labs:
            session = sessions.get((ns, lab))
            if session is None:
                row[lab] = "not started"
                continue
            st = sessions_client.status_of(session)
            state = session_state(st.phase)
            row[lab] = f"{state} {st.score:g}/{st.max_score:g}" if st.attempts else state
        rows.append(row)
    return labs, rows


def wait_ready(
    kube: Kube,
    name: str,
    *,
    timeout: float,
    progress: Callable[[int, int], None] = lambda _ready, _total: None,
) -> dict[str, Any]:
    """Poll the cohort's status until every learner is Ready."""
    deadline = time.monotonic() + timeout
    while True:
        cohort = get_cohort(kube, name)
        status = cohort.get("status") or {}
        total = len(cohort["spec"]["learners"])
        ready = int(status.get("ready") or 0)
        progress(ready, total)
        if ready == total and status.get("observedGeneration") == cohort["metadata"]["generation"]:
            return cohort
        if time.monotonic() > deadline:
            waiting = [r["learner"] for r in status_rows(kube, name) if not r["ready"]]
            raise LabctlError(
                f"timed out after {timeout:.0f}s: {ready}/{total} learners ready; "
                f"waiting for {', '.join(waiting[:10])}{' ...' if len(waiting) > 10 else ''}"
            )
        time.sleep(0.5)


def edit_roster(kube: Kube, name: str, *, add: RosterEntry | None = None, remove: str | None = None) -> str:
    """Add or remove one learner; "unchanged" when the roster already says so."""
    cohort = get_cohort(kube, name)
    entries = [RosterEntry.model_validate(e) for e in cohort["spec"]["learners"]]
    emails = [normalise_email(e.email) for e in entries]
    if add is not None:
        key = normalise_email(add.email)
        if key in emails:
            return "unchanged"
        entries.append(add.model_copy(update={"email": key}))
        rows = [(f"learner {e.email}", e.model_dump(exclude_none=True)) for e in entries]
        validate_rows(rows, source=f"cohort {name}", cohort=name)
    if remove is not None:
        key = normalise_email(remove)
        if key not in emails:
            raise LabctlError(f"{remove} is not in cohort {name}")
        entries = [e for e in entries if normalise_email(e.email) != key]
        if not entries:
            raise UsageError(f"cannot remove the last learner of cohort {name}; delete the cohort instead")
    body = {
        "apiVersion": API_VERSION,
        "kind": "Cohort",
        "metadata": {"name": name},
        "spec": {**cohort["spec"], "learners": [e.model_dump(exclude_none=True) for e in entries]},
    }
    kube.apply(body, quiet=True)
    return "configured"


def delete_cohort(kube: Kube, name: str, *, wait: bool, timeout: float = 300) -> bool:
    """Delete the cohort; its Learners and their namespaces follow (owner references, finalizers)."""
    names = [o["metadata"]["name"] for o in learners(kube, name)]
    if not kube.delete(API_VERSION, "Cohort", name):
        return False
    if wait:

        def gone() -> bool:
            return not learners(kube, name) and all(kube.get("v1", "Namespace", n) is None for n in names)

        kube.wait_for(gone, timeout=timeout, what=f"the learners and namespaces of cohort {name} to go")
    return True


def find_learner(kube: Kube, cohort: str, who: str) -> dict[str, Any]:
    """A learner by e-mail (any case) or by Learner/namespace name."""
    candidates = {learner_name(cohort, who)} if "@" in who else {who}
    for name in candidates:
        obj = kube.get(API_VERSION, "Learner", name)
        if obj is not None and obj["spec"]["cohort"] == cohort:
            return obj
    raise LabctlError(f"learner {who!r} not found in cohort {cohort!r}")
