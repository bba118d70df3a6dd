"""The controller's Prometheus metrics (prometheus-client), served on --metrics-port."""

from __future__ import annotations

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
