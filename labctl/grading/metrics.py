"""prometheus-client metrics of grading: runs, check durations and outcomes, pass rates.

Served by whichever process grades (`labctl grade --metrics-port`, or the controller once it
grades in-cluster); the default registry, so one scrape sees them with the controller's own.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

GRADING_RUNS = Counter("labctl_grading_runs_total", "Grading runs (one lab for a set of learners).", ["lab"])
CHECKS = Counter("labctl_grading_checks_total", "Check results by status.", ["check", "status"])
CHECK_SECONDS = Histogram(
    "labctl_grading_check_duration_seconds",
    "Wall time of one check, retries included.",
    ["check"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
ATTEMPTS = Counter("labctl_grading_attempts_total", "Recorded attempts by outcome.", ["lab", "status"])
PASS_RATE = Gauge("labctl_grading_pass_rate", "Share of graded learners who passed, last run.", ["lab"])
