"""kopf handlers: each routes one kind of event to a reconciler or a status refresh.

Handlers stay a few lines long; the work is in labctl.controller.reconcile and .refresh.
Status that depends on other objects (stack readiness, cohort counts) is refreshed when
those objects change, from kopf indexes and the stack watch's table: no API reads and no
periodic timers, so an idle controller costs nothing however many learners it holds.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import Any

import kopf

from labctl.api.v1alpha1 import VERSION
from labctl.controller import metrics, reconcile, statuses
from labctl.controller.apiserver import sync_policies
from labctl.controller.memo import Memo
from labctl.controller.refresh import Seen
from labctl.core.labels import GROUP
from labctl.sessions.reconcile import NotYet, expire_if_due, reconcile_session

RETRY_S = 3.0  # a failed reconcile is retried this soon (kopf's default is a minute)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.posting.level = logging.WARNING  # Events for problems; our own for milestones
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.execution.max_workers = 32
    settings.watching.server_timeout = 300
    # One worker per object with events. A cap makes every object beyond it wait while
    # others idle: with 64 slots held 5 s each, startup over 600 objects took minutes.
    settings.queueing.worker_limit = None
    settings.queueing.idle_timeout = 1.0  # an idle object's worker ends soon: memory stays flat


@kopf.on.login()
def login(memo: Memo, **_: Any) -> kopf.ConnectionInfo:
    return memo.connection_info()


@kopf.index(GROUP, VERSION, "learners")
def learners_by_cohort(
    name: str, spec: kopf.Spec, status: kopf.Status, **_: Any
) -> dict[str, tuple[str, str | None]]:
    return {spec.get("cohort", ""): (name, status.get("phase"))}


@kopf.index(GROUP, VERSION, "cohorts")
def cohorts_by_name(name: str, body: kopf.Body, **_: Any) -> dict[str, Seen]:
    return {name: Seen.of(body)}


@kopf.on.startup()
async def watch_stacks(memo: Memo, **_: Any) -> None:
    """Stack Deployments come from a lean watch of our own (labctl.controller.stacks), not kopf."""
    memo.stacks.start(asyncio.get_running_loop(), partial(_stacks_changed, memo))


@kopf.on.startup()
def watch_api_server(memo: Memo, **_: Any) -> None:
    """The API server's endpoints, which learners' egress policies name (labctl.controller.apiserver)."""
    memo.api_server.start(partial(sync_policies, memo.kube))


@kopf.on.cleanup()
def stop_watching_stacks(memo: Memo, **_: Any) -> None:
    memo.stacks.stop()
    memo.api_server.stop()


@kopf.on.resume(GROUP, VERSION, "cohorts", backoff=RETRY_S)
@kopf.on.create(GROUP, VERSION, "cohorts", backoff=RETRY_S)
@kopf.on.update(GROUP, VERSION, "cohorts", field="spec", backoff=RETRY_S)
def cohort_changed(body: kopf.Body, memo: Memo, logger: kopf.Logger, **_: Any) -> None:
    with metrics.measured("cohort"):
        result = reconcile.reconcile_cohort(memo.kube, dict(body))
    if result.applied or result.deleted:
        logger.info(f"learners applied: {result.applied}, removed: {result.deleted}")


@kopf.on.delete(GROUP, VERSION, "cohorts", optional=True)  # optional: no finalizer for this
def cohort_deleted(name: str, **_: Any) -> None:
    metrics.forget_cohort(name)


@kopf.on.event(GROUP, VERSION, "cohorts")
async def cohort_seen(
    body: kopf.Body,
    type: str | None,
    memo: Memo,
    learners_by_cohort: kopf.Index[str, tuple[str, str | None]],
    **_: Any,
) -> None:
    seen = Seen.of(body)
    if type == "DELETED":
        memo.status.written.forget(seen)
    else:
        await memo.status.cohort(seen, learners_by_cohort.get(seen.name, []))


@kopf.on.resume(GROUP, VERSION, "learners", backoff=RETRY_S)
@kopf.on.create(GROUP, VERSION, "learners", backoff=RETRY_S)
@kopf.on.update(GROUP, VERSION, "learners", field="spec", backoff=RETRY_S)
def learner_changed(body: kopf.Body, memo: Memo, patch: kopf.Patch, logger: kopf.Logger, **_: Any) -> None:
    with metrics.measured("learner"):
        applied = reconcile.reconcile_learner(
            memo.kube,
            dict(body),
            key=memo.key,
            stack_settings=memo.stack_settings,
            api_server=memo.api_server.current(),
        )
    patch.status.update(statuses.applied_changes(body, applied))
    if applied is not None:
        metrics.OBJECTS_APPLIED.labels("learner").inc(applied.objects)
    if applied:
        kopf.info(body, reason="Provisioned", message=f"namespace {body.meta['name']} applied")
        logger.info(
            f"applied {applied.objects} objects in {applied.seconds:.1f}s "
            f"(of which {applied.quota_wait_s:.1f}s waiting for the quota's usage)"
        )


# Status handlers are async: they compute in the event loop and write from their own pool, never
# waiting for a handler thread that a reconcile holds.
@kopf.on.event(GROUP, VERSION, "learners")
async def learner_seen(
    body: kopf.Body,
    type: str | None,
    memo: Memo,
    learners_by_cohort: kopf.Index[str, tuple[str, str | None]],
    cohorts_by_name: kopf.Index[str, Seen],
    **_: Any,
) -> None:
    seen = Seen.of(body)
    memo.learners.seen(seen, gone=type == "DELETED")
    if type == "DELETED":
        memo.status.written.forget(seen)
    else:
        await _refresh_learner(memo, seen)
    for cohort in cohorts_by_name.get(seen.spec.get("cohort", ""), []):
        await memo.status.cohort(cohort, learners_by_cohort.get(cohort.name, []))


def _stacks_changed(memo: Memo, namespace: str) -> None:
    """A stack Deployment in ``namespace`` turned (not) ready, appeared or went."""
    seen = memo.learners.get(namespace)  # a learner's namespace bears its name
    if seen is not None:
        memo.learners.spawn(_refresh_learner(memo, seen))


async def _refresh_learner(memo: Memo, seen: Seen) -> None:
    await memo.stacks.listed()  # before it, every stack would look not ready
    phase = await memo.status.learner(seen, memo.stacks.ready_by_stack(seen.name))
    # An Event per phase change: `kubectl describe learner` tells the story.
    if phase in ("Ready", "Suspended"):
        kopf.info(seen.ref(), reason=phase, message=f"learner {seen.name} is {phase}")
    elif phase == "Degraded":
        kopf.warn(seen.ref(), reason=phase, message=f"learner {seen.name} is {phase}")


@kopf.on.delete(GROUP, VERSION, "learners")
def learner_deleted(name: str, memo: Memo, **_: Any) -> None:
    if memo.kube.get("v1", "Namespace", name) is None:
        return
    memo.kube.delete("v1", "Namespace", name)
    raise kopf.TemporaryError(f"waiting for namespace {name} to be deleted", delay=2)


# Lab sessions: learners write the spec (start, check, reset, stop); one reconcile answers.
@kopf.on.resume(GROUP, VERSION, "labsessions", backoff=RETRY_S)
@kopf.on.create(GROUP, VERSION, "labsessions", backoff=RETRY_S)
@kopf.on.update(GROUP, VERSION, "labsessions", field="spec", backoff=RETRY_S)
def session_changed(body: kopf.Body, memo: Memo, **_: Any) -> None:
    with metrics.measured("labsession"):
        try:
            reconcile_session(memo.kube, dict(body), reach=memo.reach)
        except NotYet as exc:
            raise kopf.TemporaryError(str(exc), delay=RETRY_S) from None


@kopf.timer(GROUP, VERSION, "labsessions", interval=30, initial_delay=30)
def session_clock(body: kopf.Body, memo: Memo, **_: Any) -> None:
    """Sessions end at their lab's duration: the clock marks them, and does nothing else."""
    expire_if_due(memo.kube, dict(body))
