"""`labctl lab test` on every built-in lab whose stacks must really run, on the real node.

A sim with the real node (no kwok CPU nodes: every pod runs here), the stack images loaded, the
controller as a local process on this machine (root: its sandbox is bubblewrap; checks reach the
learners' Services through port-forwards), the catalog published. Then each lab is proven honest:
a fresh learner fails every check, each planted mistake is caught by exactly its checks, the
reference solution gets full marks. Labs kwok nodes can grade run in make test instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from labctl.catalog.load import builtin_root, load_catalog
from tests.conftest import LABCTL, labctl
from tests.e2e.machine import wait_for_machine_lock
from tests.helpers.processes import free_port, stop_group

NAME = "e2elabs"
SETTINGS = Path(__file__).parents[2] / "manifests" / "stack-settings" / "local-images.yaml"
IMAGES = ["object-store", "prometheus", "alertmanager", "config-reloader", "model-server", "mlflow"]
# The drift lab's check is a scenario (a minute of clean traffic, then drift until the alert fires,
# then clean until it resolves): ten minutes mostly spent waiting on Prometheus. It runs beside the
# others rather than after them, and is judged last.
BESIDE = "professional/drift-monitoring"
REAL_NODE_LABS = sorted(
    (lab.id for lab in load_catalog([builtin_root()]) if not lab.lab.simulable), key=lambda i: i == BESIDE
)

pytestmark = pytest.mark.timeout(3600)


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[str, dict[str, str]]]:
    """(kubeconfig, env) of a real-node sim with the local controller running."""
    labctl("images", "build", *IMAGES, timeout=7200)
    root = Path(tempfile.mkdtemp(prefix="labctl-e2elabs-", dir="/tmp"))
    env = {"LABCTL_STATE_DIR": str(root)}
    wait_for_machine_lock()
    controller: subprocess.Popen[bytes] | None = None
    try:
        sizes = ["--cpu-nodes", "0", "--gpu-nodes", "1", "--gpus-per-node", "2"]
        kubeconfig = labctl("sim", "up", NAME, "--real-node", *sizes, env=env, timeout=400).stdout.strip()
        labctl("images", "load", *IMAGES, "--sim", NAME, env=env, timeout=1800)
        kc = ["--kubeconfig", kubeconfig]
        labctl("install", "--local-controller", *kc, env=env)
        log = (root / "controller.log").open("ab")
        port = free_port()
        controller = subprocess.Popen(
            [sys.executable, "-m", "labctl.cli", "controller", "run", "--liveness-port", str(port),
             "--stack-settings", str(SETTINGS), *kc],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **env},
        )  # fmt: skip
        labctl("lab", "publish", *kc, env=env)
        yield kubeconfig, env
    finally:
        if controller is not None:
            stop_group(controller)
        labctl("sim", "down", NAME, env=env, check=False, timeout=300)
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class Background:
    """`labctl lab test` of one lab, running while the others are tested."""

    proc: subprocess.Popen[bytes]
    out: Path
    err: Path
    started: float


@pytest.fixture(scope="module")
def beside(cluster: tuple[str, dict[str, str]]) -> Iterator[Background | None]:
    if BESIDE not in REAL_NODE_LABS:
        yield None
        return
    kubeconfig, env = cluster
    scratch = Path(tempfile.mkdtemp(prefix="labctl-e2elabs-beside-"))
    out, err = scratch / "stdout.json", scratch / "stderr.txt"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [*LABCTL, "lab", "test", BESIDE, "-o", "json", "--kubeconfig", kubeconfig],
            stdout=stdout, stderr=stderr, start_new_session=True, env={**os.environ, **env},
        )  # fmt: skip
    try:
        yield Background(proc, out, err, time.monotonic())
    finally:
        stop_group(proc)  # a no-op once it has ended
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.mark.parametrize("lab_id", REAL_NODE_LABS)
def test_lab_is_honest_on_the_real_node(
    cluster: tuple[str, dict[str, str]], beside: Background | None, lab_id: str
) -> None:
    kubeconfig, env = cluster
    started = time.monotonic()
    if beside is not None and lab_id == BESIDE:
        started = beside.started
        returncode = beside.proc.wait(timeout=3000)
        stdout, stderr = beside.out.read_text(), beside.err.read_text()
    else:
        result = labctl("lab", "test", lab_id, "-o", "json", "--kubeconfig", kubeconfig, env=env,
                        check=False, timeout=3000)  # fmt: skip
        returncode, stdout, stderr = result.returncode, result.stdout, result.stderr
    rows = json.loads(stdout or "[]")
    table = "\n".join(
        f"  {r['stage']}: expected {r['expected']}, got {r['got']} ({r['seconds']}s) {r.get('detail', '')}"
        for r in rows
    )
    print(f"\n{lab_id} on the real node: {time.monotonic() - started:.0f}s\n{table}")
    assert returncode == 0, f"{table}\n{stderr[-3000:]}"
    stages = [r["stage"] for r in rows]
    assert stages[0] == "fresh" and "solution" in stages and "readme" in stages  # the README is followed too
    assert sum(s.startswith("mistake:") for s in stages) >= 3
