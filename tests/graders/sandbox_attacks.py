"""Attacks on a grader from inside the sandbox, shared by both backends' tests.

Each attack is a learner's script that exits 0 only if its attack worked, run by the check
``test.learner_script`` the way graders run learner code (labctl.sandbox.run), or a stage of a
submitted DVC repository graded by the real ``dvc.metrics_reproduce``. tests/graders/test_sandbox.py
runs them in bubblewrap (make test), tests/e2e/test_sandbox_pod_e2e.py in a Pod on the real node
(make e2e).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from pydantic import Field

from graders.core import REGISTRY, Context, Outcome, Params, check
from graders.engine import CheckCall
from labctl import sandbox
from tests.graders.s3_server import S3Server

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


def attack(script: str, *args: str, timeout_s: float = DEADLINE_S, **params: object) -> CheckCall:
    source = "import json, os, socket, sys\n" + textwrap.dedent(script)
    return CheckCall(
        "test.learner_script",
        {"script": source, "args": list(args), **params},
        timeout_s=timeout_s,
        retries=0,
        name="attack",
    )


def benign(features: Path, timeout_s: float = DEADLINE_S) -> CheckCall:
    params = {"script": BENIGN, "inputs": {"features.csv": str(features)}}
    return CheckCall("test.learner_script", params, timeout_s=timeout_s, retries=0, name="benign")


READ_HOME = """
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

READ_LABELS = """
hidden = sys.argv[1]
seen = [n for n in os.listdir("/inputs") if not n.startswith("..")]  # a Secret volume's own
assert seen == ["features.csv"], seen
try:
    print(open(f"{hidden}/labels.csv").read())
    sys.exit(0)
except OSError as exc:
    sys.exit(f"labels: {exc.strerror}")
"""

WRITE_OUTSIDE = """
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

FILL_DISK = """
with open("big", "wb") as out:
    while True:
        out.write(b"x" * (1 << 20))
"""

REACH_OUT = """
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

SIGNAL = """
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

FORK_BOMB = """
import time
while True:
    try:
        os.fork()
    except OSError:
        time.sleep(0.01)
"""

ALLOC_10_GIB = """
hog = bytearray(10 << 30)
sys.exit(0)
"""

PRINT_1_GIB = """
chunk = b"x" * (1 << 20)
for _ in range(1024):
    sys.stdout.buffer.write(chunk)
sys.exit(0)
"""


# Reaching the API server is judged by what it gives: a Pod on a node whose CNI does not enforce
# NetworkPolicy may well open a connection to it; what matters is that it has no credential to send.
API_PROBE = """
import os, ssl, sys, urllib.error, urllib.request


def api_answers():
    token = ""
    sa = "secrets/kubernetes.io/serviceaccount/token"
    for path in (f"/var/run/{sa}", f"/run/{sa}"):
        try:
            token = open(path).read().strip()
        except OSError:
            pass
    host = os.environ.get("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"https://{host}:{port}/api/v1/secrets", headers=headers)
    try:
        urllib.request.urlopen(request, timeout=2, context=ssl._create_unverified_context()).read()
        return True
    except urllib.error.HTTPError as exc:
        print(f"api: HTTP {exc.code}", file=sys.stderr)
    except OSError:
        print("api: unreachable", file=sys.stderr)
    return False

"""

# In a Pod: the grader's loopback is the Pod's own; the API server by credential (API_PROBE).
REACH_API = (
    API_PROBE
    + """
port = int(sys.argv[1])
reached = []
try:
    socket.create_connection(("127.0.0.1", port), timeout=1).close()
    reached.append("the grader's loopback")
except OSError:
    pass
if api_answers():
    reached.append("the API server answered")
if reached:
    print(reached)
    sys.exit(0)
sys.exit("no credential, no loopback")
"""
)

STAGE = """
import json, os, socket, sys
home, store_port = {home!r}, {store_port}
got = [k for k in os.environ if k.startswith("AWS_") or k == "KUBECONFIG"]
for path in (f"{{home}}/.kube/config", f"{{home}}/.ssh/id_ed25519", "/root/.kube/config"):
    try:
        got.append(open(path).read())
    except OSError:
        pass
try:
    socket.create_connection(("127.0.0.1", store_port), timeout=1).close()
    got.append("the grader's loopback")
except OSError:
    pass
if api_answers():
    got.append("the API server answered")
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


def plant_grader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
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


def pipeline_checks(
    s3: S3Server,
    grader: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    timeout_s: float = 60,
) -> tuple[CheckCall, CheckCall]:
    """A learner's repository (pushed to ``s3``) whose ``attack`` branch's stage attacks and whose
    ``benign`` branch's does not: the two ``dvc.metrics_reproduce`` checks, attack first."""
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
            API_PROBE + STAGE.format(home=str(grader["home"]), store_port=port, attack=attacks)
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
    attacked, benign_ = (
        CheckCall("dvc.metrics_reproduce", {**params, "rev": rev}, timeout_s=timeout_s, retries=0, name=rev)
        for rev in ("attack", "benign")
    )
    return attacked, benign_
