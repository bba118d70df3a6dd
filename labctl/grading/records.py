"""Grade attempts as ``GradeAttempt`` objects: cluster-scoped, append-only, with history.

Learners hold only namespaced rights, so they can neither read other learners' grades nor
write their own; the ``labctl-grades-append-only`` admission policy stops anyone changing a
recorded attempt. Each grading creates attempt n+1 (POST, never apply): two graders racing
for the same number get a 409 and the loser takes the next one.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from graders.core import CheckResult, Status
from labctl.api.v1alpha1 import API_VERSION, GradeAttemptSpec
from labctl.core.labels import GROUP, MANAGED_BY
from labctl.grading.reports import LearnerGrade
from labctl.grading.scoring import Score
from labctl.kube import Kube, KubeError
from labctl.provision.cohort_learners import owner_reference

KIND = "GradeAttempt"
COHORT = f"{GROUP}/cohort"
LEARNER = f"{GROUP}/learner"
LAB = f"{GROUP}/lab"
MAX_FEEDBACK = 8000
MAX_EVIDENCE = 32000


def lab_label(lab: str) -> str:
    """Label values cannot hold '/': ``professional/serve-model`` -> ``professional.serve-model``."""
    return lab.replace("/", ".")


def attempt_name(learner: str, lab: str, attempt: int) -> str:
    return f"{learner}.{lab_label(lab)}.{attempt}"


def _evidence(result: CheckResult) -> str:
    text = json.dumps(result.evidence, sort_keys=True, default=str)
    if len(text) <= MAX_EVIDENCE:
        return text
    return json.dumps({"truncated": True, "head": text[: MAX_EVIDENCE - 100]})


def render_attempt(
    learner: dict[str, Any],
    lab: str,
    attempt: int,
    results: Sequence[CheckResult],
    score: Score,
    *,
    pass_mark: float,
    graded_by: str,
    graded_at: dt.datetime,
    required: Sequence[str] = (),
) -> dict[str, Any]:
    """The GradeAttempt object, owned by the Learner (it goes when the cohort goes)."""
    meta, spec = learner["metadata"], learner["spec"]
    body = GradeAttemptSpec.model_validate(
        {
            "cohort": spec["cohort"],
            "learner": meta["name"],
            "email": spec["email"],
            "lab": lab,
            "attempt": attempt,
            "gradedAt": graded_at,
            "gradedBy": graded_by[:300],
            "status": score.status.value,
            "score": score.score,
            "maxScore": score.max_score,
            "passMark": pass_mark,
            "required": sorted(required),
            "results": [
                {
                    "check": r.check,
                    "status": r.status.value,
                    "points": r.points,
                    "maxPoints": r.max_points,
                    "feedback": r.feedback[:MAX_FEEDBACK],
                    "evidence": _evidence(r),
                    "durationS": round(r.duration_s, 4),
                    "attempts": r.attempts,
                }
                for r in results
            ],
        }
    )
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": attempt_name(meta["name"], lab, attempt),
            "labels": {
                **MANAGED_BY,
                COHORT: spec["cohort"],
                LEARNER: meta["name"],
                LAB: lab_label(lab),
            },
            **({"ownerReferences": [owner_reference(learner)]} if meta.get("uid") else {}),
        },
        "spec": body.model_dump(by_alias=True, mode="json"),
    }


def history(
    kube: Kube, *, cohort: str | None = None, lab: str | None = None, learner: str | None = None
) -> list[dict[str, Any]]:
    """Recorded attempts, oldest first per learner."""
    selector = [f"{COHORT}={cohort}"] if cohort else []
    selector += [f"{LAB}={lab_label(lab)}"] if lab else []
    selector += [f"{LEARNER}={learner}"] if learner else []
    items = kube.list(API_VERSION, KIND, label_selector=",".join(selector) or None)
    return sorted(items, key=lambda a: (a["spec"]["learner"], a["spec"]["lab"], a["spec"]["attempt"]))


def latest(attempts: Sequence[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(learner, lab) -> that learner's latest attempt at that lab."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for attempt in attempts:
        key = (attempt["spec"]["learner"], attempt["spec"]["lab"])
        if key not in found or attempt["spec"]["attempt"] > found[key]["spec"]["attempt"]:
            found[key] = attempt
    return found


def record(
    kube: Kube,
    learner: dict[str, Any],
    lab: str,
    results: Sequence[CheckResult],
    score: Score,
    *,
    pass_mark: float,
    graded_by: str,
    required: Sequence[str] = (),
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Create the learner's next attempt at ``lab``; never overwrites an existing one."""
    graded_at = now or dt.datetime.now(dt.UTC).replace(microsecond=0)
    previous = history(kube, lab=lab, learner=learner["metadata"]["name"])
    attempt = max((a["spec"]["attempt"] for a in previous), default=0) + 1
    for _ in range(20):
        obj = render_attempt(
            learner,
            lab,
            attempt,
            results,
            score,
            pass_mark=pass_mark,
            graded_by=graded_by,
            graded_at=graded_at,
        )
        try:
            return kube.create(obj)
        except KubeError as exc:
            if exc.status != 409:
                raise
            attempt += 1  # someone recorded this number first: take the next
    raise KubeError(f"could not record an attempt for {learner['metadata']['name']} at {lab}: too many races")


def results_of(attempt: dict[str, Any]) -> list[CheckResult]:
    """The CheckResults a recorded attempt holds."""
    return [
        CheckResult(
            check=r["check"],
            status=Status(r["status"]),
            points=float(r["points"]),
            max_points=float(r["maxPoints"]),
            feedback=r.get("feedback", ""),
            evidence=json.loads(r.get("evidence") or "{}"),
            duration_s=float(r.get("durationS", 0)),
            attempts=int(r.get("attempts", 1)),
        )
        for r in attempt["spec"].get("results", [])
    ]


def learner_grades(
    learners: Sequence[dict[str, Any]], attempts: Sequence[dict[str, Any]], labs: Sequence[str]
) -> list[LearnerGrade]:
    """Every learner x lab: their latest recorded attempt, or a ``missing`` grade."""
    newest = latest(attempts)
    grades = []
    for learner in learners:
        meta, spec = learner["metadata"], learner["spec"]
        for lab in labs:
            common = {
                "cohort": spec["cohort"],
                "lab": lab,
                "learner": spec["email"],
                "name": spec.get("displayName") or "",
                "learner_id": spec.get("id") or "",
                "namespace": meta["name"],
            }
            found = newest.get((meta["name"], lab))
            if found is None:
                grades.append(LearnerGrade(**common))
                continue
            grades.append(
                LearnerGrade(
                    **common,
                    attempt=int(found["spec"]["attempt"]),
                    graded_at=str(found["spec"]["gradedAt"]),
                    results=tuple(results_of(found)),
                    required=frozenset(found["spec"].get("required") or []),
                    pass_mark=float(found["spec"]["passMark"]),
                )
            )
    return grades
