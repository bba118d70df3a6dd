"""The Pod sandbox on the real node: the attacks of the bubblewrap tests, and a benign run beside each.

The grader is this process with the Pod backend forced (``LABCTL_SANDBOX=pod``), the controller's
image as the sandbox's (loaded into the sim as `labctl install` would run it), and the sim's admin
connection as the grader's (the in-cluster controller uses its ServiceAccount's: the Pod never sees
either). Every learner script runs in a short-lived Pod in ``labctl-sandbox`` on the real node.

Network attempts are judged as the guard-rails are: the bridge CNI here does not enforce
NetworkPolicy, so a Pod may open a connection to the API server; what is shown is that it has no
credential to send (the API server refuses it), that the grader's loopback is not the Pod's, and
the effect of the namespace's deny-all policy is computed from the live objects. On a cluster that
enforces NetworkPolicy (``LABCTL_TEST_NETWORKPOLICY=enforced``) the API server must be unreachable.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from graders.core import CheckResult, Context, Status
from graders.engine import CheckCall, Job, run_check, run_jobs
from labctl.kube import Kube
from labctl.provision.stacks.local_images import LOCAL_IMAGES
from labctl.sandbox import pod
from tests.conftest import labctl
from tests.e2e.machine import wait_for_machine_lock
from tests.graders.s3_server import S3Server, versitygw
from tests.graders.sandbox_attacks import (
    ALLOC_10_GIB,
    FILL_DISK,
    FORK_BOMB,
    PRINT_1_GIB,
    REACH_API,
    READ_HOME,
    READ_LABELS,
    SECRET,
    SIGNAL,
    WRITE_OUTSIDE,
    attack,
    benign,
    pipeline_checks,
    plant_grader,
)

NAME = "e2esbx"
# A Pod's start (schedule, sandbox, image already on the node) comes before the learner's wall clock.
DEADLINE_S = 30.0
# A cluster given by LABCTL_TEST_KUBECONFIG whose CNI enforces NetworkPolicy (Calico, Cilium, …):
# set LABCTL_TEST_NETWORKPOLICY=enforced and network attempts are judged by their traffic.
ENFORCED = os.environ.get("LABCTL_TEST_NETWORKPOLICY") == "enforced"

pytestmark = pytest.mark.timeout(1800)


@pytest.fixture(scope="module")
def admin() -> Iterator[Kube]:
    """A real-node sim with the controller's image loaded (or the cluster LABCTL_TEST_KUBECONFIG
    names, with the image LABCTL_SANDBOX_IMAGE names); the admin connection to it."""
    if os.environ.get("LABCTL_TEST_KUBECONFIG"):
        yield Kube.connect(kubeconfig=os.environ["LABCTL_TEST_KUBECONFIG"])
        return
    labctl("images", "build", "controller", timeout=7200)
    root = Path(tempfile.mkdtemp(prefix="labctl-e2esbx-", dir="/tmp"))
    env = {"LABCTL_STATE_DIR": str(root)}
    wait_for_machine_lock()
    try:
        sizes = ["--cpu-nodes", "0", "--gpu-nodes", "0"]
        kubeconfig = labctl("sim", "up", NAME, "--real-node", *sizes, env=env, timeout=400).stdout.strip()
        labctl("images", "load", "controller", "--sim", NAME, env=env, timeout=1800)
        yield Kube.connect(kubeconfig=kubeconfig)
    finally:
        labctl("sim", "down", NAME, env=env, check=False, timeout=300)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def grader(admin: Kube, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """The grader's side (a home with secrets, hidden labels), its sandbox the Pod backend."""
    monkeypatch.setattr(pod, "_kube", admin)
    monkeypatch.setenv("LABCTL_SANDBOX", "pod")
    monkeypatch.setenv(
        "LABCTL_SANDBOX_IMAGE", os.environ.get("LABCTL_SANDBOX_IMAGE", LOCAL_IMAGES["controller"])
    )
    return plant_grader(tmp_path, monkeypatch)


def grade(call: CheckCall, grader: dict[str, Path], admin: Kube) -> list[CheckResult]:
    """The attack, then a benign check, in one run as the controller runs them."""
    job = Job("mallory", None, (call, benign(grader["hidden"] / "features.csv", timeout_s=DEADLINE_S)))
    started = time.monotonic()
    [(_, results)] = list(run_jobs([job], concurrency=1))
    attacked, after = results
    print(f"\n  attack: {attacked.status.value} in {attacked.duration_s:.1f}s: {attacked.feedback}")
    assert attacked.status in (Status.FAILED, Status.ERROR), attacked
    assert attacked.duration_s < DEADLINE_S + 2, attacked
    assert attacked.evidence["sandbox"].startswith("pod labctl-sandbox/"), attacked.evidence
    assert SECRET not in json.dumps(attacked.to_dict())
    assert after.status is Status.PASSED, after
    assert after.feedback == "predicted 3 rows"
    assert after.evidence["files"] == {"result.txt": "3 rows"}
    assert time.monotonic() - started < 2 * DEADLINE_S + 4
    _nothing_left(admin)
    return results


