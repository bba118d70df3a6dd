"""The dashboard in a real headless browser: Debian's chromium driven by Playwright, nothing downloaded.

A class of three on the test cluster (the cluster tests' kube-only lab, graded in seconds on kwok),
the controller running, `labctl dashboard` serving it from a subprocess in its own process group.
Screenshots go under ``$LABCTL_TEST_OUTPUT`` (default: test-output/ at the repository's root).
"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

from labctl.kube import Kube
from tests.conftest import LABCTL, ClusterUnderTest, ControllerProcess, cluster_args, labctl
from tests.helpers.processes import stop_group

ROOT = Path(__file__).resolve().parents[2]
LABS = ROOT / "tests" / "cluster" / "labs"
LAB = "foundation/hello-config"
CHROMIUM = "/usr/bin/chromium"
EMAILS = ("ada@uni.edu", "grace@uni.edu", "linus@uni.edu")


@dataclass(frozen=True)
class Classroom:
    cohort: str
    kubeconfigs: dict[str, str]  # e-mail -> the learner's own kubeconfig


@dataclass
class Dashboard:
    url: str  # the root, e.g. http://127.0.0.1:41234
    proc: subprocess.Popen


def as_learner(kubeconfig: str, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return labctl(*args, "--kubeconfig", kubeconfig, check=check)


def learner_apply(kubeconfig: str, kind: str, name: str, body: dict[str, object]) -> None:
    """What `kubectl apply` would do with the learner's kubeconfig, in their namespace."""
    learner = Kube.connect(kubeconfig=kubeconfig)
    learner.apply(
        {"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": learner.namespace}, **body}
    )


def lab_seed(kubeconfig: str) -> str:
    env = as_learner(kubeconfig, "lab", "env", check=True).stdout
    return next(line.split("=", 1)[1] for line in env.splitlines() if line.startswith("export LAB_SEED="))


def solve(kubeconfig: str) -> None:
    """The hello-config lab's solution, as the learner would apply it."""
    learner_apply(
        kubeconfig, "ConfigMap", "greeting", {"data": {"message": "hello", "seed": lab_seed(kubeconfig)}}
    )
    learner_apply(kubeconfig, "Service", "web", {"spec": {"ports": [{"port": 8080}]}})


@pytest.fixture(scope="session")
def output_dir() -> Path:
    folder = Path(os.environ.get("LABCTL_TEST_OUTPUT") or ROOT / "test-output") / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# Package scope, not session: Playwright's sync API keeps its event loop running until the driver
# stops, and every later test in the same pytest run that calls asyncio.run() would fail.
@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make debs` installs Debian's chromium")
    # --no-sandbox: the tests run as root, where chromium refuses its own sandbox.
    launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
    yield launched
    launched.close()


@pytest.fixture(scope="module")
def classroom(
    test_cluster: ClusterUnderTest,
    controller: ControllerProcess | None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Classroom]:
    """Cohort of three doing hello-config: Ada checked once (failed), Grace started, Linus has not."""
    labctl("lab", "publish", str(LABS), *cluster_args(test_cluster))
    tmp = tmp_path_factory.mktemp("classroom")
    name = f"tb-{uuid.uuid4().hex[:6]}"
    roster = tmp / "roster.csv"
    roster.write_text("email,name\nada@uni.edu,Ada Lovelace\ngrace@uni.edu,Grace Hopper\nlinus@uni.edu,\n")
    labctl(
        "cohort", "create", name, "--roster", str(roster), "--level", "foundation", "--labs", LAB,
        "--wait", "--timeout", "3m", *cluster_args(test_cluster),
    )  # fmt: skip
    kubeconfigs = {}
    for email in EMAILS:
        out = tmp / f"{email}.kubeconfig"
        labctl(
            "learner",
            "kubeconfig",
            name,
            email,
            "--out",
            str(out),
            "--duration",
            "1h",
            *cluster_args(test_cluster),
        )
        kubeconfigs[email] = str(out)
    as_learner(kubeconfigs["ada@uni.edu"], "lab", "start", LAB, check=True)
    as_learner(kubeconfigs["grace@uni.edu"], "lab", "start", LAB, check=True)
    assert as_learner(kubeconfigs["ada@uni.edu"], "lab", "check", LAB).returncode == 1
    yield Classroom(name, kubeconfigs)
    labctl("cohort", "delete", name, "--yes", *cluster_args(test_cluster), check=False)


def start_dashboard(cluster: ClusterUnderTest, log: Path, *args: str) -> Dashboard:
    """`labctl dashboard --port 0 ARGS` in its own process group; its URL from its first line."""
    cmd = [*LABCTL, "dashboard", "--port", "0", *args, *cluster_args(cluster)]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=log.open("ab"), text=True, start_new_session=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # printed once it listens
    if not line.startswith("dashboard: http://"):
        stop_group(proc)
        raise RuntimeError(f"labctl dashboard did not start: {line!r}; see {log}")
    url = line.split()[1]
    root = url.split("/cohorts/")[0].rstrip("/")
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{root}/healthz", timeout=2) as resp:
                if resp.status == 200:
                    return Dashboard(root, proc)
        except OSError:
            pass
        if time.monotonic() > deadline:
            stop_group(proc)
            raise RuntimeError(f"labctl dashboard never became healthy; see {log}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def dashboard(
    test_cluster: ClusterUnderTest, classroom: Classroom, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Dashboard]:
    log = tmp_path_factory.mktemp("dashboard") / "dashboard.log"
    served = start_dashboard(test_cluster, log, "--cohort", classroom.cohort)
    yield served
    stop_group(served.proc)
