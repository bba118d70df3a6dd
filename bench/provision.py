"""Provisioning speed: labctl vs. a `kubectl apply` loop vs. raw parallel creates, one run.

For N learners (default 10, 100, 500) it prints learners per second for
  labctl      `labctl cohort create --wait`: Cohort -> controller -> every learner Ready
  kubectl     `kubectl apply -f learner-i.yaml` per learner, the loop an instructor would script
              (timed on a sample of learners, since it is linear)
  raw         the same rendered objects POSTed by 32 threads, no checks: the ceiling
plus the no-op re-apply time of the cohort and the controller's peak RSS.
Targets: labctl >= 10x kubectl, >= 50 % of raw, no-op re-apply of 500 in <= 10 s,
controller RSS <= 250 MB at 500 learners.

Runs on a simulated cluster of its own (its own state directory), removed at the end.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from labctl.kube import Kube, KubeError
from labctl.localcluster.toolchain import paths
from labctl.provision.cohort_learners import render_learners
from labctl.provision.install import KEY_SECRET
from labctl.provision.learner import render_learner_objects
from labctl.provision.tenancy import CONTROLLER_NAMESPACE

LABCTL = [sys.executable, "-m", "labctl.cli"]


def run(*args: str, env: dict[str, str]) -> float:
    started = time.monotonic()
    subprocess.run([*LABCTL, *args], env=env, check=True, capture_output=True, text=True)
    return time.monotonic() - started


class RssSampler(threading.Thread):
    """Peak resident memory of one process, sampled every 100 ms."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak_kib, self.running = pid, 0, True

    def run(self) -> None:
        while self.running:
            try:
                for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        self.peak_kib = max(self.peak_kib, int(line.split()[1]))
            except OSError:
                pass
            time.sleep(0.1)


def fake_learners(cohort: str, n: int, prefix: str) -> list[dict]:
    """Learner objects as the controller would see them, for rendering outside labctl."""
    spec = {
        "apiVersion": "labctl.dev/v1alpha1",
        "kind": "Cohort",
        "metadata": {"name": cohort},
        "spec": {"level": "professional", "learners": [{"email": f"{prefix}{i}@uni.edu"} for i in range(n)]},
    }
    return render_learners(spec)


def render_plain(learner: dict, key: bytes) -> list[dict]:
    return render_learner_objects(learner, key=key)


def kubectl_loop(kube_env: dict[str, str], learners: list[dict], key: bytes, workdir: Path) -> float:
    kubectl = str(paths.binary("kubectl"))
    files = []
    for i, learner in enumerate(learners):
        path = workdir / f"learner-{i}.yaml"
        path.write_text(yaml.safe_dump_all(render_plain(learner, key)))
        files.append(path)
    started = time.monotonic()
    for path in files:
        subprocess.run([kubectl, "apply", "-f", str(path)], env=kube_env, check=True, capture_output=True)
    return time.monotonic() - started


def create_or_exists(kube: Kube, obj: dict) -> None:
    try:
        kube.create(obj)
    except KubeError as exc:
        # A create retried after a timeout whose first attempt went through: it exists.
        if exc.status != 409:
            raise


