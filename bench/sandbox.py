"""What the sandbox costs per check: medians of ``--runs`` (20) runs, sandboxed beside unsandboxed.

Prints, each as the median and p90 wall time of one run, interleaved in the same process:
  trivial python   ``python trivial.py`` (prints one line; the grader's venv python)
                   through labctl.sandbox.run (python=True, a work dir of 1 file) vs a plain
                   subprocess in a copy of the same work dir
  sh true          the sandbox's fixed cost with no interpreter: ``/bin/sh -c true``
  dvc repro        ``python -m dvc repro --force`` of a small benign pipeline (one stage, a
                   json metric) on the learner's repository (data in its cache): sandboxed vs a plain
                   subprocess on a copy
  metrics_reproduce  the whole ``dvc.metrics_reproduce`` check on that repository (clone, pull
                   from a local S3, metrics, sandboxed repro, metrics): sandboxed only — there is
                   no unsandboxed check any more

Each row is timed in bubblewrap and, with ``--kubeconfig`` (a cluster whose nodes have the
controller's image, e.g. a real-node sim after ``labctl images load controller``), in the Pod
sandbox the in-cluster controller uses (``pod`` column: create, schedule, run, read the log, delete).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the repo's tests/ helpers

from graders.core import Context, Status
from graders.engine import CheckCall, run_check
from labctl import sandbox
from labctl.kube import Kube
from labctl.provision.stacks.local_images import LOCAL_IMAGES
from labctl.sandbox import bwrap, pod
from tests.graders.s3_server import S3Server, versitygw

TRIVIAL = 'print("predicted 3 rows")\n'
STAGE = (
    'import json\njson.dump({"score": sum(map(int, open("data.txt").read().split()))}, open("m.json", "w"))\n'
)


def timed(func: Callable[[], object]) -> float:
    started = time.perf_counter()
    func()
    return time.perf_counter() - started


def plain(argv: list[str], work: Path) -> None:
    """The unsandboxed baseline: a copy of the work dir (the sandbox copies too) and a subprocess."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "work"
        shutil.copytree(work, copy, symlinks=True)
        proc = subprocess.run(argv, cwd=copy, capture_output=True, check=False, timeout=300)
        assert proc.returncode == 0, proc.stderr


def boxed(argv: list[str], work: Path, *, python: bool, backend: str = "bwrap") -> None:
    os.environ["LABCTL_SANDBOX"] = backend
    ran = sandbox.run(argv, work=work, python=python)
    assert ran.ok, (ran.reason, ran.stderr)
    assert ran.where.startswith("pod " if backend == "pod" else "bubblewrap "), ran.where


def pipeline(s3: S3Server, root: Path) -> Path:
    """A learner's repository: data tracked and pushed, one stage with a json metric, locked."""
    env = {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"]),
        "HOME": str(root),
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "Ada",
        "GIT_AUTHOR_EMAIL": "ada@example.edu",
        "GIT_COMMITTER_NAME": "Ada",
        "GIT_COMMITTER_EMAIL": "ada@example.edu",
        **s3.env(),
    }
    repo = root / "ada"
    repo.mkdir()
    dvc = [sys.executable, "-m", "dvc"]
    (repo / "data.txt").write_text("1\n2\n3\n")
    (repo / "stage.py").write_text(STAGE)
    for cmd in (
        ["git", "init", "--quiet", "-b", "main"],
        [*dvc, "init", "--quiet"],
        [*dvc, "add", "--quiet", "data.txt"],
        [*dvc, "remote", "add", "--default", "store", "s3://dvc/ada"],
        [*dvc, "remote", "modify", "store", "endpointurl", s3.endpoint],
        [
            *dvc,
            "stage",
            "add",
            "-n",
            "score",
            "-d",
            "data.txt",
            "-d",
            "stage.py",
            "-M",
            "m.json",
            "python stage.py",
        ],
        [*dvc, "repro", "--quiet"],
        ["git", "add", "-A"],
        ["git", "commit", "--quiet", "-m", "pipeline"],
        [*dvc, "push", "--quiet"],
    ):
        subprocess.run(cmd, cwd=repo, env=env, check=True, capture_output=True, timeout=120)
    return repo


def report(name: str, samples: dict[str, list[float]]) -> None:
    cells = []
    for label, values in samples.items():
        ordered = sorted(values)
        p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
        cells.append(f"{label} {statistics.median(values) * 1000:7.0f} ms (p90 {p90 * 1000:.0f})")
    extra = ""
    if "plain" in samples:
        base = statistics.median(samples["plain"])
        extra = "   overhead " + ", ".join(
            f"{label} {(statistics.median(v) - base) * 1000:+.0f} ms"
            for label, v in samples.items()
            if label != "plain"
        )
    print(f"{name:18} " + "   ".join(cells) + extra, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--kubeconfig", help="also time the Pod sandbox in this cluster")
    args = parser.parse_args()
    backends = ["bwrap"]
    if args.kubeconfig:
        pod._kube = Kube.connect(kubeconfig=args.kubeconfig)
        os.environ.setdefault("LABCTL_SANDBOX_IMAGE", LOCAL_IMAGES["controller"])
        backends.append("pod")
    print(f"runs {args.runs}; {bwrap.version()}; backends {', '.join(backends)}; uid {os.geteuid()}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "work"
        work.mkdir()
        (work / "trivial.py").write_text(TRIVIAL)
        python = [sys.executable, "trivial.py"]
        rows: dict[str, dict[str, list[float]]] = {
            "trivial python": {b: [] for b in (*backends, "plain")},
            "sh true": {b: [] for b in (*backends, "plain")},
        }
        for _ in range(args.runs):
            for b in backends:
                rows["trivial python"][b].append(
                    timed(lambda b=b: boxed(["python", "trivial.py"], work, python=True, backend=b))
                )
                rows["sh true"][b].append(
                    timed(lambda b=b: boxed(["/bin/sh", "-c", "true"], work, python=False, backend=b))
                )
            rows["trivial python"]["plain"].append(timed(lambda: plain(python, work)))
            rows["sh true"]["plain"].append(timed(lambda: plain(["/bin/sh", "-c", "true"], work)))
        for name, samples in rows.items():
            report(name, samples)
        with versitygw(Path(tmp) / "s3") as s3:
            repo = pipeline(s3, Path(tmp))
            os.environ["BENCH_S3_ACCESS"], os.environ["BENCH_S3_SECRET"] = s3.access_key, s3.secret_key
            repro = [sys.executable, "-m", "dvc", "repro", "--force", "--quiet"]
            samples: dict[str, list[float]] = {b: [] for b in (*backends, "plain")}
            for _ in range(args.runs):
                for b in backends:
                    samples[b].append(
                        timed(lambda b=b: boxed(["python", *repro[1:]], repo, python=True, backend=b))
                    )
                samples["plain"].append(timed(lambda: plain(repro, repo)))
            report("dvc repro", samples)
            params = {"repo": str(repo), "endpoint_url": s3.endpoint, "access_key_env": "BENCH_S3_ACCESS"}
            params["secret_key_env"] = "BENCH_S3_SECRET"
            call = CheckCall("dvc.metrics_reproduce", params, timeout_s=120, retries=0)
            checks: dict[str, list[float]] = {b: [] for b in backends}
            for _ in range(args.runs):
                for b in backends:
                    os.environ["LABCTL_SANDBOX"] = b
                    result = run_check(call, Context(learner="ada"))
                    assert result.status is Status.PASSED, result.feedback
                    checks[b].append(result.duration_s)
            report("metrics_reproduce", checks)


if __name__ == "__main__":
    main()
