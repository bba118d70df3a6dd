"""A real kubelet node in a sim: real pods run on this machine beside the kwok nodes.

Through the real CLI: ``labctl sim up --real-node`` in a state directory of the test's own,
a Deployment of a locally built HTTP image reached by pod IP and by ClusterIP from the
host, a GPU pod that still lands on a kwok GPU node, and a ``down`` that leaves nothing.
Needs root, containerd, runc, the CNI plugins and the node binaries: ``make e2e``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from labctl.kube import Kube, condition_true
from labctl.localcluster.images.gobuild import build_program
from labctl.localcluster.images.oci import File, ImageConfig, write_image
from labctl.localcluster.realnode import cgroups, containerd, dns
from labctl.localcluster.realnode import node as realnode
from labctl.localcluster.realnode.kubelet import NODE_LABEL, record_sysctls
from labctl.localcluster.realnode.layout import BRIDGE, GATEWAY_IP, Layout
from labctl.localcluster.sim import cluster as sim
from tests.conftest import labctl

NAME = "e2e"
NODE = f"{NAME}-node"
SIZES = ["--cpu-nodes", "1", "--gpu-nodes", "1", "--gpus-per-node", "2"]
IMAGE = "labctl.local/hello:e2e"
HELLO_SRC = Path(__file__).parent / "images" / "hello" / "main.go"

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def state(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A short state dir of the test's own (unix socket paths below it must stay short)."""
    root = Path(tempfile.mkdtemp(prefix="labctl-e2e-", dir="/tmp"))
    env = {"LABCTL_STATE_DIR": str(root)}
    monkeypatch.setenv("LABCTL_STATE_DIR", str(root))
    try:
        yield env
    finally:
        labctl("sim", "down", NAME, env=env, check=False)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def hello_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    binary = build_program("hello", {"main.go": HELLO_SRC.read_text()})
    files = [File("/hello", binary.read_bytes(), 0o755)]
    config = ImageConfig(entrypoint=["/hello"], exposed_ports=["8080/tcp"])
    return write_image(tmp_path_factory.mktemp("images") / "hello.tar", IMAGE, files, config)


