"""Simulated clusters: a real control plane run by kwokctl's binary runtime, kwok nodes.

kwokctl keeps each cluster under ``$KWOK_WORKDIR/clusters/<name>/``; we point that at
labctl's own state directory so users' ~/.kwok is never touched, and we keep our spec
beside kwokctl's files so ``down`` removes everything in one place.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from labctl.core.errors import LabctlError, MissingBinariesError, UsageError
from labctl.localcluster.processes import alive, stop
from labctl.localcluster.realnode.layout import GATEWAY_IP
from labctl.localcluster.sim import ports
from labctl.localcluster.sim.nodes import KWOK_ANNOTATION
from labctl.localcluster.sim.spec import SimSpec
from labctl.localcluster.toolchain import paths

SPEC_FILE = "labctl-sim.json"
PROVISIONER = "labctl-sim-provisioner"  # its pid file sits with kwokctl's: `down` ends it too
SERVICE_CIDR = "10.96.0.0/12"
KUBERNETES_SERVICE_IP = "10.96.0.1"  # the first address of SERVICE_CIDR
CREATE_TIMEOUT_S = 120
STAGES_DIR = Path(__file__).parent / "stages"
KCM_SYNCED = ("deployment", "replicaset", "resource-quota", "endpoint", "service-endpoint")
KWOK_NODE_SELECTOR = ",".join(f"{key}={value}" for key, value in KWOK_ANNOTATION.items())


@dataclass(frozen=True)
class SimCluster:
    """A simulated cluster as found on disk."""

    spec: SimSpec
    directory: Path
    running: bool

    @property
    def kubeconfig(self) -> Path:
        return self.directory / "kubeconfig.yaml"

    @property
    def context(self) -> str:
        return f"kwok-{self.spec.name}"

    def server(self) -> str:
        try:
            config = yaml.safe_load(self.kubeconfig.read_text())
            return str(config["clusters"][0]["cluster"]["server"])
        except (OSError, KeyError, IndexError, TypeError, yaml.YAMLError):
            return ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.spec.name,
            **self.spec.sizes(),
            "running": self.running,
            "server": self.server(),
            "kubeconfig": str(self.kubeconfig),
        }


def state_root() -> Path:
    """``$LABCTL_STATE_DIR``, else ``$XDG_STATE_HOME/labctl``, else ``~/.local/state/labctl``."""
    if explicit := os.environ.get("LABCTL_STATE_DIR"):
        return Path(explicit)
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "labctl"


def kwok_workdir() -> Path:
    return state_root() / "kwok"


def cluster_dir(name: str) -> Path:
    return kwok_workdir() / "clusters" / name


def _pids(directory: Path) -> dict[str, int]:
    """Component name -> pid, from kwokctl's pid files."""
    found = {}
    for pid_file in (directory / "pids").glob("*.pid"):
        try:
            found[pid_file.stem] = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            continue
    return found


def _running(directory: Path) -> bool:
    pid = _pids(directory).get("kube-apiserver")
    return pid is not None and alive(pid)


def find(name: str) -> SimCluster | None:
    directory = cluster_dir(name)
    try:
        data = json.loads((directory / SPEC_FILE).read_text())
    except (OSError, ValueError):
        return None
    return SimCluster(SimSpec(name=name, **data), directory, _running(directory))


def list_clusters() -> list[SimCluster]:
    root = kwok_workdir() / "clusters"
    found = (find(d.name) for d in sorted(root.iterdir()) if d.is_dir()) if root.is_dir() else ()
    return [c for c in found if c is not None]


def require_binaries() -> dict[str, Path]:
    """The local binaries kwokctl gets, or an error naming the missing ones and the fix."""
    if missing := paths.missing((paths.ETCD, paths.KWOK, paths.KUBERNETES)):
        raise MissingBinariesError(
            f"missing toolchain binaries: {', '.join(missing)} (not in {paths.cache_root() / 'bin'}).\n"
            "Build them with: labctl toolchain build   (or: make toolchain)"
        )
    names = (
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kubectl",
        "kwok",
        "kwokctl",
    )
    return {name: paths.binary(name) for name in names}


