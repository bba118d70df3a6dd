"""Attacks on the grader from inside the sandbox (bubblewrap), and a benign run beside each.

Each attack is a learner's script graded by a check that runs it the way graders run learner
code (``test.learner_script``: graders.sandbox.run), or a stage of a submitted DVC repository
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
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import Field

from graders import sandbox
from graders.core import REGISTRY, CheckResult, Context, Outcome, Params, Status, check
from graders.engine import CheckCall, Job, run_check, run_jobs
from graders.sandbox import bwrap, pod
from tests.graders.s3_server import S3Server, versitygw

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
SECRET = "s3cr3t-grader-token-7f1d"
DEADLINE_S = 8.0


class ScriptParams(Params):
    script: str
    args: tuple[str, ...] = ()
    inputs: dict[str, str] = Field(default_factory=dict)  # name in /inputs -> the grader's file
    wall_s: float = 4
    cpu_s: int = 4
    memory_mb: int = 512
    disk_mb: int = 16
    processes: int = 32
    output_bytes: int = 65536


def _learner_script(ctx: Context, params: ScriptParams) -> Outcome:
    """The learner's script exits 0 in the sandbox."""
    limits = sandbox.Limits(
        wall_s=params.wall_s,
        cpu_s=params.cpu_s,
        memory_mb=params.memory_mb,
        disk_mb=params.disk_mb,
        processes=params.processes,
        output_bytes=params.output_bytes,
    )
    with tempfile.TemporaryDirectory() as work:
        (Path(work) / "learner.py").write_text(params.script)
        inputs = {name: Path(path).read_bytes() for name, path in params.inputs.items()}
        ran = sandbox.run(
            ["python", "learner.py", *params.args],
            work=Path(work),
            inputs=inputs,
            outputs=["result.txt"],
            limits=limits,
            python=True,
            deadline_s=ctx.remaining(),
        )
    evidence = {"sandbox": ran.where, "stdout": ran.stdout[-2000:], "stderr": ran.stderr[-2000:]}
    evidence["files"] = {k: v.decode(errors="replace") for k, v in ran.files.items()}
    if ran.ok:
        return Outcome(True, ran.stdout.strip()[-200:] or "ran", evidence)
    return Outcome(False, ran.reason or f"exit {ran.exit_code}: {ran.tail(3)}", evidence)


if "test.learner_script" not in REGISTRY:
    check("test.learner_script", ScriptParams)(_learner_script)

BENIGN = """
import sys
from pathlib import Path
features = Path("/inputs/features.csv").read_text().splitlines()[1:]
Path("result.txt").write_text(f"{len(features)} rows")
print("predicted", len(features), "rows")
"""


def attack(script: str, *args: str, **params: object) -> CheckCall:
    source = "import json, os, socket, sys\n" + textwrap.dedent(script)
    return CheckCall(
        "test.learner_script",
        {"script": source, "args": list(args), **params},
        timeout_s=DEADLINE_S,
        retries=0,
        name="attack",
    )


def benign(features: Path) -> CheckCall:
    params = {"script": BENIGN, "inputs": {"features.csv": str(features)}}
    return CheckCall("test.learner_script", params, timeout_s=DEADLINE_S, retries=0, name="benign")


