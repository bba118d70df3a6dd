"""Grading speed: a cohort's endpoint checks through the engine vs. one check at a time, one run.

500 learners (default) x 5 endpoint checks each (KServe health, KServe accuracy, MLflow accuracy,
MLflow macro F1, MLflow health) against real scikit-learn model servers on loopback
(tests/graders/model_servers.py, a few processes). One learner in ten serves wrong answers, so
the run also proves the verdicts: exactly those learners' three predict checks fail.
Prints checks per second and the p95 check time for
  engine      ``graders.engine.run_jobs`` with ``--concurrency`` checks in flight
  sequential  the same checks with concurrency 1 (on a sample of learners, extrapolated:
              it is linear)
Target: engine >= 200 checks/s on a 2-core machine. The hidden data is 30 rows and the batch
size 30 (one request per check), so the figures measure the grading machinery, not the model.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the repo's tests/ helpers

from graders.core import CheckResult, Status
from graders.engine import CheckCall, Job, run_jobs
from tests.graders import model_servers
from tests.helpers.processes import free_port, server_process

TARGET = 200.0  # checks per second
WRONG_EVERY = 10  # one learner in ten serves wrong answers


def calls(url: str, data: str) -> tuple[CheckCall, ...]:
    predict = {"data": data, "batch_size": 30, "latency_p95_ms": 1000, "request_timeout_s": 10}
    return (
        CheckCall("endpoint.health", {"url": url, "model": "iris"}, name="kserve ready"),
        CheckCall("endpoint.predict", {"url": url, "model": "iris", **predict}, name="kserve accuracy"),
        CheckCall("endpoint.predict", {"url": url, "protocol": "mlflow", **predict}, name="mlflow accuracy"),
        CheckCall(
            "endpoint.predict",
            {"url": url, "protocol": "mlflow", "metric": "f1", "threshold": 0.8, **predict},
            name="mlflow f1",
        ),
        CheckCall("endpoint.health", {"url": url, "protocol": "mlflow"}, name="mlflow ping"),
    )


def serves_wrong(learner: int) -> bool:
    return learner % WRONG_EVERY == WRONG_EVERY - 1


def cohort(learners: int, bases: list[str], data: str) -> list[Job]:
    jobs = []
    for i in range(learners):
        mode = "wrong" if serves_wrong(i) else "good"
        url = f"{bases[i % len(bases)]}/{mode}"
        jobs.append(Job(learner=f"learner-{i:03d}", namespace=f"lab-learner-{i:03d}", calls=calls(url, data)))
    return jobs


def grade(jobs: list[Job], concurrency: int) -> tuple[float, list[tuple[Job, CheckResult]]]:
    started = time.perf_counter()
    results = [(job, r) for job, batch in run_jobs(jobs, concurrency=concurrency) for r in batch]
    return time.perf_counter() - started, results


def p95_ms(results: list[tuple[Job, CheckResult]]) -> float:
    times = sorted(r.duration_s for _, r in results)
    return times[max(0, int(0.95 * len(times) + 0.999) - 1)] * 1000


def verify(results: list[tuple[Job, CheckResult]]) -> list[str]:
    """Every verdict as designed: wrong learners fail their three predict checks, nothing else fails."""
    problems = []
    for job, result in results:
        predict = result.check in ("kserve accuracy", "mlflow accuracy", "mlflow f1")
        wrong = serves_wrong(int(job.learner.rsplit("-", 1)[1]))
        expect = Status.FAILED if wrong and predict else Status.PASSED
        if result.status is not expect:
            problems.append(f"{job.learner} {result.check}: {result.status.value}: {result.feedback}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--learners", type=int, default=500)
    parser.add_argument("--servers", type=int, default=2, help="model server processes")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--sample", type=int, default=50, help="learners graded sequentially")
    args = parser.parse_args()

    ports = [free_port() for _ in range(args.servers)]
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        data = str(model_servers.write_hidden_csv("iris", Path(tmp) / "hidden.csv"))
        for port in ports:
            cmd = [sys.executable, model_servers.__file__, "--dataset", "iris", "--port", str(port)]
            stack.enter_context(server_process(cmd, ready=lambda: True))
        deadline = time.monotonic() + 120
        while not all(model_servers.answering(port) for port in ports):
            if time.monotonic() > deadline:
                raise SystemExit("model servers not ready after 120 s")
            time.sleep(0.2)
        bases = [f"http://127.0.0.1:{port}" for port in ports]

        grade(cohort(4, bases, data), 4)  # warm up: imports, check registry, servers' first requests
        sample = cohort(args.sample, bases, data)
        seq_s, seq_results = grade(sample, 1)
        jobs = cohort(args.learners, bases, data)
        eng_s, eng_results = grade(jobs, args.concurrency)

    checks = len(eng_results)
    seq_rate = len(seq_results) / seq_s
    eng_rate = checks / eng_s
    print(f"endpoint checks: {args.learners} learners x 5 = {checks} checks, {args.servers} model servers")
    print(f"{'':26}{'checks':>8}{'wall s':>9}{'checks/s':>10}{'p95 ms':>9}")
    print(
        f"{'sequential (concurrency 1)':26}{len(seq_results):>8}{seq_s:>9.2f}{seq_rate:>10.0f}"
        f"{p95_ms(seq_results):>9.1f}   -> {checks / seq_rate:.1f} s for all {checks}"
    )
    print(
        f"{f'engine (concurrency {args.concurrency})':26}{checks:>8}{eng_s:>9.2f}{eng_rate:>10.0f}"
        f"{p95_ms(eng_results):>9.1f}   x{eng_rate / seq_rate:.1f} the sequential rate"
    )
    statuses = Counter(r.status.value for _, r in eng_results)
    print("verdicts: " + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items())))
    problems = verify(seq_results + eng_results)
    for line in problems[:5]:
        print(f"UNEXPECTED {line}")
    met = eng_rate >= TARGET
    print(f"target >= {TARGET:.0f} checks/s: {'met' if met else 'NOT met'}")
    return 0 if met and not problems else 1


if __name__ == "__main__":
    raise SystemExit(main())