def kwokctl_config(binaries: dict[str, Path], name: str) -> dict[str, Any]:
    """The KwokctlConfiguration: binary runtime, local binaries, RBAC and admission on."""
    pki = cluster_dir(name) / "pki"  # kwokctl writes its CA and the admin pair here
    return {
        "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
        "kind": "KwokctlConfiguration",
        "options": {
            "runtime": "binary",
            "kubeAuthorization": True,  # --authorization-mode=Node,RBAC
            "kubeAdmission": True,  # the default admission plugins: PodSecurity, ResourceQuota...
            "securePort": True,
            # Pods reach the API server through the `kubernetes` Service (in-cluster clients
            # verify its ClusterIP): a real node's pods, the in-cluster controller among them.
            "kubeApiserverCertSANs": [KUBERNETES_SERVICE_IP, GATEWAY_IP],
            "etcdBinary": str(binaries["etcd"]),
            "kubeApiserverBinary": str(binaries["kube-apiserver"]),
            "kubeControllerManagerBinary": str(binaries["kube-controller-manager"]),
            "kubeSchedulerBinary": str(binaries["kube-scheduler"]),
            # Every default below would be a download: always pass local binaries.
            "kwokControllerBinary": str(binaries["kwok"]),
            "kubectlBinary": str(binaries["kubectl"]),
            **ports.choose(),  # not kwokctl's scan from 32766: clusters made at once would collide
        },
        "componentsPatches": [
            {
                "name": "kube-apiserver",
                # NodeRestriction is not in the default set; a real cluster has it.
                "extraArgs": [
                    {"key": "enable-admission-plugins", "value": "NodeRestriction"},
                    # The default /24 holds 254 Services: a cohort of ~60 learners with four
                    # stack Services each fills it. A real cluster's range is this size.
                    {"key": "service-cluster-ip-range", "value": SERVICE_CIDR},
                    # `kubectl logs/exec/port-forward` on a real node: the API server calls the
                    # kubelet, which admits clients signed by the sim CA (the admin pair is).
                    {"key": "kubelet-client-certificate", "value": str(pki / "admin.crt")},
                    {"key": "kubelet-client-key", "value": str(pki / "admin.key")},
                    # There is no DNS for node names here; a node's InternalIP always works.
                    {"key": "kubelet-preferred-address-types", "value": "InternalIP,Hostname"},
                ],
            },
            {
                "name": "kube-controller-manager",
                # Large-cluster client limits, as clusters hosting hundreds of learners run with.
                # Kubernetes' defaults (20 requests/s, 5 workers per controller) are sized for
                # small clusters: with them the deployment and replica-set controllers alone need
                # ~10 minutes to start the 2000 pods of a 500-learner cohort, whoever created it.
                "extraArgs": [
                    {"key": "kube-api-qps", "value": "200"},
                    {"key": "kube-api-burst", "value": "400"},
                    *({"key": f"concurrent-{kind}-syncs", "value": "20"} for kind in KCM_SYNCED),
                ],
            },
            {
                "name": "kwok-controller",
                # kwokctl's binary runtime passes --manage-all-nodes=true: kwok would also fake the
                # pods of a real kubelet node. Only take the nodes labctl renders (annotated).
                "extraArgs": [
                    {"key": "manage-all-nodes", "value": "false", "override": True},
                    {"key": "manage-nodes-with-annotation-selector", "value": KWOK_NODE_SELECTOR},
                ],
            },
        ],
    }


def stages() -> list[dict[str, Any]]:
    """kwok's fast stages, with an opt-in delay before a Job's pod completes (see stages/)."""
    return [yaml.safe_load(path.read_text()) for path in sorted(STAGES_DIR.glob("*.yaml"))]


