"""The dashboard under a big class: 500 learners x 14 labs, one run.

On a simulated cluster of its own, it writes a cohort as the controller would have left it (500
Learners, a namespace each, a LabSession per learner and lab with its status, a recorded
GradeAttempt for each session checked), then starts `labctl dashboard` and prints:
  startup     from start to healthy: one list of each kind, picked
  grid        the cohort's grid page (7000 cells) fetched --renders times: median and worst
  live        a LabSession status written -> its cell's update on the event stream
  RSS         the dashboard process's resident memory, sampled every 100 ms: after the renders, peak
beside the baseline measured in the same run over the same objects:
  labctl cohort status -o json   the CLI's learner-by-lab grid (fresh lists, then the grid)
Targets: grid < 1 s, RSS < 150 MB.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the repo's tests/ helpers

from graders.core import CheckResult, Status
from labctl.api.labs import session_name
from labctl.api.v1alpha1 import API_VERSION
from labctl.grading.records import render_attempt
from labctl.grading.scoring import Score
from labctl.kube import Kube, KubeError
from labctl.provision.cohort_learners import render_learners
from tests.helpers.processes import stop_group

LABCTL = [sys.executable, "-m", "labctl.cli"]
TARGET_RENDER_S = 1.0
TARGET_RSS_MB = 150.0
COHORT = "bench"
CHECKS = ("config", "seeded", "service", "endpoint")
LEVELS = ("foundation", "professional", "advanced")


def lab_ids(n: int) -> list[str]:
    return [f"{LEVELS[i % 3]}/lab-{i:02d}" for i in range(n)]


class RssSampler(threading.Thread):
    """Resident memory of one process, sampled every 100 ms: the latest and the peak (KiB)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.now_kib, self.peak_kib, self.running = pid, 0, 0, True

    def run(self) -> None:
        while self.running:
            try:
                for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        self.now_kib = int(line.split()[1])
                        self.peak_kib = max(self.peak_kib, self.now_kib)
            except OSError:
                pass
            time.sleep(0.1)


def create(kube: Kube, obj: dict[str, Any]) -> None:
    try:
        kube.create(obj)
    except KubeError as exc:
        if exc.status != 409:  # a create retried after a timeout that went through
            raise


def session_status(rng: random.Random, attempts: int, now: dt.datetime) -> dict[str, Any]:
    passed = attempts > 0 and rng.random() < 0.6
    score = 4.0 if passed else float(rng.randint(0, 3)) if attempts else 0.0
    phase = "Ready" if attempts == 0 else ("Passed" if passed else "Failed")
    started = now - dt.timedelta(minutes=rng.randint(5, 120))
    status = {
        "phase": phase,
        "title": "A lab",
        "startedAt": started.isoformat().replace("+00:00", "Z"),
        "attempts": attempts,
        "checksServed": attempts,
        "score": score,
        "maxScore": 4.0,
        "passed": passed,
    }
    if attempts:
        status["lastCheckAt"] = (started + dt.timedelta(minutes=3)).isoformat().replace("+00:00", "Z")
    return status


def attempt_results(status: dict[str, Any]) -> list[CheckResult]:
    passing = int(status["score"])
    return [
        CheckResult(
            check=name,
            status=Status.PASSED if i < passing else Status.FAILED,
            points=1.0 if i < passing else 0.0,
            max_points=1.0,
            feedback="" if i < passing else f"{name}: not there yet (a sentence of feedback for the learner)",
            evidence={"observed": i, "namespace": "x" * 40},
        )
        for i, name in enumerate(CHECKS)
    ]


