"""The controller's Prometheus metrics (prometheus-client), served on --metrics-port."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress

from prometheus_client import Counter, Gauge, Histogram

RECONCILE_SECONDS = Histogram(
    "labctl_reconcile_duration_seconds",
    "Time spent in one reconcile",
    ["kind"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RECONCILE_ERRORS = Counter("labctl_reconcile_errors_total", "Reconciles that raised", ["kind"])
OBJECTS_APPLIED = Counter("labctl_objects_applied_total", "Objects server-side applied", ["kind"])
LEARNERS_READY = Gauge("labctl_learners_ready", "Learners whose environment is Ready", ["cohort"])
LEARNERS_TOTAL = Gauge("labctl_learners", "Learners on each cohort's roster", ["cohort"])


@contextmanager
def measured(kind: str) -> Iterator[None]:
    """Time one reconcile of ``kind``; count it as an error if it raises."""
    started = time.perf_counter()
    try:
        yield
    except Exception:
        RECONCILE_ERRORS.labels(kind).inc()
        raise
    finally:
        RECONCILE_SECONDS.labels(kind).observe(time.perf_counter() - started)


def observe_cohort(cohort: str, *, wanted: int, phases: Iterable[str | None]) -> None:
    LEARNERS_TOTAL.labels(cohort).set(wanted)
    LEARNERS_READY.labels(cohort).set(sum(1 for phase in phases if phase == "Ready"))


def forget_cohort(cohort: str) -> None:
    """Drop a deleted cohort's series, so dashboards do not show ghosts."""
    for gauge in (LEARNERS_TOTAL, LEARNERS_READY):
        with suppress(KeyError):
            gauge.remove(cohort)
