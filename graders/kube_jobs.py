"""Checks of a learner's Jobs: did one have to queue (held by the scheduler or by a quota), did it finish.

Queueing is read from events, which learners cannot write: the scheduler's ``FailedScheduling``
on a Job's pods, or the Job controller's ``FailedCreate`` when a ResourceQuota refused a pod
("exceeded quota"; the pod then never exists, so nothing was overcommitted).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import AwareDatetime

from graders import _kube_pods as kp
from graders.core import Context, Outcome, Params, check
from graders.kube_checks import Obj, job_pods, kube_get, kube_list


class JobParams(Params):
    job: str
    created_after: AwareDatetime | None = None  # the Job must be this new (the session's start)


class QueueParams(JobParams):
    held_by: Literal["scheduler", "quota", "either"] = "scheduler"  # who made it wait
    resource: str | None = None  # what it waited for, as the event names it (nvidia.com/gpu)


def _job_or_why(ctx: Context, params: JobParams) -> tuple[Obj | None, str]:
    job = kube_get(ctx, "batch/v1", "Job", params.job)
    if job is None:
        return None, f"no Job {params.job} in namespace {ctx.namespace}"
    if params.created_after and kp.older_than(job, params.created_after):
        return None, kp.stale(f"Job {params.job}", job, params.created_after)
    return job, ""


def _scheduling_failures(ctx: Context, job: Obj, pods: list[Obj]) -> list[Obj]:
    """FailedScheduling events of the Job's pods, current or gone (by uid, else by generated name)."""
    uids = {p["metadata"]["uid"] for p in pods}
    named = re.compile(rf"^{re.escape(job['metadata']['name'])}-(\d+-)?[a-z0-9]{{5}}$")
    events = kube_list(ctx, "v1", "Event", field_selector="involvedObject.kind=Pod,reason=FailedScheduling")
    return [
        e
        for e in events
        if (e.get("involvedObject") or {}).get("uid") in uids
        or named.match((e.get("involvedObject") or {}).get("name", ""))
    ]


def _quota_refusals(ctx: Context, job: Obj) -> list[Obj]:
    """The Job controller's FailedCreate events for this Job (this one, by uid) refused by a quota."""
    meta = job["metadata"]
    selector = f"involvedObject.kind=Job,involvedObject.name={meta['name']},reason=FailedCreate"
    return [
        e
        for e in kube_list(ctx, "v1", "Event", field_selector=selector)
        if (e.get("involvedObject") or {}).get("uid") in (None, meta.get("uid"))
        and "exceeded quota" in (e.get("message") or "")
    ]


def _names(event: Obj, resource: str | None) -> bool:
    if resource is None:
        return True
    bare = re.sub(r"^(requests|limits)\.", "", resource)
    message = event.get("message") or ""
    return resource in message or bare in message


def _queue_events(ctx: Context, params: QueueParams, job: Obj, pods: list[Obj]) -> list[Obj]:
    events = []
    if params.held_by in ("scheduler", "either"):
        events += _scheduling_failures(ctx, job, pods)
    if params.held_by in ("quota", "either"):
        events += _quota_refusals(ctx, job)
    return events


def _not_queued(params: QueueParams, events: list[Obj]) -> str:
    if events:  # it waited, but not for what was asked
        return (
            f"Job {params.job} waited, but never for {params.resource}: "
            f"{(events[0].get('message') or '').strip()}"
        )
    if params.held_by == "scheduler":
        return (
            f"Job {params.job} did not queue: none of its pods was ever unschedulable (no FailedScheduling "
            "event), so it got its resources at once. Did it request what the cluster was short of?"
        )
    holders = (
        "neither the scheduler nor a ResourceQuota" if params.held_by == "either" else "no ResourceQuota"
    )
    return (
        f"Job {params.job} did not queue: {holders} ever held it back (no 'exceeded quota' FailedCreate "
        "event" + (", no FailedScheduling event" if params.held_by == "either" else "") + "), so it got "
        "its resources at once. Did it request what your namespace had no room left for?"
    )


@check("kube.job_queued", QueueParams)
def job_queued(ctx: Context, params: QueueParams) -> Outcome:
    """A Job had to queue: its pod was Pending with a FailedScheduling event (``held_by: scheduler``),
    or a ResourceQuota refused its pods until room was free (``held_by: quota``)."""
    job, why = _job_or_why(ctx, params)
    if job is None:
        return Outcome(False, why)
    pods = job_pods(ctx, job)
    every = _queue_events(ctx, params, job, pods)
    events = [e for e in every if _names(e, params.resource)]
    evidence = {
        "pods": {p["metadata"]["name"]: (p.get("status") or {}).get("phase") for p in pods},
        "events": [
            {
                "object": f"{e['involvedObject'].get('kind')} {e['involvedObject'].get('name')}",
                "reason": e.get("reason"),
                "message": e.get("message"),
                "count": e.get("count"),
            }
            for e in (events or every)[:5]
        ],
    }
    if not events:
        return Outcome(False, _not_queued(params, every), evidence)
    first = events[0]
    message = (first.get("message") or "").strip()
    if first.get("reason") == "FailedCreate":
        return Outcome(
            True, f"Job {params.job} queued: a ResourceQuota held its pod back ({message})", evidence
        )
    return Outcome(
        True,
        f"Job {params.job} queued: pod {first['involvedObject'].get('name')} was Pending ({message})",
        evidence,
    )


@check("kube.job_succeeded", JobParams)
def job_succeeded(ctx: Context, params: JobParams) -> Outcome:
    """A Job completed successfully."""
    job, why = _job_or_why(ctx, params)
    if job is None:
        return Outcome(False, why)
    status = job.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or [] if c.get("status") == "True"}
    evidence = {k: status.get(k) for k in ("active", "succeeded", "failed", "startTime", "completionTime")}
    if "Complete" in conditions:
        return Outcome(
            True, f"Job {params.job} completed ({status.get('succeeded', 0)} pod(s) succeeded)", evidence
        )
    if "Failed" in conditions:
        failed = conditions["Failed"]
        return Outcome(
            False, f"Job {params.job} failed: {failed.get('reason')}: {failed.get('message')}", evidence
        )
    pending = [
        p["metadata"]["name"] for p in job_pods(ctx, job) if (p.get("status") or {}).get("phase") == "Pending"
    ]
    waiting = f"; pods still Pending: {', '.join(pending[:3])}" if pending else ""
    return Outcome(
        False,
        f"Job {params.job} has not completed yet ({status.get('active') or 0} active, "
        f"{status.get('succeeded') or 0} succeeded, {status.get('failed') or 0} failed{waiting})",
        evidence,
    )
