"""Attacks on the grader from inside the sandbox (bubblewrap), and a benign run beside each.

Each attack is a learner's script graded by a check that runs it the way graders run learner
code (``test.learner_script``: labctl.sandbox.run), or a stage of a submitted DVC repository
graded by the real ``dvc.metrics_reproduce``. A script exits 0 only if its attack worked. Every
attack must fail, its check end ``failed`` or ``error`` within its deadline, nothing of the host
change, and the next check of the same run be graded normally. Limits are small to keep it fast.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from graders.core import CheckResult, Context, Status
from graders.engine import CheckCall, Job, run_check, run_jobs
from labctl import sandbox
from labctl.sandbox import bwrap, pod
from tests.graders.s3_server import S3Server, versitygw
from tests.graders.sandbox_attacks import (
    ALLOC_10_GIB,
    DEADLINE_S,
    FILL_DISK,
    FORK_BOMB,
    PRINT_1_GIB,
    REACH_OUT,
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

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")


@pytest.fixture
def grader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    return plant_grader(tmp_path, monkeypatch)


def grade(call: CheckCall, grader: dict[str, Path]) -> list[CheckResult]:
    """The attack, then a benign check, in one run as `labctl grade` runs them."""
    job = Job("mallory", None, (call, benign(grader["hidden"] / "features.csv")))
    started = time.monotonic()
    [(_, results)] = list(run_jobs([job], concurrency=1))
    attacked, after = results
    assert attacked.status in (Status.FAILED, Status.ERROR), attacked
    assert attacked.duration_s < DEADLINE_S + 2, attacked
    assert SECRET not in json.dumps(attacked.to_dict())
    assert after.status is Status.PASSED, after
    assert after.feedback == "predicted 3 rows"
    assert after.evidence["files"] == {"result.txt": "3 rows"}
    assert time.monotonic() - started < 2 * DEADLINE_S + 4
    _no_processes_left(attacked)
    return results


def _no_processes_left(result: CheckResult) -> None:
    """Nothing runs as the run's own uid once its check has ended."""
    found = re.search(r"host uid (\d+)", result.evidence.get("sandbox", ""))
    if not found:
        return
    uid, deadline = found.group(1), time.monotonic() + 3
    while True:
        alive = [p for p in Path("/proc").glob("[0-9]*") if _uid_of(p) == uid and _state(p) != "Z"]
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not alive, f"processes of uid {uid} outlived their check: {[p.name for p in alive]}"


def _uid_of(proc: Path) -> str:
    try:
        return next(
            line.split()[1] for line in (proc / "status").read_text().splitlines() if line[:4] == "Uid:"
        )
    except (OSError, StopIteration):
        return ""


def _state(proc: Path) -> str:
    try:
        return (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


# --- reading what is not theirs -------------------------------------------------------------


def test_cannot_read_the_graders_home_kubeconfig_or_credentials(grader: dict[str, Path]) -> None:
    script = READ_HOME
    [attacked, _] = grade(attack(script, str(grader["home"]), str(grader["kubeconfig"])), grader)
    assert attacked.feedback == "exit 1: nothing to read"
    assert "uid 65534" in attacked.evidence["sandbox"]


def test_cannot_read_the_hidden_labels(grader: dict[str, Path]) -> None:
    script = READ_LABELS
    features = str(grader["hidden"] / "features.csv")
    call = attack(script, str(grader["hidden"]), inputs={"features.csv": features})
    [attacked, _] = grade(call, grader)
    assert attacked.feedback == "exit 1: labels: No such file or directory"


def test_no_service_account_token_even_where_the_grader_has_one(tmp_path: Path) -> None:
    """A grader in a pod has a token mounted at the well-known path; the sandbox does not."""
    if os.geteuid() != 0:
        pytest.skip("mounting a token at the ServiceAccount path needs root (a private mount namespace)")
    token_dir = "/var/run/secrets/kubernetes.io/serviceaccount"
    script = textwrap.dedent(f"""
        import os, sys
        from labctl import sandbox
        assert open("{token_dir}/token").read() == "{SECRET}"  # the grader sees its token
        probe = (
            "import os,sys; p='{token_dir}/token'; print(os.path.exists(p)); "
            "sys.exit(0 if os.path.exists(p) else 3)"
        )
        ran = sandbox.run(["python", "-c", probe], python=True, limits=sandbox.Limits(wall_s=5))
        print(ran.exit_code, ran.stdout.strip())
    """)
    # NB: in a private mount namespace of its own, so the host's /run is never touched
    setup = (
        "mount -t tmpfs tmpfs /run && mkdir -p /run/secrets/kubernetes.io/serviceaccount && "
        f'printf %s {SECRET} > /run/secrets/kubernetes.io/serviceaccount/token && exec "$@"'
    )
    env = {**os.environ, "LABCTL_SANDBOX": "bwrap", "PYTHONPATH": str(Path(__file__).parents[2])}
    proc = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", setup, "sh",
         sys.executable, "-c", script],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "3 False"