def kwokctl(
    args: list[str],
    *,
    binaries: dict[str, Path],
    timeout: float = CREATE_TIMEOUT_S,
    config: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    # kwokctl prefers any `kubectl` on PATH over the configured one: make that ours.
    path = f"{paths.binary('kubectl').parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "KWOK_WORKDIR": str(kwok_workdir()), "PATH": path}
    cmd = [str(binaries["kwokctl"])]
    if config is not None:
        cmd += ["--config", str(config)]
    try:
        proc = subprocess.run(
            cmd + args,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired:
        raise LabctlError(f"kwokctl {' '.join(args)} did not finish within {timeout:.0f}s") from None
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise LabctlError(f"kwokctl {' '.join(args)} failed (exit {proc.returncode}):\n{tail}")
    return proc


def check_compatible(existing: SimCluster, spec: SimSpec) -> None:
    if existing.spec != spec:
        raise UsageError(
            f"simulated cluster {spec.name!r} already exists with {existing.spec.describe()}; "
            f"asked for {spec.describe()}. Run `labctl sim down {spec.name}` first, or use the same sizes."
        )


def create(spec: SimSpec, binaries: dict[str, Path]) -> SimCluster:
    """Start the control plane with kwokctl; on any failure leave nothing behind."""
    kwok_workdir().mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=kwok_workdir(), delete=False) as fh:
        yaml.safe_dump_all([kwokctl_config(binaries, spec.name), *stages()], fh)
        config = Path(fh.name)
    try:
        kwokctl(
            ["create", "cluster", "--name", spec.name, "--kubeconfig", "", "--wait", "60s"],
            binaries=binaries,
            config=config,
        )
        (cluster_dir(spec.name) / SPEC_FILE).write_text(json.dumps(spec.sizes()))
    except BaseException:
        destroy(spec.name, binaries)
        raise
    finally:
        config.unlink(missing_ok=True)
    cluster = find(spec.name)
    assert cluster is not None
    return cluster


def start(cluster: SimCluster, binaries: dict[str, Path]) -> SimCluster:
    """Restart a cluster whose processes are gone (after a reboot), keeping its data."""
    # kwokctl skips a component whose pid file names a live pid; a dead or zombie process
    # (or a reused pid after a reboot) must not count, so drop those files first.
    running = []
    for component, pid in _pids(cluster.directory).items():
        if alive(pid):
            running.append(component)
        else:
            (cluster.directory / "pids" / f"{component}.pid").unlink(missing_ok=True)
    # A port of ours now held by another process (say, a newer cluster's etcd): starting would
    # wire our components to it. Refuse, and say how to get a working cluster back.
    if busy := ports.taken(ports.saved(cluster.directory), running):
        held = ", ".join(f"{port} ({key})" for key, port in busy.items())
        raise LabctlError(
            f"cannot restart sim {cluster.spec.name!r}: its port(s) {held} are now used by another "
            f"process. Recreate it: labctl sim down {cluster.spec.name} && labctl sim up {cluster.spec.name}"
        )
    kwokctl(["start", "cluster", "--name", cluster.spec.name, "--wait", "60s"], binaries=binaries)
    restarted = find(cluster.spec.name)
    assert restarted is not None
    return restarted


def ensure_provisioner(cluster: SimCluster) -> bool:
    """Start the volume provisioner (see provisioner.py) unless it runs; True when started."""
    pid_file = cluster.directory / "pids" / f"{PROVISIONER}.pid"
    pid = _pids(cluster.directory).get(PROVISIONER)
    if pid is not None and alive(pid):
        return False
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with open(cluster.directory / "logs" / f"{PROVISIONER}.log", "ab") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "labctl.localcluster.sim.provisioner",
                "--kubeconfig",
                str(cluster.kubeconfig),
                "--context",
                cluster.context,
                "--volumes-dir",
                str(cluster.directory / "volumes"),  # removed with the cluster by `down`
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives this command, like kwokctl's components
        )
    pid_file.write_text(str(proc.pid))
    return True


def destroy(name: str, binaries: dict[str, Path] | None = None) -> bool:
    """Stop every process of the cluster and remove its files. False when there was nothing."""
    directory = cluster_dir(name)
    if not directory.exists():
        return False
    from labctl.localcluster.realnode import node as realnode  # lazy: it pulls in the Kubernetes client

    if realnode.exists(directory):
        realnode.teardown(name, directory)  # before the API server goes: its pods first
    pids = _pids(directory)
    kwokctl_bin = paths.binary("kwokctl")
    if binaries or kwokctl_bin.exists():
        # On failure fall through: what is left is stopped by pid below.
        with contextlib.suppress(LabctlError):
            kwokctl(["delete", "cluster", "--name", name], binaries=binaries or {"kwokctl": kwokctl_bin})
    stop(pids.values())
    shutil.rmtree(directory, ignore_errors=True)
    return True