def populate(kube: Kube, learners: int, labs: list[str]) -> dict[str, int]:
    """The cohort as the controller would have left it; returns what was written, by kind."""
    rng = random.Random(14)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    cohort = {
        "apiVersion": API_VERSION,
        "kind": "Cohort",
        "metadata": {"name": COHORT},
        "spec": {
            "level": "advanced",
            "labs": labs,
            "learners": [
                {"email": f"learner{i:03d}@uni.edu", "name": f"Learner {i}"} for i in range(learners)
            ],
        },
    }
    create(kube, cohort)
    people = render_learners(cohort)
    sessions, attempts = [], []
    for learner in people:
        for lab in labs:
            roll = rng.random()
            if roll < 0.15:
                continue  # not started
            status = session_status(rng, 0 if roll < 0.3 else rng.randint(1, 4), now)
            sessions.append((learner, lab, status))
            if status["attempts"]:
                attempts.append((learner, lab, status))
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(lambda o: create(kube, o), people))
        namespaces = [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": lr["metadata"]["name"]}}
            for lr in people
        ]
        list(pool.map(lambda o: create(kube, o), namespaces))
        list(pool.map(lambda s: write_session(kube, *s), sessions))
        list(pool.map(lambda a: write_attempt(kube, *a, now=now), attempts))
    return {"learners": len(people), "sessions": len(sessions), "attempts": len(attempts)}


def write_session(kube: Kube, learner: dict[str, Any], lab: str, status: dict[str, Any]) -> None:
    ns = learner["metadata"]["name"]
    body = {
        "apiVersion": API_VERSION,
        "kind": "LabSession",
        "metadata": {"name": session_name(lab), "namespace": ns},
        "spec": {"lab": lab, "version": "1.0.0", "checkRequest": status["attempts"]},
    }
    create(kube, body)
    kube.patch(
        API_VERSION,
        "LabSession",
        session_name(lab),
        {"status": status},
        namespace=ns,
        subresource="status",
        quiet=True,
    )


def write_attempt(
    kube: Kube, learner: dict[str, Any], lab: str, status: dict[str, Any], *, now: dt.datetime
) -> None:
    results = attempt_results(status)
    verdict = Status.PASSED if status["passed"] else Status.FAILED
    score = Score(verdict, status["score"], status["maxScore"], ())
    obj = render_attempt(
        learner,
        lab,
        status["attempts"],
        results,
        score,
        pass_mark=1.0,
        graded_by="labctl-controller",
        graded_at=now,
    )
    create(kube, obj)


def get(url: str) -> tuple[float, int]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as resp:
        size = len(resp.read())
    return time.perf_counter() - started, size