# --- writing where it may not ---------------------------------------------------------------


def test_cannot_write_outside_its_scratch_copy(grader: dict[str, Path]) -> None:
    outside = grader["tmp"] / "outside"
    outside.mkdir()
    script = WRITE_OUTSIDE
    [attacked, _] = grade(attack(script, str(outside)), grader)
    assert attacked.feedback == "exit 1: read-only everywhere"
    assert list(outside.iterdir()) == []
    assert not Path("/pwned").exists() and not Path("/usr/pwned").exists()


def test_cannot_fill_the_disk(grader: dict[str, Path]) -> None:
    script = FILL_DISK
    [attacked, _] = grade(attack(script, disk_mb=16), grader)
    assert attacked.feedback == "disk limit (16 MiB)"
    # The scratch is a tmpfs of that size, not the host's disk (whose free space others share here).
    assert "16 MiB scratch" in attacked.evidence["sandbox"]


# --- reaching out ---------------------------------------------------------------------------


@pytest.fixture
def listener() -> Iterator[tuple[int, list[object]]]:
    """A TCP listener on all the grader's addresses (loopback too), recording who connects."""
    server = socket.create_server(("", 0), family=socket.AF_INET)
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


def test_cannot_reach_the_graders_loopback_or_an_api_server(
    grader: dict[str, Path], listener: tuple[int, list[object]]
) -> None:
    port, accepted = listener
    host_ip = _host_ip()
    script = REACH_OUT
    [attacked, _] = grade(attack(script, str(port), host_ip), grader)
    assert attacked.feedback == "exit 1: no route out"
    assert accepted == []
    socket.create_connection(("127.0.0.1", port), timeout=1).close()  # the listener does answer the host
    time.sleep(0.3)
    assert len(accepted) == 1


def _host_ip() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
            return str(probe.getsockname()[0])
        except OSError:
            return "127.0.0.1"


def test_cannot_signal_the_grader(grader: dict[str, Path]) -> None:
    bystander = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        script = SIGNAL
        [attacked, _] = grade(attack(script, str(os.getpid()), str(bystander.pid)), grader)
        assert attacked.status in (Status.FAILED, Status.ERROR)
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


# --- exhausting resources -------------------------------------------------------------------


def test_fork_bomb_is_contained(grader: dict[str, Path]) -> None:
    script = FORK_BOMB
    [attacked, _] = grade(attack(script, processes=16, wall_s=2), grader)
    assert attacked.feedback == "wall-clock limit 2 s"


def test_allocating_10_gib_fails(grader: dict[str, Path]) -> None:
    script = ALLOC_10_GIB
    [attacked, _] = grade(attack(script, memory_mb=256), grader)
    assert attacked.feedback == "memory limit (256 MiB)"


def test_looping_forever_is_stopped_by_the_wall_clock(grader: dict[str, Path]) -> None:
    [attacked, _] = grade(attack("while True:\n    pass\n", wall_s=2, cpu_s=30), grader)
    assert attacked.feedback == "wall-clock limit 2 s"


def test_burning_cpu_is_stopped_by_the_cpu_limit(grader: dict[str, Path]) -> None:
    [attacked, _] = grade(attack("while True:\n    pass\n", wall_s=6, cpu_s=1), grader)
    assert attacked.feedback == "CPU time limit 1 s"


