"""kopf handlers: each routes one kind of event to a reconciler and reports status.

Handlers stay a few lines long; the work is in labctl.controller.reconcile. Status that
depends on other objects (stack readiness, cohort counts) is computed by timers from kopf
indexes, so it needs no API reads and converges even if an event is missed.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from labctl.api.v1alpha1 import VERSION
from labctl.controller import metrics, reconcile, statuses
from labctl.controller.memo import Memo
from labctl.names import GROUP, MANAGED_BY

STACK_LABEL = reconcile.STACK_LABEL
STATUS_INTERVAL_S = 2.0
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
    settings.batching.worker_limit = 64


@kopf.on.login()
def login(memo: Memo, **_: Any) -> kopf.ConnectionInfo:
    return memo.connection_info()


@kopf.index(GROUP, VERSION, "learners")
def learners_by_cohort(name: str, spec: kopf.Spec, status: kopf.Status, **_: Any) -> dict[str, tuple]:
    return {spec.get("cohort", ""): (name, status.get("phase"))}


# Only labctl's own Deployments: admission stops learners from labelling theirs so, so a
# learner cannot fake their stack's readiness.
@kopf.index("apps", "v1", "deployments", labels={STACK_LABEL: kopf.PRESENT, **MANAGED_BY})
def stacks_by_namespace(
    namespace: str, labels: kopf.Labels, spec: kopf.Spec, status: kopf.Status, **_: Any
) -> dict[str, tuple]:
    return {namespace: (labels[STACK_LABEL], status.get("readyReplicas", 0) >= spec.get("replicas", 1))}


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


@kopf.timer(GROUP, VERSION, "cohorts", interval=STATUS_INTERVAL_S)
def cohort_status(
    name: str,
    meta: kopf.Meta,
    spec: kopf.Spec,
    status: kopf.Status,
    patch: kopf.Patch,
    learners_by_cohort: kopf.Index,
    **_: Any,
) -> None:
    members: list[tuple[str, str | None]] = list(learners_by_cohort.get(name, []))
    statuses.update_cohort(patch, status, meta, spec, members)
    metrics.observe_cohort(
        name, wanted=len(spec.get("learners") or []), phases=[phase for _, phase in members]
    )


@kopf.on.resume(GROUP, VERSION, "learners", backoff=RETRY_S)
@kopf.on.create(GROUP, VERSION, "learners", backoff=RETRY_S)
@kopf.on.update(GROUP, VERSION, "learners", field="spec", backoff=RETRY_S)
def learner_changed(body: kopf.Body, memo: Memo, patch: kopf.Patch, **_: Any) -> None:
    with metrics.measured("learner"):
        applied = reconcile.reconcile_learner(
            memo.kube, dict(body), key=memo.key, stack_settings=memo.stack_settings
        )
    statuses.record_applied(patch, body, applied)
    if applied is not None:
        metrics.OBJECTS_APPLIED.labels("learner").inc(applied.objects)
    if applied:
        kopf.info(body, reason="Provisioned", message=f"namespace {body.meta['name']} applied")


@kopf.timer(GROUP, VERSION, "learners", interval=STATUS_INTERVAL_S)
def learner_status(
    body: kopf.Body,
    name: str,
    meta: kopf.Meta,
    spec: kopf.Spec,
    status: kopf.Status,
    patch: kopf.Patch,
    stacks_by_namespace: kopf.Index,
    **_: Any,
) -> None:
    before = status.get("phase")
    statuses.update_learner(patch, status, meta, spec, dict(stacks_by_namespace.get(name, [])))
    after = patch.status.get("phase", before)
    if after != before and after is not None:
        # An Event per phase change: `kubectl describe learner` tells the story.
        event = kopf.info if after in ("Ready", "Suspended") else kopf.warn if after == "Degraded" else None
        if event is not None:
            event(body, reason=after, message=f"learner {name} is {after}")


@kopf.on.delete(GROUP, VERSION, "learners")
def learner_deleted(name: str, memo: Memo, **_: Any) -> None:
    if memo.kube.get("v1", "Namespace", name) is None:
        return
    memo.kube.delete("v1", "Namespace", name)
    raise kopf.TemporaryError(f"waiting for namespace {name} to be deleted", delay=2)
