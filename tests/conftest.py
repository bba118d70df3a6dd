"""Shared fixtures: one cluster per test run, one namespace per cluster test.

The cluster is a labctl sim cluster started for the run, or, when
``LABCTL_TEST_KUBECONFIG`` is set, that existing cluster (kind, EKS, ...), unchanged.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from labctl.kube import Kube
from tests.helpers.processes import free_port, stop_group

TEST_SIM_NAME = "labctl-test"
LABCTL = [sys.executable, "-m", "labctl.cli"]


@dataclass(frozen=True)
class ClusterUnderTest:
    kubeconfig: str
    context: str | None
    simulated: bool


def labctl(
    *args: str, check: bool = True, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the real ``labctl`` CLI in a subprocess (exit codes and streams as a user sees them)."""
    proc = subprocess.run(
        [*LABCTL, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"labctl {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def test_cluster() -> Iterator[ClusterUnderTest]:
    external = os.environ.get("LABCTL_TEST_KUBECONFIG")
    if external:
        yield ClusterUnderTest(external, os.environ.get("LABCTL_TEST_CONTEXT"), simulated=False)
        return
    up = labctl("sim", "up", TEST_SIM_NAME)
    try:
        yield ClusterUnderTest(up.stdout.strip(), f"kwok-{TEST_SIM_NAME}", simulated=True)
    finally:
        labctl("sim", "down", TEST_SIM_NAME)


def cluster_args(cluster: ClusterUnderTest) -> list[str]:
    """``--kubeconfig``/``--context`` for the test cluster, as a user would pass them."""
    args = ["--kubeconfig", cluster.kubeconfig]
    return args + (["--context", cluster.context] if cluster.context else [])


class ControllerProcess:
    """`labctl controller run` as a local process in its own group; tests may kill and restart it."""

    def __init__(self, cluster: ClusterUnderTest, log_path: Path) -> None:
        self.cluster = cluster
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        port = free_port()
        cmd = [*LABCTL, "controller", "run", "--liveness-port", str(port), *cluster_args(self.cluster)]
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while not _healthy(port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"controller did not start; see {self.log_path}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the whole group: a crash, not a shutdown."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc)
            self.proc = None


@pytest.fixture(scope="session")
def controller(
    test_cluster: ClusterUnderTest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControllerProcess | None]:
    """labctl installed, and its controller running as a local process (its own process group).

    With ``LABCTL_TEST_CONTROLLER=in-cluster`` the cluster's installed controller is used instead.
    """
    if os.environ.get("LABCTL_TEST_CONTROLLER") == "in-cluster":
        yield None
        return
    labctl("install", "--local-controller", *cluster_args(test_cluster))
    process = ControllerProcess(test_cluster, tmp_path_factory.mktemp("controller") / "controller.log")
    process.start()
    try:
        yield process
    finally:
        process.stop()


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def kube(test_cluster: ClusterUnderTest) -> Kube:
    return Kube.connect(kubeconfig=test_cluster.kubeconfig, context=test_cluster.context)


def _slug(text: str, limit: int = 40) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-")


def make_namespace(kube: Kube, hint: str, labels: dict[str, str] | None = None) -> str:
    """Create a fresh namespace and wait for its default ServiceAccount (pods need it)."""
    name = f"t-{_slug(hint)}-{uuid.uuid4().hex[:6]}"
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": {"labctl.dev/test": "true", **(labels or {})}},
        }
    )
    kube.wait_for(
        lambda: kube.get("v1", "ServiceAccount", "default", name),
        timeout=30,
        what=f"default ServiceAccount in {name}",
    )
    return name


@pytest.fixture
def namespace(kube: Kube, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace of the test's own, deleted afterwards."""
    name = make_namespace(kube, request.node.name)
    yield name
    kube.delete("v1", "Namespace", name)


@pytest.fixture
def namespace_factory(kube: Kube, request: pytest.FixtureRequest) -> Iterator:
    created: list[str] = []

    def factory(suffix: str = "", labels: dict[str, str] | None = None) -> str:
        created.append(make_namespace(kube, f"{request.node.name}-{suffix}", labels))
        return created[-1]

    yield factory
    for name in created:
        kube.delete("v1", "Namespace", name)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark tests by folder: cluster/ needs a cluster, sim/ starts simulated clusters itself,
    browser/ drives chromium against the dashboard on the cluster (so it is a cluster test too)."""
    root = Path(__file__).parent
    for item in items:
        parents = Path(str(item.fspath)).parents
        if (root / "cluster") in parents or (root / "browser") in parents:
            item.add_marker(pytest.mark.cluster)
        if (root / "browser") in parents:
            item.add_marker(pytest.mark.browser)
        if (root / "sim") in parents:
            item.add_marker(pytest.mark.sim)