def test_printing_1_gib_is_cut(grader: dict[str, Path]) -> None:
    script = PRINT_1_GIB
    [attacked, _] = grade(attack(script, output_bytes=65536), grader)
    assert attacked.feedback == "output limit 65536 bytes"
    assert attacked.evidence["stdout"].endswith("[labctl sandbox: output cut at 65536 bytes]\n")


# --- the interface --------------------------------------------------------------------------


def test_a_benign_run_passes_with_its_outputs(grader: dict[str, Path]) -> None:
    result = run_check(benign(grader["hidden"] / "features.csv"), Context(learner="ada"))
    assert result.status is Status.PASSED, result
    assert result.evidence["sandbox"].startswith("bubblewrap ")
    assert "no network" in result.evidence["sandbox"]


def test_no_sandbox_is_an_error_never_an_unsandboxed_run(
    grader: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(grader["tmp"]))  # no bwrap on it
    bwrap.version.cache_clear()
    try:
        result = run_check(benign(grader["hidden"] / "features.csv"), Context(learner="ada"))
    finally:
        bwrap.version.cache_clear()
    assert result.status is Status.ERROR
    assert result.feedback.startswith("grader error: cannot sandbox learner code: bwrap")


def test_bad_requests_are_refused() -> None:
    with pytest.raises(ValueError, match="plain file name"):
        sandbox.run(["true"], inputs={"../labels.csv": b""})
    with pytest.raises(ValueError, match="relative path inside the work copy"):
        sandbox.run(["true"], outputs=["../../etc/passwd"])


# --- a submitted repository whose pipeline stage attacks ------------------------------------


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """Started before ``grader`` moves HOME (the server's binary is found under the real one)."""
    with versitygw(tmp_path_factory.mktemp("s3") / "root") as server:
        yield server


