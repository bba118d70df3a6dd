"""A learner's disk, on the real node: a pod that writes past its ephemeral-storage limit is
evicted by the kubelet, alone; the quota refuses a pod it has no room for.

A sim whose only node is the real one, the stack images loaded, the controller as a local
process, one learner of a small-profile cohort with their stacks running. Every pod below is
created with the kubeconfig ``labctl learner kubeconfig`` gave the learner.

How fast: the kubelet's eviction manager looks every 10 s (``evictionMonitoringPeriod``, fixed
in the kubelet). A container's writable layer is measured by containerd's CRI stats (its
snapshot usage, collected every 10 s); an emptyDir by the kubelet's volume stats, refreshed
every 1-2x ``volumeStatsAggPeriod`` (10 s on this node: labctl/localcluster/realnode/kubelet.py; 1 min by
default on other clusters). Needs root: ``make e2e``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from labctl.kube import Kube, KubeError
from labctl.provision.quota import profile
from labctl.provision.stacks.settings import parse_quantity
from tests.conftest import LABCTL, labctl
from tests.e2e.machine import wait_for_machine_lock
from tests.helpers.processes import stop_group

NAME = "e2edisk"
EMAIL = "ada@uni.edu"
SETTINGS = Path(__file__).parents[2] / "manifests" / "stack-settings" / "local-images.yaml"
STACK_IMAGES = ["object-store", "prometheus", "alertmanager", "config-reloader", "mlflow"]
# Debian minbase (sh, dd, sleep) under versitygw: the smallest image the stacks already load.
TOOLS_IMAGE = "labctl.local/versitygw:1.8.0"
SMALL = profile("small")
LIMIT = "64Mi"  # each filler's ephemeral-storage limit; it writes twice that
# The emptyDir writer is seen after at most ~40 s: its volumes are first measured when the
# kubelet's volume-stats loop finds the pod (every 10 s), then every 10-20 s; the eviction
# manager looks every 10 s. Twice that, for a loaded machine.
EVICTION_DEADLINE = 90

pytestmark = pytest.mark.timeout(1800)


@dataclass
class Learner:
    kube: Kube  # with the learner's own kubeconfig
    namespace: str
    admin: Kube


@pytest.fixture(scope="module")
def learner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Learner]:
    labctl("images", "build", *STACK_IMAGES, timeout=7200)
    root = Path(tempfile.mkdtemp(prefix="labctl-e2edisk-", dir="/tmp"))
    env = {"LABCTL_STATE_DIR": str(root)}
    wait_for_machine_lock()
    controller = None
    try:
        started = time.monotonic()
        sizes = ["--cpu-nodes", "0", "--gpu-nodes", "0"]  # every pod runs on the real node
        kubeconfig = labctl("sim", "up", NAME, "--real-node", *sizes, env=env, timeout=400).stdout.strip()
        labctl("images", "load", *STACK_IMAGES, "--sim", NAME, env=env, timeout=1800)
        kc = ["--kubeconfig", kubeconfig]
        labctl("install", "--local-controller", *kc, env=env)
        with (root / "controller.log").open("ab") as log:
            controller = subprocess.Popen(
                [*LABCTL, "controller", "run", "--stack-settings", str(SETTINGS), *kc],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **env},
            )  # fmt: skip
        roster = tmp_path_factory.mktemp("roster") / "roster.csv"
        roster.write_text(f"email,name\n{EMAIL},Ada Lovelace\n")
        labctl(
            "cohort", "create", NAME, "--roster", str(roster), "--level", "foundation",
            "--quota-profile", SMALL.name, "--wait", "--timeout", "15m", *kc, env=env, timeout=1000,
        )  # fmt: skip
        out = root / "learner.kubeconfig"
        labctl("learner", "kubeconfig", NAME, EMAIL, "--out", str(out), *kc, env=env)
        admin = Kube.connect(kubeconfig=kubeconfig)
        (record,) = admin.list("labctl.dev/v1alpha1", "Learner")
        print(f"\n  learner Ready on the real node: {time.monotonic() - started:.0f}s")
        yield Learner(Kube.connect(kubeconfig=str(out)), record["status"]["namespace"], admin)
    finally:
        if controller is not None:
            stop_group(controller)
        labctl("sim", "down", NAME, env=env, check=False, timeout=300)
        shutil.rmtree(root, ignore_errors=True)


RESTRICTED_POD = {"runAsNonRoot": True, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}}
RESTRICTED_CONTAINER = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def learner_pod(
    name: str, namespace: str, script: str, *, disk: tuple[str, str] | None = None,
    volumes: list[dict[str, Any]] | None = None, mounts: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """A restricted pod as a learner writes it; ``disk``: its ephemeral-storage (request, limit)."""
    container: dict[str, Any] = {
        "name": "main",
        "image": TOOLS_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", script],
        "securityContext": RESTRICTED_CONTAINER,
        "volumeMounts": mounts or [],
    }
    if disk:  # else the LimitRange's defaults
        request, limit = disk
        container["resources"] = {
            "requests": {"cpu": "50m", "memory": "32Mi", "ephemeral-storage": request},
            "limits": {"cpu": "200m", "memory": "64Mi", "ephemeral-storage": limit},
        }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "securityContext": RESTRICTED_POD,
            "containers": [container],
            "volumes": volumes or [],
        },
    }


def fill(path: str) -> str:
    """Write twice the limit to ``path``, say so, and stay: only the kubelet ends this pod."""
    mib = int(parse_quantity(LIMIT) * 2 / 2**20)
    return f"dd if=/dev/zero of={path} bs=1M count={mib} 2>&1 && echo written && sleep 3600"


def snapshot(kube: Kube, namespace: str) -> dict[str, tuple[str, str, int, bool]]:
    """name -> (uid, phase, restarts, ready) of every pod in the namespace."""
    out = {}
    for p in kube.list("v1", "Pod", namespace=namespace):
        statuses = (p.get("status") or {}).get("containerStatuses") or []
        out[p["metadata"]["name"]] = (
            p["metadata"]["uid"],
            p["status"]["phase"],
            sum(s["restartCount"] for s in statuses),
            bool(statuses) and all(s["ready"] for s in statuses),
        )
    return out


def disk_pressure(admin: Kube) -> list[str]:
    return [
        n["metadata"]["name"]
        for n in admin.list("v1", "Node")
        for c in n["status"].get("conditions") or []
        if c["type"] == "DiskPressure" and c["status"] == "True"
    ]


def forbidden(call: Callable[[], Any]) -> str:
    """Run ``call``; the API server must refuse it (403). Its message."""
    with pytest.raises((KubeError, ApiException)) as refused:
        call()
    assert getattr(refused.value, "status", None) == 403, str(refused.value)
    return str(refused.value)


def test_the_quota_refuses_a_pod_it_has_no_room_for(learner: Learner) -> None:
    """First: the quota's usage is exact while nothing but the stacks has come and gone."""
    kube, ns = learner.kube, learner.namespace
    quota = kube.get("v1", "ResourceQuota", "labctl-quota", ns)
    assert quota is not None
    hard, used = quota["status"]["hard"], quota["status"]["used"]
    key = "requests.ephemeral-storage"
    room = parse_quantity(hard[key]) - parse_quantity(used[key])
    assert 0 < room < parse_quantity(SMALL.ephemeral.requests)  # the stacks hold some of it
    over = f"{int(room / 2**20) + 1}Mi"  # one MiB more than is left
    greedy = learner_pod("greedy", ns, "sleep 3600", disk=(over, over))
    message = forbidden(lambda: kube.create(greedy))
    assert "exceeded quota: labctl-quota" in message
    assert f"requested: {key}={over}" in message and f"limited: {key}={hard[key]}" in message
    assert kube.get("v1", "Pod", "greedy", ns) is None