def _nothing_left(admin: Kube) -> None:
    """Each run deletes its Pod and Secret (a Pod's deletion may take a moment to finish)."""
    deadline = time.monotonic() + 30
    while True:
        left = [
            f"{kind}/{o['metadata']['name']}"
            for kind in ("Pod", "Secret")
            for o in admin.list("v1", kind, namespace=pod.NAMESPACE)
            if o["metadata"]["name"].startswith("labctl-sandbox-")
        ]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert not left, f"the sandbox left {left}"


def pod_attack(script: str, *args: str, **params: object) -> CheckCall:
    return attack(script, *args, timeout_s=DEADLINE_S, **params)


# --- reading what is not theirs -------------------------------------------------------------


def test_cannot_read_the_graders_home_kubeconfig_or_credentials(grader: dict[str, Path], admin: Kube) -> None:
    call = pod_attack(READ_HOME, str(grader["home"]), str(grader["kubeconfig"]))
    [attacked, _] = grade(call, grader, admin)
    assert attacked.feedback == "exit 1: nothing to read"


def test_cannot_read_the_hidden_labels(grader: dict[str, Path], admin: Kube) -> None:
    features = str(grader["hidden"] / "features.csv")
    call = pod_attack(READ_LABELS, str(grader["hidden"]), inputs={"features.csv": features})
    [attacked, _] = grade(call, grader, admin)
    assert attacked.feedback == "exit 1: labels: No such file or directory"


TOKEN = """
sa = "secrets/kubernetes.io/serviceaccount/token"
paths = [f"/var/run/{sa}", f"/run/{sa}"]
found = [p for p in paths if os.path.exists(p)] + [k for k in os.environ if "TOKEN" in k]
if found:
    print(found)
    sys.exit(0)
sys.exit("no token")
"""


def test_the_pod_has_no_service_account_token(grader: dict[str, Path], admin: Kube) -> None:
    [attacked, _] = grade(pod_attack(TOKEN), grader, admin)
    assert attacked.feedback == "exit 1: no token"


# --- writing where it may not ---------------------------------------------------------------


def test_cannot_write_outside_its_scratch_copy(grader: dict[str, Path], admin: Kube) -> None:
    outside = grader["tmp"] / "outside"
    outside.mkdir()
    [attacked, _] = grade(pod_attack(WRITE_OUTSIDE, str(outside)), grader, admin)
    assert attacked.feedback == "exit 1: read-only everywhere"
    assert list(outside.iterdir()) == []


def test_cannot_fill_the_disk(grader: dict[str, Path], admin: Kube) -> None:
    [attacked, _] = grade(pod_attack(FILL_DISK, disk_mb=16), grader, admin)
    assert attacked.feedback == "disk limit (16 MiB)"


# --- reaching out ---------------------------------------------------------------------------