def test_a_pipeline_stage_that_attacks_fails_and_the_next_repository_is_graded(
    s3: S3Server, grader: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = pipeline_checks(s3, grader, tmp_path, monkeypatch)
    [(_, (attacked, after))] = list(run_jobs([Job("mallory", None, calls)], concurrency=1))
    assert attacked.status is Status.FAILED, attacked
    assert "every attempt was refused" in attacked.feedback
    assert attacked.evidence["sandbox"].startswith("bubblewrap ")
    assert SECRET not in json.dumps(attacked.to_dict()) and s3.secret_key not in json.dumps(
        attacked.to_dict()
    )
    assert not (grader["home"] / "pwned").exists()
    assert after.status is Status.PASSED, after
    assert after.feedback == "`dvc repro` reproduces score 1 (±0.01)"


# --- pure parts ------------------------------------------------------------------------------


def _plan(tmp_path: Path, host_uid: int | None) -> bwrap.Plan:
    return bwrap.Plan(
        argv=("python", "predict.py"),
        staging=tmp_path,
        host_uid=host_uid,
        python_roots=("/root/.pyenv/versions/3.11.7", "/work/main/.venv"),
        env=(("PATH", "/usr/bin"),),
        limits=sandbox.Limits(disk_mb=64),
    )


def test_the_command_isolates_and_binds_only_what_it_names(tmp_path: Path) -> None:
    cmd = bwrap.command(_plan(tmp_path, host_uid=None))
    assert cmd[0] == "bwrap" and cmd[-2:] == ["python", "predict.py"]
    for flag in ("--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session"):
        assert flag in cmd
    assert "--share-net" not in cmd and "--clearenv" in cmd
    sources = [cmd[i + 1] for i, arg in enumerate(cmd) if arg in ("--bind", "--ro-bind", "--ro-bind-try")]
    assert not [s for s in sources if s.startswith(("/home", "/root/.kube", "/var/run", "/run"))]
    assert "--bind" not in cmd  # nothing of the host is writable
    assert cmd[cmd.index("--tmpfs", cmd.index(str(64 << 20))) + 1] == "/scratch"


def test_as_root_the_python_views_are_mounted_before_dropping_to_the_runs_uid(tmp_path: Path) -> None:
    cmd = bwrap.command(_plan(tmp_path, host_uid=bwrap.UID_BASE + 7))
    assert cmd[:4] == ["unshare", "--mount", "--propagation", "private"]
    launcher_args = cmd[cmd.index("as-root") + 1 : cmd.index("bwrap")]
    assert launcher_args == [
        str(bwrap.UID_BASE + 7), "2",
        "/root/.pyenv/versions/3.11.7", str(tmp_path / "view" / "0"),
        "/work/main/.venv", str(tmp_path / "view" / "1"),
    ]  # fmt: skip
    assert "setpriv" in bwrap.AS_ROOT and "--no-new-privs" in bwrap.AS_ROOT
    binds = [cmd[i + 1 : i + 3] for i, arg in enumerate(cmd) if arg == "--ro-bind"]
    assert [str(tmp_path / "view" / "0"), "/root/.pyenv/versions/3.11.7"] in binds


def test_outputs_come_back_only_as_regular_files_under_the_asked_paths() -> None:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("metrics.json", b"{}"), ("../../etc/passwd", b"x"), ("out/a.txt", b"a")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("model.pkl")
        link.type, link.linkname = tarfile.SYMTYPE, "/inputs/labels.csv"
        tar.addfile(link)
    got = sandbox._common.files_from_tar(
        buf.getvalue(), ["metrics.json", "out", "model.pkl", "../../etc/passwd"]
    )
    assert got == {"metrics.json": b"{}", "out/a.txt": b"a"}


# --- the Pod sandbox, without a cluster -------------------------------------------------------


def _pod_request(**overrides: object) -> pod.Request:
    fields: dict[str, object] = {
        "name": "labctl-sandbox-abc",
        "nonce": "n0nce",
        "image": "labctl.local/labctl-controller:0.1.0",
        "uid": pod.UID_BASE + 5,
        "argv": ("python", "predict.py"),
        "env": (("HOME", "/scratch/home"),),
        "limits": sandbox.Limits(wall_s=30, memory_mb=256, disk_mb=64),
        "wall_s": 30.0,
        "input_names": ("features.csv",),
    }
    return pod.Request(**{**fields, **overrides})  # type: ignore[arg-type]


def test_the_pod_is_restricted_tokenless_offline_and_bounded() -> None:
    spec = pod.render_pod(_pod_request())["spec"]
    [container] = spec["containers"]
    assert spec["automountServiceAccountToken"] is False and spec["enableServiceLinks"] is False
    assert spec["dnsPolicy"] == "None" and not spec.get("hostNetwork") and not spec.get("hostPID")
    assert spec["activeDeadlineSeconds"] == 30 + pod.START_SLACK_S
    assert spec["securityContext"]["runAsUser"] == pod.UID_BASE + 5
    security = container["securityContext"]
    assert security["runAsNonRoot"] and security["readOnlyRootFilesystem"]
    assert security["allowPrivilegeEscalation"] is False and security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    memory = 256 + 64 + pod.streams_mb(_pod_request().limits)  # learner, scratch, captured streams
    assert container["resources"]["limits"] == {
        "cpu": "1",
        "memory": f"{memory}Mi",
        "ephemeral-storage": "64Mi",
    }
    assert container["resources"]["requests"]["ephemeral-storage"] == "64Mi"  # as defaulted, stated
    assert {next(k for k in v if k != "name") for v in spec["volumes"]} == {"emptyDir", "secret"}
    assert spec["volumes"][0]["emptyDir"] == {"medium": "Memory", "sizeLimit": "64Mi"}
    assert container["args"][-2:] == ["python", "predict.py"]


def test_the_sandbox_namespace_enforces_restricted_and_denies_all_traffic() -> None:
    namespace, policy, role, binding = pod.render_namespace()
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert policy["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "namespace": "labctl-system", "name": "labctl-controller"}
    ]
    assert all(r["resources"] != ["*"] for r in role["rules"])


def test_a_work_directory_too_big_for_the_secret_is_an_error() -> None:
    with pytest.raises(sandbox.SandboxUnavailable, match="do not fit the Pod sandbox's Secret"):
        pod.render_secret(_pod_request(), b"x" * (1 << 20), {"features.csv": b""}, [])


class FakeKube:
    """The API as the Pod backend uses it; a created Pod 'runs' its init script in bubblewrap."""

    namespace = "labctl-system"

    def __init__(self, work: Path) -> None:
        self.work, self.objects, self.deleted = work, {}, []  # type: ignore[var-annotated]
        self.log = b""

    def apply(self, obj: dict, **_: object) -> None:
        self.objects[obj["kind"], obj["metadata"]["name"]] = obj

    def create(self, obj: dict) -> dict:
        self.apply(obj)
        if obj["kind"] == "Pod":
            [container] = obj["spec"]["containers"]
            # NB: bubblewrap has no /.streams volume; the scratch stands in for it
            argv = [
                a.replace(pod.STREAMS + "/", "/scratch/.")
                for a in (*container["command"], *container["args"])
            ]
            limits = sandbox.Limits(wall_s=20)
            ran = bwrap.run(argv, work=self.work, inputs={}, outputs=["result.txt"], env={}, limits=limits,
                            python=True, wall_s=20)  # fmt: skip
            self.log = ran.stdout.encode()
        return obj

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict:
        return {"status": {"phase": "Succeeded", "containerStatuses": []}}

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        self.deleted.append((kind, name))
        return True

    def logs(self, namespace: str, pod: str, **_: object) -> bytes:
        return bytes(self.log)


def test_the_pod_backend_runs_and_reads_back_its_frames(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pod.run end to end against a fake API whose Pod runs the real init script (in bubblewrap)."""
    (tmp_path / "predict.py").write_text(
        "import sys\nprint('to stdout')\nprint('to stderr', file=sys.stderr)\n"
        "open('result.txt', 'w').write('3 rows')\nsys.exit(3)\n"
    )
    fake = FakeKube(tmp_path)
    monkeypatch.setattr(pod, "_kube", fake)
    monkeypatch.setenv("LABCTL_SANDBOX_IMAGE", "labctl.local/labctl-controller:0.1.0")
    monkeypatch.setenv("LABCTL_SANDBOX", "pod")
    ran = sandbox.run(["python", "predict.py"], work=tmp_path, outputs=["result.txt"], python=True)
    assert (ran.exit_code, ran.stdout, ran.stderr) == (3, "to stdout\n", "to stderr\n")
    assert ran.files == {"result.txt": b"3 rows"}
    assert ran.where.startswith("pod labctl-sandbox/labctl-sandbox-")
    assert sorted(kind for kind, _ in fake.deleted) == ["Pod", "Secret"]
    assert ("Namespace", "labctl-sandbox") in fake.objects and ("NetworkPolicy", "deny-all") in fake.objects


def test_the_pods_frames_tell_a_wall_clock_kill_and_a_cut_output_from_an_exit() -> None:
    limits = sandbox.Limits(wall_s=2, output_bytes=4)
    frames = "\n".join(
        ["labctl-sandbox n0nce started", "labctl-sandbox n0nce timeout 2003", "labctl-sandbox n0nce exit 137"]
    )
    found = pod.parse_log(frames.encode(), "n0nce", limits, [])
    assert pod._result(found, "Succeeded", None, limits, 2, "pod").reason == "wall-clock limit 2 s"
    frames = (
        "labctl-sandbox n0nce started\nlabctl-sandbox n0nce exit 1\nlabctl-sandbox n0nce out 9\neHh4eA==\n"
    )
    found = pod.parse_log(frames.encode(), "n0nce", limits, [])
    ran = pod._result(found, "Succeeded", None, limits, 2, "pod")
    assert (ran.exit_code, ran.reason) == (None, "output limit 4 bytes")
    assert ran.stdout.startswith("xxxx\n[labctl sandbox: output cut at 4 bytes]")
    forged = "labctl-sandbox other started\nlabctl-sandbox other exit 0\n"  # a learner's own lines
    assert pod.parse_log(forged.encode(), "n0nce", limits, [])["exit"] is None


def test_the_pod_runs_the_images_python() -> None:
    from labctl.localcluster.images import stack

    assert f"{stack.VENV}/bin" == pod.IMAGE_PYTHON_BIN