def _timing(written: float | None, evicted: tuple[float, Any] | None, created: float) -> str:
    wrote = f"written {written - created:.1f}s" if written else "never wrote it all"
    return (
        f"{wrote}, evicted {evicted[0] - created:.1f}s after create" if evicted else f"{wrote}, not evicted"
    )


def test_a_pod_writing_past_its_limit_is_evicted_alone(learner: Learner) -> None:
    kube, ns = learner.kube, learner.namespace
    stacks = snapshot(kube, ns)
    assert len(stacks) == 4 and all(phase == "Running" and ready for _, phase, _, ready in stacks.values())
    kube.create(learner_pod("bystander", ns, "echo up && sleep 3600"))  # the LimitRange's defaults
    kube.wait_for(lambda: snapshot(kube, ns).get("bystander", ("", "", 0, False))[3], timeout=120,
                  what="pod bystander to run")  # fmt: skip
    # One writes to its container's writable layer, one to an emptyDir without a size limit:
    # both are the node's disk, both count against the container's limit.
    scratch = [{"name": "scratch", "emptyDir": {}}]
    fillers = {
        "fill-layer": learner_pod("fill-layer", ns, fill("/tmp/fill"), disk=("16Mi", LIMIT)),
        "fill-emptydir": learner_pod(
            "fill-emptydir", ns, fill("/scratch/fill"), disk=("16Mi", LIMIT), volumes=scratch,
            mounts=[{"name": "scratch", "mountPath": "/scratch"}],
        ),
    }  # fmt: skip
    created = time.monotonic()
    for pod in fillers.values():
        kube.create(pod)
    written: dict[str, float] = {}
    evicted: dict[str, tuple[float, dict[str, Any]]] = {}
    deadline = created + EVICTION_DEADLINE
    while len(evicted) < len(fillers) and time.monotonic() < deadline:
        for name in set(fillers) - set(evicted):
            status = (kube.get("v1", "Pod", name, ns) or {}).get("status") or {}
            if name not in written and status.get("phase") == "Running":
                logs = kube.logs(ns, name).decode(errors="replace")
                if "written" in logs:
                    written[name] = time.monotonic()
            if status.get("phase") == "Failed":
                evicted[name] = (time.monotonic(), status)
        time.sleep(0.5)
    timings = {name: _timing(written.get(name), evicted.get(name), created) for name in fillers}
    messages = {name: status.get("message", "") for name, (_, status) in evicted.items()}
    print("\n" + "\n".join(f"  {name}: {t}; {messages.get(name, '')}" for name, t in timings.items()))
    assert set(evicted) == set(fillers), f"not evicted within {EVICTION_DEADLINE}s: {timings}"
    # For its own limit (the kubelet's pod-level check, or its container-level one), not because
    # the node ran low ("The node was low on resource"), which would evict others too.
    own_limit = (
        f"Pod ephemeral local storage usage exceeds the total limit of containers {LIMIT}.",
        f'Container main exceeded its local ephemeral storage limit "{LIMIT}".',
    )
    for name, (_, status) in evicted.items():
        assert status.get("reason") == "Evicted", (name, status)
        assert status.get("message", "").startswith(own_limit), (name, status.get("message"))
    # Alone: the learner's stacks and their other pod run on, not restarted; the node is fine.
    after = snapshot(kube, ns)
    for name, (uid, _, restarts, _) in {**stacks, "bystander": after["bystander"]}.items():
        assert after[name][0] == uid and after[name][1] == "Running" and after[name][2] == restarts, (
            name, after[name],
        )  # fmt: skip
    assert not disk_pressure(learner.admin)
    for name in ("bystander", *fillers):
        kube.delete("v1", "Pod", name, ns)