def _get(url: str, timeout: float = 30) -> str:
    """GET ``url``, retrying until it answers (kube-proxy syncs its rules asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.read().decode().strip()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def _deployment() -> list[dict]:
    labels = {"app": "hello"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "hello", "namespace": "default"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": {NODE_LABEL: NAME},
                    "containers": [
                        {
                            "name": "hello",
                            "image": IMAGE,
                            "imagePullPolicy": "Never",  # there is no registry: imported images only
                            "ports": [{"containerPort": 8080}],
                            # The kubelet probes the pod over the bridge: Ready means pod networking works.
                            "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
                        }
                    ],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "hello", "namespace": "default"},
        "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    return [deployment, service]


def _gpu_pod() -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "train", "namespace": "default"},
        "spec": {
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "containers": [
                {"name": "train", "image": "trainer:v1", "resources": {"limits": {"nvidia.com/gpu": "1"}}}
            ],
        },
    }


def _mounts_under(root: str) -> list[str]:
    return [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines() if root in line]


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_real_node_runs_pods_beside_kwok_nodes(state: dict[str, str], hello_archive: Path) -> None:
    sysctls_before = record_sysctls()
    started = time.monotonic()
    up = labctl("sim", "up", NAME, *SIZES, "--real-node", env=state, timeout=400)
    up_seconds = time.monotonic() - started
    assert f"sim {NAME}: created" in up.stderr, up.stderr
    kube = Kube.connect(kubeconfig=up.stdout.strip())

    nodes = {n["metadata"]["name"]: n for n in kube.list("v1", "Node")}
    assert sorted(nodes) == [f"{NAME}-cpu-0", f"{NAME}-gpu-0", NODE]
    real = nodes[NODE]
    assert condition_true(real, "Ready")
    assert real["status"]["nodeInfo"]["kubeletVersion"] == "v1.36.3"
    assert real["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
    assert "kwok.x-k8s.io/node" not in (real["metadata"].get("annotations") or {})
    assert nodes[f"{NAME}-cpu-0"]["status"]["nodeInfo"]["kubeletVersion"] == "fake"  # kwok still has its own

    again = labctl("sim", "up", NAME, *SIZES, "--real-node", env=state)
    assert f"sim {NAME}: unchanged" in again.stderr, again.stderr

    cluster = sim.find(NAME)
    assert cluster is not None
    assert realnode.load_image(NAME, cluster.directory, hello_archive, IMAGE)
    for obj in _deployment():
        kube.apply(obj)

    def running_pod() -> dict | None:
        pods = kube.list("v1", "Pod", namespace="default", label_selector="app=hello")
        ready = [p for p in pods if p["status"].get("phase") == "Running" and condition_true(p, "Ready")]
        return ready[0] if ready else None

    pod_started = time.monotonic()
    pod = kube.wait_for(running_pod, timeout=90, what="the hello pod to be Running and Ready")
    pod_seconds = time.monotonic() - pod_started
    name, pod_ip = pod["metadata"]["name"], pod["status"]["podIP"]
    assert pod["spec"]["nodeName"] == NODE
    assert pod_ip.startswith("10.244.0.")

    assert _get(f"http://{pod_ip}:8080/") == name  # a real process answers with its pod's hostname
    cluster_ip = kube.get("v1", "Service", "hello", "default")["spec"]["clusterIP"]  # type: ignore[index]
    assert cluster_ip.startswith("10.")
    assert _get(f"http://{cluster_ip}/") == name  # through kube-proxy's rules

    # Cluster DNS: from the host, and from inside the pod through its resolv.conf search path.
    assert dns.query_a("hello.default.svc.cluster.local", GATEWAY_IP) == [cluster_ip]
    assert _get(f"http://{pod_ip}:8080/lookup?host=hello") == cluster_ip

    kube.apply(_gpu_pod())

    def gpu_pod_running() -> dict | None:
        live = kube.get("v1", "Pod", "train", "default") or {}
        return live if (live.get("status") or {}).get("phase") == "Running" else None

    gpu_pod = kube.wait_for(gpu_pod_running, timeout=60, what="the GPU pod to run on a kwok GPU node")
    assert gpu_pod["spec"]["nodeName"] == f"{NAME}-gpu-0"

    node_dir = cluster.directory / "node"
    pids = [int(p.read_text()) for p in (node_dir / "pids").glob("*.pid")]
    assert len(pids) == 4 and all(_alive(p) for p in pids)  # containerd, kubelet, kube-proxy, coredns
    pod_pids = cgroups.pids_in(f"/labctl-{NAME}")
    assert pod_pids  # pause + hello, in the node's own cgroup tree
    layout = Layout(NAME, cluster.directory)
    shims = realnode.shim_pids(layout)
    assert shims  # one containerd-shim per pod, outside that tree
    netns = containerd.sandboxes_netns(layout)
    assert netns and all(Path(ns).exists() for ns in netns)

    down_started = time.monotonic()
    down = labctl("sim", "down", NAME, env=state)
    down_seconds = time.monotonic() - down_started
    assert f"sim {NAME}: deleted" in down.stderr
    assert not [p for p in pids + sorted(pod_pids) + shims if _alive(p)]
    assert not Path(f"/sys/class/net/{BRIDGE}").exists()
    assert not _mounts_under(state["LABCTL_STATE_DIR"])
    assert not [ns for ns in netns if Path(ns).exists()]
    assert not [
        link
        for link in Path("/var/log/containers").glob("*")
        if state["LABCTL_STATE_DIR"] in str(link.resolve())
    ]
    assert not cgroups.pids_in(f"/labctl-{NAME}")
    assert not any(Path(h, f"labctl-{NAME}").exists() for h in cgroups.hierarchies())
    nat = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True, check=True).stdout
    assert "KUBE-SERVICES" not in nat and cluster_ip not in nat
    assert "KUBE-FIREWALL" not in subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    assert record_sysctls() == sysctls_before
    assert not cluster.directory.exists()
    print(
        f"\nsim up --real-node: {up_seconds:.1f}s, pod Ready: {pod_seconds:.1f}s, down: {down_seconds:.1f}s"
    )


def test_missing_host_tools_are_named_before_anything_starts(state: dict[str, str]) -> None:
    """Without containerd & co. on PATH: a non-zero exit naming them and the apt-get line."""
    env = {**state, "PATH": str(Path(sys.executable).parent)}  # the venv only: no containerd, runc, ip
    up = labctl("sim", "up", NAME, *SIZES, "--real-node", env=env, check=False)
    assert up.returncode != 0
    assert "containerd, containerd-shim-runc-v2, ctr, runc" in up.stderr
    assert "apt-get install containerd" in up.stderr
    assert not (Path(state["LABCTL_STATE_DIR"]) / "kwok" / "clusters" / NAME).exists()


def test_a_state_dir_too_deep_for_unix_sockets_is_refused(state: dict[str, str]) -> None:
    deep = Path(state["LABCTL_STATE_DIR"]) / ("d" * 60)
    up = labctl("sim", "up", NAME, *SIZES, "--real-node", env={"LABCTL_STATE_DIR": str(deep)}, check=False)
    assert up.returncode == 2
    assert "too deep for a real node's unix sockets" in up.stderr
    assert "Set LABCTL_STATE_DIR to a shorter path" in up.stderr
    assert not (deep / "kwok" / "clusters" / NAME).exists()
