"""`labctl sim` end to end, through the real CLI: up, idempotent up, refusals, restart, down.

Runs in its own state directory with a small cluster of its own, so it never touches the
session's test cluster or a developer's clusters.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from labctl.kube import Kube
from labctl.localcluster.processes import stop
from labctl.localcluster.sim import cluster as sim
from tests.conftest import labctl

NAME = "lifecycle"
SIZES = ["--cpu-nodes", "1", "--gpu-nodes", "1", "--gpus-per-node", "2"]


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _port_open(server: str) -> bool:
    url = urlparse(server)
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((url.hostname or "127.0.0.1", url.port or 443)) == 0


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {"LABCTL_STATE_DIR": str(tmp_path / "state")}
    monkeypatch.setenv("LABCTL_STATE_DIR", env["LABCTL_STATE_DIR"])
    yield env
    labctl("sim", "down", NAME, env=env, check=False)


def test_sim_lifecycle(state: dict[str, str]) -> None:
    up = labctl("sim", "up", NAME, *SIZES, env=state)
    kubeconfig = up.stdout.strip()
    assert f"sim {NAME}: created" in up.stderr
    assert kubeconfig == labctl("sim", "kubeconfig", NAME, env=state).stdout.strip()

    kube = Kube.connect(kubeconfig=kubeconfig)
    assert kube.server_version() == "v1.36.3"
    nodes = {n["metadata"]["name"]: n for n in kube.list("v1", "Node")}
    assert sorted(nodes) == [f"{NAME}-cpu-0", f"{NAME}-gpu-0"]
    assert nodes[f"{NAME}-gpu-0"]["status"]["allocatable"]["nvidia.com/gpu"] == "2"
    # Room for thousands of Services (a cohort of hundreds has four stack Services each), not 254.
    assert kube.get("v1", "Service", "kubernetes", "default")["spec"]["clusterIP"] == "10.96.0.1"
    # Ports of its own (random, not kwokctl's scan from 32766 that two clusters could share).
    assert 20000 <= (urlparse(kube.configuration.host).port or 0) < 32000
    # The controller-manager runs with large-cluster client limits.
    pid = (sim.cluster_dir(NAME) / "pids" / "kube-controller-manager.pid").read_text().strip()
    kcm_args = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    assert {"--kube-api-qps=200", "--concurrent-replicaset-syncs=20"} <= set(kcm_args)

    again = labctl("sim", "up", NAME, *SIZES, env=state)
    assert f"sim {NAME}: unchanged" in again.stderr
    assert again.stdout.strip() == kubeconfig

    other = labctl("sim", "up", NAME, "--cpu-nodes", "4", env=state, check=False)
    assert other.returncode == 2
    assert f"simulated cluster '{NAME}' already exists with 1 CPU node(s), 1 GPU node(s) x 2 GPU(s)" in (
        other.stderr
    )
    assert len(kube.list("v1", "Node")) == 2  # nothing changed

    listed = json.loads(labctl("sim", "list", "-o", "json", env=state).stdout)
    assert [(c["name"], c["running"], c["cpu_nodes"], c["gpu_nodes"]) for c in listed] == [(NAME, True, 1, 1)]
    assert yaml.safe_load(labctl("sim", "list", "-o", "yaml", env=state).stdout)[0]["name"] == NAME

    assert_claims_bind_and_volumes_are_reclaimed(kube)

    cluster = sim.find(NAME)
    assert cluster is not None
    server, pids = cluster.server(), list(sim._pids(cluster.directory).values())
    assert len(pids) == 6 and all(_alive(p) for p in pids)  # kwokctl's five + the provisioner
    assert _port_open(server)

    down = labctl("sim", "down", NAME, env=state)
    assert f"sim {NAME}: deleted" in down.stderr
    assert not any(_alive(p) for p in pids)
    assert not _port_open(server)
    assert not cluster.directory.exists()
    assert list((Path(state["LABCTL_STATE_DIR"]) / "kwok" / "clusters").iterdir()) == []

    gone = labctl("sim", "down", NAME, env=state)
    assert f"sim {NAME}: not found, nothing to do" in gone.stderr


def test_up_restarts_a_cluster_whose_processes_died(state: dict[str, str]) -> None:
    labctl("sim", "up", NAME, *SIZES, env=state)
    cluster = sim.find(NAME)
    assert cluster is not None
    stop(sim._pids(cluster.directory).values())  # as after a reboot
    assert sim.find(NAME).running is False  # type: ignore[union-attr]

    started = time.monotonic()
    up = labctl("sim", "up", NAME, *SIZES, env=state)
    assert f"sim {NAME}: started" in up.stderr
    assert time.monotonic() - started < 60
    kube = Kube.connect(kubeconfig=up.stdout.strip())
    assert len(kube.list("v1", "Node")) == 2
    assert os.path.exists(up.stdout.strip())
    assert_claims_bind_and_volumes_are_reclaimed(kube)  # the provisioner came back too


def assert_claims_bind_and_volumes_are_reclaimed(kube: Kube) -> None:
    """A claim with no class gets the sim's default class, binds, and its volume goes with it."""
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": f"data-{time.monotonic_ns()}", "namespace": "default"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "3Gi"}}},
    }
    name = claim["metadata"]["name"]
    kube.create(claim)

    def bound() -> dict | None:
        live = kube.get("v1", "PersistentVolumeClaim", name, "default") or {}
        return live if (live.get("status") or {}).get("phase") == "Bound" else None

    live = kube.wait_for(bound, timeout=30, what=f"claim {name} to bind")
    assert live["spec"]["storageClassName"] == "labctl-sim"
    volume = kube.get("v1", "PersistentVolume", live["spec"]["volumeName"])
    assert volume is not None and volume["spec"]["capacity"]["storage"] == "3Gi"
    assert volume["spec"]["claimRef"]["uid"] == live["metadata"]["uid"]
    # Its directory on this machine, writable by any pod's user (a real node mounts it).
    directory = Path(volume["spec"]["hostPath"]["path"])
    assert directory.is_dir() and directory.stat().st_mode & 0o777 == 0o777

    kube.delete("v1", "PersistentVolumeClaim", name, "default")
    kube.wait_for(
        lambda: kube.get("v1", "PersistentVolume", volume["metadata"]["name"]) is None,
        timeout=60,
        what=f"volume {volume['metadata']['name']} to be reclaimed",
    )
    kube.wait_for(lambda: not directory.exists(), timeout=10, what=f"{directory} to be removed")
