"""Running checks: per-check deadline, retries on transient grader errors, bounded concurrency.

A check that raised :class:`TransientGraderError` is run again under the one retry policy
(:mod:`labctl.core.retry`): jittered exponential backoff from ``backoff_s``, ``retries`` times.

Every way a check can go wrong ends in a :class:`CheckResult`: an unknown check or bad
parameters, a crash inside the check, a deadline overrun, a grader error. None of them is a
pass; grader-side trouble is status ``error`` so it shows and can be re-graded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from graders.core import (
    BadParams,
    CheckResult,
    Context,
    GraderError,
    Outcome,
    Status,
    TransientGraderError,
    UnknownCheck,
    as_is,
    get,
)
from labctl.core.retry import AGAIN, RetryPolicy
from labctl.sandbox import SandboxUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckCall:
    """One check to run: which, with what parameters, for how many points."""

    check: str
    params: dict[str, Any] = field(default_factory=dict)
    max_points: float = 1.0
    timeout_s: float = 60.0
    retries: int = 2
    name: str = ""  # how reports title it; defaults to the check's name

    @property
    def title(self) -> str:
        return self.name or self.check


def _error(call: CheckCall, feedback: str, started: float, attempts: int = 1, **evidence: Any) -> CheckResult:
    return CheckResult(
        check=call.title,
        status=Status.ERROR,
        points=0.0,
        max_points=call.max_points,
        feedback=feedback,
        evidence=evidence,
        duration_s=time.monotonic() - started,
        attempts=attempts,
    )


def run_check(call: CheckCall, context: Context, *, backoff_s: float = 0.2) -> CheckResult:
    """Run one check to a result, whatever happens inside it. Blocks at most about the timeout
    per attempt (a check that overruns is abandoned and reported, never waited for)."""
    started = time.monotonic()
    try:
        spec = get(call.check)
        params = spec.parse(call.params)
    except (UnknownCheck, BadParams) as exc:
        return _error(call, str(exc), started)
    except Exception as exc:  # e.g. a check module that fails to import
        return _error(call, f"check {call.check} could not be loaded: {type(exc).__name__}: {exc}", started)
    attempts = 0

    def attempt() -> Outcome:
        nonlocal attempts
        attempts += 1
        ctx = replace(context, timeout_s=call.timeout_s, started=time.monotonic())
        return _with_deadline(partial(spec.func, ctx, params), call.timeout_s)

    # Only our side's transient trouble is tried again; each attempt has the whole timeout.
    policy = RetryPolicy(attempts=max(0, call.retries) + 1, first_delay_s=backoff_s)
    try:
        outcome = policy.run(
            attempt, judge=lambda exc: AGAIN if isinstance(exc, TransientGraderError) else None
        )
    except TransientGraderError as exc:
        return _error(call, f"grader error after {attempts} attempts: {exc}", started, attempts)
    except (GraderError, SandboxUnavailable) as exc:  # no sandbox: our side's, never a run without
        return _error(call, f"grader error: {exc}", started, attempts)
    except FutureTimeout:
        return _error(call, f"check did not finish within {call.timeout_s:g}s", started, attempts)
    except Exception as exc:  # a bug in a check must not crash a cohort's grading
        log.exception("check %s crashed", call.check)
        return _error(call, f"check crashed: {type(exc).__name__}: {exc}", started, attempts)
    return _result(call, outcome, started, attempts)


def _result(call: CheckCall, outcome: Outcome, started: float, attempts: int) -> CheckResult:
    if not isinstance(outcome, Outcome):
        return _error(call, f"check returned {type(outcome).__name__}, not an Outcome", started, attempts)
    credit = outcome.credit()
    return CheckResult(
        check=call.title,
        status=Status.PASSED if outcome.passed else Status.FAILED,
        points=round(call.max_points * credit, 4),
        max_points=call.max_points,
        feedback=outcome.feedback,
        evidence=outcome.evidence,
        duration_s=time.monotonic() - started,
        attempts=attempts,
    )


_watchdog = ThreadPoolExecutor(max_workers=64, thread_name_prefix="check")


def _with_deadline(func: Callable[[], Outcome], timeout_s: float) -> Outcome:
    """Run ``func`` in a worker; give up on it (not kill it) after ``timeout_s`` (+ slack).

    Checks bound their own I/O by the context deadline; this is the backstop for one that
    does not, so a hung learner endpoint never hangs a cohort's grading.
    """
    future: Future[Outcome] = _watchdog.submit(func)
    return future.result(timeout=timeout_s + 1.0)


@dataclass(frozen=True)
class Job:
    """All of one learner's checks for a lab."""

    learner: str
    namespace: str | None
    calls: tuple[CheckCall, ...]


def run_jobs(
    jobs: Iterable[Job],
    *,
    kube: Any = None,
    concurrency: int = 16,
    on_result: Callable[[Job, CheckResult], None] | None = None,
    reach: Callable[[str], str] = as_is,
    fetch_submission: Callable[[Context, str, Path], None] | None = None,
) -> Iterator[tuple[Job, list[CheckResult]]]:
    """Run every job's checks with at most ``concurrency`` checks in flight; yields per job,
    in the order given, as soon as that job's results are all in. ``reach``, ``fetch_submission``:
    see Context."""
    jobs = list(jobs)
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="grade") as pool:
        futures: list[list[Future[CheckResult]]] = []
        for job in jobs:
            ctx = Context(
                learner=job.learner,
                namespace=job.namespace,
                kube=kube,
                reach=reach,
                fetch_submission=fetch_submission,
            )
            futures.append([pool.submit(run_check, call, ctx) for call in job.calls])
        for job, pending in zip(jobs, futures, strict=True):
            results = []
            for future in pending:
                result = future.result()
                if on_result is not None:
                    on_result(job, result)
                results.append(result)
            yield job, results
