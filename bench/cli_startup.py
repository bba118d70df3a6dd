"""How fast the CLI answers, beside the floor `kubectl version --client` sets on this machine.

    .venv/bin/python bench/cli_startup.py [--runs 20]

Runs, round-robin so a busy machine slows every command alike:
  baseline  `kubectl version --client` (the toolchain's build; skipped, with a note, if not built)
  labctl    `labctl --help`, `labctl lab --help`, `labctl sim list` (an empty LABCTL_STATE_DIR)
each ``--runs`` times after one warm-up run, and prints the median and max wall time and the peak
RSS of each (the child's own ``ru_maxrss``, from ``os.wait4``). labctl is the virtualenv's console
script, as a learner runs it. Target: `labctl --help` and `labctl lab --help` under 0.2 s (median).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from labctl.localcluster.toolchain import paths

TARGET_S = 0.2  # `labctl --help` and `labctl lab --help`, median wall time
TARGETED = ("labctl --help", "labctl lab --help")


@dataclass
class Runs:
    """One command's wall times (s) and peak RSS (KiB), a run each."""

    argv: list[str]
    seconds: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Wall time and peak RSS of one run; a failing command stops the benchmark."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # wait4, not Popen.wait: it returns this child's own rusage (RUSAGE_CHILDREN is a max over all).
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}:\n{stderr}")
    return elapsed, usage.ru_maxrss  # KiB on Linux


def labctl_argv() -> list[str]:
    """The console script beside this Python (what a learner runs), else ``python -m labctl.cli``."""
    script = Path(sys.executable).parent / "labctl"
    return [str(script)] if os.access(script, os.X_OK) else [sys.executable, "-m", "labctl.cli"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=20, help="timed runs of each command")
    args = parser.parse_args()

    labctl = labctl_argv()
    commands = {
        "labctl --help": [*labctl, "--help"],
        "labctl lab --help": [*labctl, "lab", "--help"],
        "labctl sim list": [*labctl, "sim", "list"],
    }
    kubectl = paths.binary("kubectl")
    if os.access(kubectl, os.X_OK):
        commands = {"kubectl version --client": [str(kubectl), "version", "--client"], **commands}
    else:
        print(f"baseline skipped: {kubectl} is not built (labctl toolchain build)")

    with tempfile.TemporaryDirectory(prefix="bench-cli-") as state:
        env = {**os.environ, "LABCTL_STATE_DIR": state}
        runs = {label: Runs(argv) for label, argv in commands.items()}
        for r in runs.values():
            run_once(r.argv, env)  # warm up: page cache, .pyc files
        for _ in range(args.runs):
            for r in runs.values():
                seconds, rss = run_once(r.argv, env)
                r.seconds.append(seconds)
                r.rss_kib.append(rss)

    print(f"{args.runs} runs each, round-robin; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    print(f"{'command':<28}{'median s':>10}{'max s':>9}{'peak RSS MiB':>14}")
    for label, r in runs.items():
        rss_mib = max(r.rss_kib) / 1024
        print(f"{label:<28}{statistics.median(r.seconds):>10.3f}{max(r.seconds):>9.3f}{rss_mib:>14.1f}")
    for label in TARGETED:
        median = statistics.median(runs[label].seconds)
        verdict = "met" if median < TARGET_S else "MISSED"
        print(f"target: {label} < {TARGET_S} s (median {median:.3f} s) -> {verdict}")


if __name__ == "__main__":
    main()