def raw_creates(kube: Kube, learners: list[dict], key: bytes) -> float:
    batches = [render_plain(lr, key) for lr in learners]
    started = time.monotonic()
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(lambda objs: create_or_exists(kube, objs[0]), batches))  # namespaces first
        list(pool.map(lambda obj: create_or_exists(kube, obj), [o for objs in batches for o in objs[1:]]))
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,500")
    parser.add_argument("--kubectl-sample", type=int, default=20, help="learners timed for the kubectl loop")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    state = tempfile.mkdtemp(prefix="labctl-bench-")
    env = {**os.environ, "LABCTL_STATE_DIR": state}
    # Every learner runs 4 stack pods, and every learner of the run stays (labctl's, the
    # kubectl sample's and raw's): give the pretend nodes (110 pods each) room for all of them.
    learners = sum(n + min(n, args.kubectl_sample) + n for n in sizes)
    nodes = max(3, learners * 4 // 100 + 2)
    kubeconfig = subprocess.run(
        [*LABCTL, "sim", "up", "bench", "--cpu-nodes", str(nodes), "--gpu-nodes", "0"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    kube_env = {**env, "KUBECONFIG": kubeconfig}
    controller = None
    try:
        run("install", "--local-controller", "--kubeconfig", kubeconfig, env=env)
        kube = Kube.connect(kubeconfig=kubeconfig)
        key = base64.b64decode(kube.get("v1", "Secret", KEY_SECRET, CONTROLLER_NAMESPACE)["data"]["key"])
        controller = subprocess.Popen(
            [*LABCTL, "controller", "run", "--kubeconfig", kubeconfig],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        sampler = RssSampler(controller.pid)
        sampler.start()
        time.sleep(3)
        rows = []
        with tempfile.TemporaryDirectory() as work:
            for n in sizes:
                roster = Path(work) / f"roster-{n}.csv"
                roster.write_text("email\n" + "".join(f"l{i}@uni.edu\n" for i in range(n)))
                create = [
                    "cohort",
                    "create",
                    f"b{n}",
                    "--roster",
                    str(roster),
                    "--level",
                    "professional",
                    "--wait",
                    "--timeout",
                    "30m",
                    "--kubeconfig",
                    kubeconfig,
                ]
                labctl_s = run(*create, env=env)
                noop_s = run(*create, env=env)
                print(
                    f"labctl {n}: {labctl_s:.1f}s to Ready, no-op re-apply {noop_s:.2f}s, "
                    f"controller peak RSS so far {sampler.peak_kib / 1024:.0f} MiB",
                    flush=True,
                )
                sample = fake_learners(f"k{n}", min(n, args.kubectl_sample), "k")
                kubectl_s = kubectl_loop(kube_env, sample, key, Path(work)) * n / len(sample)
                raw_s = raw_creates(kube, fake_learners(f"r{n}", n, "r"), key)
                rows.append((n, n / labctl_s, n / kubectl_s, n / raw_s, noop_s))
                # Each size as soon as it is measured: a long run still leaves its figures. The
                # load average says how much else the machine was doing meanwhile.
                load = " ".join(f"{x:.2f}" for x in os.getloadavg())
                print(
                    f"measured {n}: labctl {labctl_s:.1f}s, kubectl {kubectl_s:.1f}s, raw {raw_s:.1f}s, "
                    f"no-op {noop_s:.2f}s, controller peak RSS so far {sampler.peak_kib / 1024:.0f} MiB, "
                    f"load average {load} on {os.cpu_count()} CPUs",
                    flush=True,
                )
        sampler.running = False
        print(
            f"{'learners':>8} {'labctl/s':>10} {'kubectl/s':>10} {'raw/s':>8} {'vs kubectl':>11} "
            f"{'vs raw':>7} {'no-op (s)':>10}"
        )
        for n, lab, kctl, raw, noop in rows:
            ratios = f"{lab / kctl:>10.1f}x {lab / raw:>6.0%}"
            print(f"{n:>8} {lab:>10.1f} {kctl:>10.2f} {raw:>8.1f} {ratios} {noop:>10.2f}")
        print(f"controller peak RSS: {sampler.peak_kib / 1024:.0f} MiB (target <= 250 MB)")
    finally:
        if controller is not None:
            os.killpg(controller.pid, signal.SIGTERM)
            try:  # kopf lets running handlers finish; a busy one can take long: do not wait forever
                controller.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(controller.pid, signal.SIGKILL)
                controller.wait()
        subprocess.run([*LABCTL, "sim", "down", "bench"], env=env, check=False, capture_output=True)
        shutil.rmtree(state, ignore_errors=True)  # sim down empties it; the directory itself stayed


if __name__ == "__main__":
    main()