def live_latency(root: str, kube: Kube, learners: int, labs: list[str], rounds: int) -> list[float]:
    """Seconds from a LabSession status write to its cell's update on the grid's event stream."""
    arrived: dict[str, float] = {}
    opened = threading.Event()

    def listen() -> None:
        with urllib.request.urlopen(f"{root}/events?cohort={COHORT}", timeout=120) as stream:
            for raw in stream:
                opened.set()
                line = raw.decode()
                if line.startswith("data:"):
                    for key in list(waiting):
                        if key in line:
                            arrived[key] = time.perf_counter()
                            waiting.discard(key)
                if len(arrived) == rounds:
                    return

    waiting: set[str] = set()
    threading.Thread(target=listen, daemon=True).start()
    opened.wait(30)
    people = render_learners(
        {
            "metadata": {"name": COHORT},
            "spec": {
                "level": "advanced",
                "learners": [{"email": f"learner{i:03d}@uni.edu"} for i in range(learners)],
            },
        }
    )
    latencies = []
    for n in range(rounds):
        learner, lab = people[n * 7 % learners]["metadata"]["name"], labs[0]
        key = f"c:{learner}:{lab}"
        waiting.add(key)
        meta = {"name": session_name(lab), "namespace": learner}
        spec = {"lab": lab, "version": "1.0.0"}
        create(kube, {"apiVersion": API_VERSION, "kind": "LabSession", "metadata": meta, "spec": spec})
        written = time.perf_counter()
        passed = {"phase": "Passed", "attempts": 9, "score": 4, "maxScore": 4}
        kube.patch(
            API_VERSION,
            "LabSession",
            session_name(lab),
            {"status": passed},
            namespace=learner,
            subresource="status",
        )
        deadline = time.monotonic() + 10
        while key not in arrived and time.monotonic() < deadline:
            time.sleep(0.005)
        latencies.append(arrived.get(key, float("inf")) - written)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=500)
    parser.add_argument("--labs", type=int, default=14)
    parser.add_argument("--renders", type=int, default=7)
    parser.add_argument(
        "--kubeconfig", default=None, help="an existing cluster with labctl installed (default: a sim)"
    )
    args = parser.parse_args()
    state = tempfile.mkdtemp(prefix="labctl-bench-dash-")
    env = {**os.environ, "LABCTL_STATE_DIR": os.environ.get("LABCTL_STATE_DIR", state)}
    sim = args.kubeconfig is None
    kubeconfig = args.kubeconfig or subprocess.run(
        [*LABCTL, "sim", "up", "bench-dash", "--cpu-nodes", "1", "--gpu-nodes", "0"],
        env=env, check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    server = None
    try:
        install = [*LABCTL, "install", "--local-controller", "--kubeconfig", kubeconfig]
        subprocess.run(install, env=env, check=True, capture_output=True)
        kube = Kube.connect(kubeconfig=kubeconfig)
        labs = lab_ids(args.labs)
        started = time.monotonic()
        written = populate(kube, args.learners, labs)
        print(
            f"wrote {written['learners']} learners x {args.labs} labs: {written['sessions']} sessions, "
            f"{written['attempts']} attempts in {time.monotonic() - started:.0f}s"
        )

        # Baseline: the CLI's own grid over the same objects.
        t0 = time.perf_counter()
        status = [*LABCTL, "cohort", "status", COHORT, "-o", "json", "--kubeconfig", kubeconfig]
        cli = subprocess.Popen(status, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cli_sampler = RssSampler(cli.pid)
        cli_sampler.start()
        if cli.wait() != 0:
            raise SystemExit("labctl cohort status failed")
        cli_s = time.perf_counter() - t0
        cli_sampler.running = False
        cli_rss_note = f"peak RSS {cli_sampler.peak_kib / 1024:.0f} MB"

        t0 = time.perf_counter()
        server = subprocess.Popen(
            [*LABCTL, "dashboard", "--port", "0", "--cohort", COHORT, "--kubeconfig", kubeconfig],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
        )  # fmt: skip
        sampler = RssSampler(server.pid)
        sampler.start()
        assert server.stdout is not None
        url = server.stdout.readline().split()[1]
        startup = time.perf_counter() - t0
        root = url.split("/cohorts/")[0]
        timings, size = [], 0
        for _ in range(args.renders):
            seconds, size = get(url)
            timings.append(seconds)
        time.sleep(0.3)
        rss_after = sampler.now_kib / 1024
        latencies = live_latency(root, kube, args.learners, labs, rounds=5)
        time.sleep(0.3)
        sampler.running = False
        peak = sampler.peak_kib / 1024
        median, live = statistics.median(timings), statistics.median(latencies)
        cells = args.learners * args.labs
        lines = [
            f"dashboard, cohort of {args.learners} learners x {args.labs} labs ({cells} cells):",
            f"  startup (list + pick every kind, then listening): {startup:.1f} s",
            f"  grid page: median {median:.3f} s, worst {max(timings):.3f} s over {args.renders} renders, "
            f"{size / 1e6:.2f} MB of HTML  (target < {TARGET_RENDER_S:.0f} s)",
            f"  live: status write -> cell update on the event stream: median {live:.3f} s, "
            f"worst {max(latencies):.3f} s (5 writes; target < 2 s)",
            f"  server RSS: {rss_after:.0f} MB after the renders, peak {peak:.0f} MB "
            f"(target < {TARGET_RSS_MB:.0f} MB)",
            f"  baseline `labctl cohort status {COHORT} -o json` over the same objects (fresh lists): "
            f"{cli_s:.2f} s, {cli_rss_note}",
        ]
        print("\n".join(lines))
        ok = max(timings) < TARGET_RENDER_S and peak < TARGET_RSS_MB and max(latencies) < 2
        print("PASS" if ok else "FAIL: a target was missed")
        if not ok:
            sys.exit(1)
    finally:
        if server is not None:
            stop_group(server)
        if sim:
            subprocess.run([*LABCTL, "sim", "down", "bench-dash"], env=env, check=False, capture_output=True)


if __name__ == "__main__":
    main()