@pytest.fixture
def listener() -> Iterator[tuple[int, list[object]]]:
    """A TCP listener on the grader's loopback, recording who connects."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    accepted: list[object] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, peer = server.accept()
            except OSError:
                continue
            accepted.append(peer)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    stop.set()
    thread.join()
    server.close()


def test_no_credential_reaches_the_api_server_and_the_graders_loopback_is_not_its_own(
    grader: dict[str, Path], admin: Kube, listener: tuple[int, list[object]]
) -> None:
    port, accepted = listener
    [attacked, _] = grade(pod_attack(REACH_API, str(port)), grader, admin)
    assert attacked.feedback.endswith("no credential, no loopback"), attacked.feedback
    api = attacked.evidence["stderr"].strip().splitlines()[0]
    print(f"  the API server, as the sandbox's Pod met it: {api}")
    if ENFORCED:
        # Judged by traffic: the deny-all policy lets no packet out of the Pod.
        assert api == "api: unreachable", api
    else:
        # Anonymous (no token to send): refused, or no route where the node's proxy has none.
        assert api in ("api: HTTP 401", "api: HTTP 403", "api: unreachable"), api
    assert accepted == []


def egress_allowed(policies: list[dict[str, Any]], labels: dict[str, str]) -> bool:
    """What NetworkPolicy semantics give a pod with ``labels``: egress is open unless a policy
    selecting it has policyTypes Egress, and then only where one of those has an egress rule."""
    selecting = [
        p
        for p in policies
        if all(
            labels.get(k) == v for k, v in (p["spec"].get("podSelector") or {}).get("matchLabels", {}).items()
        )
        and not (p["spec"].get("podSelector") or {}).get("matchExpressions")
    ]
    limiting = [p for p in selecting if "Egress" in p["spec"].get("policyTypes", [])]
    return not limiting or any(p["spec"].get("egress") for p in limiting)


def test_the_namespaces_policy_denies_the_sandbox_pods_all_egress(
    grader: dict[str, Path], admin: Kube
) -> None:
    run_check(benign(grader["hidden"] / "features.csv", timeout_s=DEADLINE_S), Context(learner="ada"))
    policies = admin.list("networking.k8s.io/v1", "NetworkPolicy", namespace=pod.NAMESPACE)
    assert policies, "the sandbox namespace has no NetworkPolicy"
    assert egress_allowed(policies, {}) is False
    assert egress_allowed(policies, dict(pod.LABELS)) is False
    assert egress_allowed([], dict(pod.LABELS)) is True  # the rule itself: no policy, no limit
    namespace = admin.get("v1", "Namespace", pod.NAMESPACE) or {}
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_cannot_signal_the_grader(grader: dict[str, Path], admin: Kube) -> None:
    bystander = subprocess.Popen(["sleep", "120"], start_new_session=True)
    try:
        grade(pod_attack(SIGNAL, str(os.getpid()), str(bystander.pid)), grader, admin)
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


# --- exhausting resources -------------------------------------------------------------------


def test_fork_bomb_is_contained(grader: dict[str, Path], admin: Kube) -> None:
    [attacked, _] = grade(pod_attack(FORK_BOMB, processes=16, wall_s=2), grader, admin)
    assert attacked.feedback == "wall-clock limit 2 s"


def test_allocating_10_gib_fails(grader: dict[str, Path], admin: Kube) -> None:
    [attacked, _] = grade(pod_attack(ALLOC_10_GIB, memory_mb=256), grader, admin)
    assert attacked.feedback == "memory limit (256 MiB)"


def test_looping_forever_is_stopped_by_the_wall_clock(grader: dict[str, Path], admin: Kube) -> None:
    [attacked, _] = grade(pod_attack("while True:\n    pass\n", wall_s=2, cpu_s=30), grader, admin)
    assert attacked.feedback == "wall-clock limit 2 s"


def test_burning_cpu_is_stopped_by_the_cpu_limit(grader: dict[str, Path], admin: Kube) -> None:
    [attacked, _] = grade(pod_attack("while True:\n    pass\n", wall_s=6, cpu_s=1), grader, admin)
    assert attacked.feedback == "CPU time limit 1 s"


def test_printing_1_gib_is_cut(grader: dict[str, Path], admin: Kube) -> None:
    [attacked, _] = grade(pod_attack(PRINT_1_GIB, output_bytes=65536), grader, admin)
    assert attacked.feedback == "output limit 65536 bytes"
    assert attacked.evidence["stdout"].endswith("[labctl sandbox: output cut at 65536 bytes]\n")


# --- a submitted repository whose pipeline stage attacks ------------------------------------


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with versitygw(tmp_path_factory.mktemp("s3") / "root") as server:
        yield server


def test_a_pipeline_stage_that_attacks_fails_and_a_benign_one_reproduces(
    s3: S3Server, grader: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, admin: Kube
) -> None:
    """The grader pulls with the learner's store credentials; the stages run in the Pod."""
    calls = pipeline_checks(s3, grader, tmp_path, monkeypatch, timeout_s=120)
    [(_, (attacked, after))] = list(run_jobs([Job("mallory", None, calls)], concurrency=1))
    assert attacked.status is Status.FAILED, attacked
    assert "every attempt was refused" in attacked.feedback
    assert attacked.evidence["sandbox"].startswith("pod labctl-sandbox/")
    assert SECRET not in json.dumps(attacked.to_dict()) and s3.secret_key not in json.dumps(
        attacked.to_dict()
    )
    assert not (grader["home"] / "pwned").exists()
    assert after.status is Status.PASSED, after
    assert after.feedback == "`dvc repro` reproduces score 1 (±0.01)"
    assert after.evidence["sandbox"].startswith("pod labctl-sandbox/")
    _nothing_left(admin)