@pytest.fixture
def grader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """The grader's side: a home with a secret and a kubeconfig, hidden features and labels."""
    home = tmp_path / "home"
    (home / ".kube").mkdir(parents=True)
    (home / ".ssh").mkdir()
    (home / ".ssh" / "id_ed25519").write_text(f"PRIVATE KEY {SECRET}\n")
    kubeconfig = home / ".kube" / "config"
    kubeconfig.write_text(f"apiVersion: v1\nusers: [{{name: admin, user: {{token: {SECRET}}}}}]\n")
    for secret in (home / ".ssh" / "id_ed25519", kubeconfig):
        secret.chmod(0o644)  # readable by anyone: only the sandbox's mounts stand between
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / "features.csv").write_text("x\n1\n2\n3\n")
    (hidden / "labels.csv").write_text(f"y\n{SECRET}\n0\n1\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    return {"home": home, "kubeconfig": kubeconfig, "hidden": hidden, "tmp": tmp_path}


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
    script = """
    home, kubeconfig = sys.argv[1:3]
    leaks = [v for k, v in os.environ.items() if "SECRET" in k or k in ("KUBECONFIG", "AWS_ACCESS_KEY_ID")]
    for path in (f"{home}/.ssh/id_ed25519", kubeconfig, os.path.expanduser("~/.kube/config"),
                 "/root/.kube/config", "/etc/kubernetes/admin.conf", "/etc/shadow"):
        try:
            leaks.append(open(path).read())
        except OSError:
            pass
    if any(leaks):
        print(leaks)
        sys.exit(0)
    sys.exit("nothing to read")
    """
    [attacked, _] = grade(attack(script, str(grader["home"]), str(grader["kubeconfig"])), grader)
    assert attacked.feedback == "exit 1: nothing to read"
    assert "uid 65534" in attacked.evidence["sandbox"]


def test_cannot_read_the_hidden_labels(grader: dict[str, Path]) -> None:
    script = """
    hidden = sys.argv[1]
    seen = os.listdir("/inputs")
    assert seen == ["features.csv"], seen
    try:
        print(open(f"{hidden}/labels.csv").read())
        sys.exit(0)
    except OSError as exc:
        sys.exit(f"labels: {exc.strerror}")
    """
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
        from graders import sandbox
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
    script = """
    outside = sys.argv[1]
    wrote = []
    for path in (f"{outside}/pwned", "/pwned", "/usr/pwned", "/etc/pwned", "/inputs/pwned",
                 "/dev/pwned", "/proc/sys/kernel/hostname", os.path.expanduser("~/../../pwned")):
        try:
            with open(path, "w") as out:
                out.write("pwned")
            wrote.append(path)
        except OSError:
            pass
    wrote = [p for p in wrote if not p.startswith("/scratch")]
    if wrote:
        print(wrote)
        sys.exit(0)
    sys.exit("read-only everywhere")
    """
    [attacked, _] = grade(attack(script, str(outside)), grader)
    assert attacked.feedback == "exit 1: read-only everywhere"
    assert list(outside.iterdir()) == []
    assert not Path("/pwned").exists() and not Path("/usr/pwned").exists()


def test_cannot_fill_the_disk(grader: dict[str, Path]) -> None:
    script = """
    with open("big", "wb") as out:
        while True:
            out.write(b"x" * (1 << 20))
    """
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
    script = """
    port = int(sys.argv[1])
    reached = []
    api_servers = [("10.96.0.1", 443), ("kubernetes.default.svc", 443)]
    for address in [("127.0.0.1", port), (sys.argv[2], port), *api_servers]:
        try:
            socket.create_connection(address, timeout=1).close()
            reached.append(address)
        except OSError:
            pass
    if reached:
        print(reached)
        sys.exit(0)
    sys.exit("no route out")
    """
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
        script = """
        hit = []
        for pid in map(int, sys.argv[1:]):
            try:
                os.kill(pid, 9)
                hit.append(pid)
            except OSError:
                pass
        try:
            os.kill(-1, 9)  # everything it may signal: only its own PID namespace
        except OSError:
            pass
        if hit:
            print(hit)
            sys.exit(0)
        sys.exit("no such processes")
        """
        [attacked, _] = grade(attack(script, str(os.getpid()), str(bystander.pid)), grader)
        assert attacked.status in (Status.FAILED, Status.ERROR)
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


# --- exhausting resources -------------------------------------------------------------------


def test_fork_bomb_is_contained(grader: dict[str, Path]) -> None:
    script = """
    import time
    while True:
        try:
            os.fork()
        except OSError:
            time.sleep(0.01)
    """
    [attacked, _] = grade(attack(script, processes=16, wall_s=2), grader)
    assert attacked.feedback == "wall-clock limit 2 s"


def test_allocating_10_gib_fails(grader: dict[str, Path]) -> None:
    script = """
    hog = bytearray(10 << 30)
    sys.exit(0)
    """
    [attacked, _] = grade(attack(script, memory_mb=256), grader)
    assert attacked.feedback == "memory limit (256 MiB)"


def test_looping_forever_is_stopped_by_the_wall_clock(grader: dict[str, Path]) -> None:
    [attacked, _] = grade(attack("while True:\n    pass\n", wall_s=2, cpu_s=30), grader)
    assert attacked.feedback == "wall-clock limit 2 s"


def test_burning_cpu_is_stopped_by_the_cpu_limit(grader: dict[str, Path]) -> None:
    [attacked, _] = grade(attack("while True:\n    pass\n", wall_s=6, cpu_s=1), grader)
    assert attacked.feedback == "CPU time limit 1 s"


def test_printing_1_gib_is_cut(grader: dict[str, Path]) -> None:
    script = """
    chunk = b"x" * (1 << 20)
    for _ in range(1024):
        sys.stdout.buffer.write(chunk)
    sys.exit(0)
    """
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

STAGE = """
import json, os, socket, sys
home, store_port = {home!r}, {store_port}
got = [k for k in os.environ if k.startswith("AWS_") or k == "KUBECONFIG"]
for path in (f"{{home}}/.kube/config", f"{{home}}/.ssh/id_ed25519", "/root/.kube/config"):
    try:
        got.append(open(path).read())
    except OSError:
        pass
for address in (("127.0.0.1", store_port), ("10.96.0.1", 443)):
    try:
        socket.create_connection(address, timeout=1).close()
        got.append(address)
    except OSError:
        pass
try:
    open(f"{{home}}/pwned", "w").write("pwned")
    got.append("wrote the grader's home")
except OSError:
    pass
if not got and {attack}:
    sys.exit("every attempt was refused")
json.dump({{"score": 1}}, open("metrics.json", "w"))
"""


def _git_dvc(root: Path, env: dict[str, str], *cmd: str) -> None:
    full = list(cmd) if cmd[0] == "git" else [sys.executable, "-m", "dvc", *cmd]
    proc = subprocess.run(full, cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"{' '.join(cmd)}: {proc.stdout}{proc.stderr}"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """Started before ``grader`` moves HOME (the server's binary is found under the real one)."""
    with versitygw(tmp_path_factory.mktemp("s3") / "root") as server:
        yield server


def test_a_pipeline_stage_that_attacks_fails_and_the_next_repository_is_graded(
    s3: S3Server, grader: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRADER_S3_ACCESS", s3.access_key)
    monkeypatch.setenv("GRADER_S3_SECRET", s3.secret_key)
    env = {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"]),
        "HOME": str(tmp_path),
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "M",
        "GIT_AUTHOR_EMAIL": "m@example.edu",
        "GIT_COMMITTER_NAME": "M",
        "GIT_COMMITTER_EMAIL": "m@example.edu",
        **s3.env(),
    }
    repo = tmp_path / "mallory"
    repo.mkdir()
    port = int(s3.endpoint.rsplit(":", 1)[1].split("/")[0])
    _git_dvc(repo, env, "git", "init", "--quiet", "-b", "main")
    _git_dvc(repo, env, "init", "--quiet")
    (repo / "data.txt").write_text("1\n2\n")
    _git_dvc(repo, env, "add", "--quiet", "data.txt")
    _git_dvc(repo, env, "remote", "add", "--default", "store", "s3://dvc/mallory")
    _git_dvc(repo, env, "remote", "modify", "store", "endpointurl", s3.endpoint)
    for branch, attacks in (("benign", False), ("attack", True)):
        _git_dvc(repo, env, "git", "checkout", "--quiet", "-B", branch)
        (repo / "stage.py").write_text(
            STAGE.format(home=str(grader["home"]), store_port=port, attack=attacks)
        )
        (repo / "metrics.json").write_text('{"score": 1}')
        if branch == "benign":
            _git_dvc(repo, env, "stage", "add", "-n", "train", "-d", "stage.py", "-d", "data.txt", "-M",
                     "metrics.json", "python stage.py")  # fmt: skip
        _git_dvc(repo, env, "commit", "--force", "--quiet")  # dvc.lock, without running the stage here
        _git_dvc(repo, env, "git", "add", "-A")
        _git_dvc(repo, env, "git", "commit", "--quiet", "-m", branch)
    _git_dvc(repo, env, "push", "--quiet")
    params = {"repo": str(repo), "endpoint_url": s3.endpoint}
    params |= {"access_key_env": "GRADER_S3_ACCESS", "secret_key_env": "GRADER_S3_SECRET"}
    calls = tuple(
        CheckCall("dvc.metrics_reproduce", {**params, "rev": rev}, timeout_s=60, retries=0, name=rev)
        for rev in ("attack", "benign")
    )
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
    assert container["resources"]["limits"] == {"cpu": "1", "memory": "320Mi", "ephemeral-storage": "64Mi"}
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
            argv = [*container["command"], *container["args"]]
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

    def core(self) -> object:
        log = self.log

        class Core:
            def read_namespaced_pod_log(self, *args: object, **kwargs: object) -> object:
                return type("Response", (), {"data": log})()

        return Core()


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
