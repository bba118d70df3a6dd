"""The sandbox inside the cluster: one short-lived Pod per run, in a namespace only the grader uses.

Where labctl grades from inside the cluster (the controller), bubblewrap is out of reach (a
restricted pod may not create user namespaces) and would sit beside the controller's own token.
So learner code runs as a Pod of its own in ``labctl-sandbox``:

- no ServiceAccount token (``automountServiceAccountToken: false``), no Service env vars
  (``enableServiceLinks: false``), no DNS (``dnsPolicy: None``, a nameserver that is not there);
- Pod Security ``restricted`` enforced on the namespace: non-root (a uid of the run's own, so
  RLIMIT_NPROC counts only its processes), no privilege escalation, every capability dropped,
  RuntimeDefault seccomp, read-only root filesystem;
- an egress- and ingress-deny NetworkPolicy over the namespace (where the CNI enforces policy);
- ``activeDeadlineSeconds`` and CPU/memory/ephemeral-storage limits; the scratch is a
  memory-backed emptyDir with the disk limit as its ``sizeLimit``;
- the work copy (a tar) and the inputs go in through a Secret mounted read-only; what comes back
  (exit status, capped stdout/stderr, the output files as a tar) is printed, base64, by the Pod's
  init script to its log, framed by a per-run nonce, and read with a byte cap.

Image: the controller's own (Python, scikit-learn, MLflow, DVC, coreutils, tar, util-linux).
Objects are rendered by pure functions (unit-tested without a cluster) and applied through
:class:`labctl.kube.Kube`. The Secret must fit the API's 1 MiB object limit: a larger work
directory is SandboxUnavailable (an ``error``), not a silent skip.
"""

from __future__ import annotations

import base64
import contextlib
import io
import math
import os
import secrets
import tarfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labctl.sandbox._common import (
    CUT_MARK,
    INPUTS,
    QUIET_ENV,
    SCRATCH,
    Limits,
    Sandboxed,
    SandboxUnavailable,
    files_from_tar,
    guess_reason,
)

NAMESPACE = "labctl-sandbox"
CONTROL = "/.labctl"
STREAMS = "/.streams"
LABELS = {"app.kubernetes.io/part-of": "labctl", "app.kubernetes.io/component": "sandbox"}
SECRET_MAX = 900 << 10  # under the API server's 1 MiB object limit, with room for metadata
UID_BASE = 0x70000000
START_SLACK_S = 30  # scheduling and image start, beyond the learner's wall clock
# The controller image's venv (labctl.localcluster.images.stack), not the grader's.
IMAGE_PYTHON_BIN = "/opt/venv/bin"

# The Pod's command; $1-$7: nonce, CPU s, address space bytes, processes, output cap, wall clock (s, ms).
# Learner streams go through capped pipes to files of their own volume (a full scratch still reports
# its error); only this script writes the log,
# in frames a grader reads back. `timeout` ends the learner's process group at the wall clock (the
# Pod's activeDeadlineSeconds ends whatever left the group), and the elapsed time tells it apart
# from a learner's own exit status.
INIT = r"""
nonce=$1 cpu=$2 mem=$3 nproc=$4 cap=$5 wall=$6 wall_ms=$7
shift 7
frame() { printf 'labctl-sandbox %s %s\n' "$nonce" "$*"; }
mkdir -p /scratch/home /scratch/tmp /scratch/work
frame started
if [ -s /.labctl/work.tar ] && ! tar -x -f /.labctl/work.tar -C /scratch/work 2>/.streams/err; then
    frame copy-failed "$(head -c 500 /.streams/err | tr '\n' ' ')"
    exit 125
fi
cd /scratch/work || exit 125
mkfifo /.streams/o /.streams/e
head -c "$((cap + 1))" </.streams/o >/.streams/out &
head -c "$((cap + 1))" </.streams/e >/.streams/err &
began=$(date +%s%N)
timeout -s KILL "$wall" prlimit --cpu="$cpu:$((cpu + 1))" --as="$mem" --nproc="$nproc" --core=0 -- "$@" \
    </dev/null >/.streams/o 2>/.streams/e
rc=$?
took=$(( ($(date +%s%N) - began) / 1000000 ))
wait
if [ "$rc" = 137 ] && [ "$took" -ge "$((wall_ms - 50))" ]; then
    frame timeout "$took"
fi
frame exit "$rc"
for s in out err; do
    frame "$s" "$(wc -c </.streams/$s)"
    head -c "$cap" "/.streams/$s" | base64 -w0
    echo
done
frame files
if [ -s /.labctl/outputs ]; then
    tar -c -f - --null -T /.labctl/outputs --ignore-failed-read 2>/dev/null | base64 -w0
fi
echo
frame end
exit "$rc"
"""


def streams_mb(limits: Limits) -> int:
    """The stdout/stderr files' volume: both capped streams and room for a copy error."""
    return 1 + (2 * (limits.output_bytes + 1) >> 20)


def render_namespace(
    controller_sa: tuple[str, str] = ("labctl-system", "labctl-controller"),
) -> list[dict[str, Any]]:
    """The sandbox namespace: Pod Security restricted, all traffic denied, the controller's rights there."""
    ns_labels = {
        **LABELS,
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }
    ns_meta = {"name": NAMESPACE, "labels": ns_labels}
    meta = {"name": "labctl-sandbox", "namespace": NAMESPACE, "labels": dict(LABELS)}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": ns_meta},
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {**meta, "name": "deny-all"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta,
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["pods", "secrets"],
                    "verbs": ["create", "get", "list", "delete"],
                },
                {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "labctl-sandbox"},
            "subjects": [{"kind": "ServiceAccount", "namespace": controller_sa[0], "name": controller_sa[1]}],
        },
    ]


@dataclass(frozen=True)
class Request:
    """One run, decided before anything is sent (the unit tests' input)."""

    name: str
    nonce: str
    image: str
    uid: int
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    limits: Limits
    wall_s: float
    input_names: tuple[str, ...]


def render_secret(
    request: Request, work_tar: bytes, inputs: Mapping[str, bytes], outputs: Sequence[str]
) -> dict[str, Any]:
    data = {"work.tar": work_tar, "outputs": b"".join(p.encode() + b"\0" for p in outputs)}
    # The run's uid by name (git, dvc and getpass look it up); nothing of the image's own users
    data["passwd"] = f"sandbox:x:{request.uid}:{request.uid}:labctl sandbox:{SCRATCH}/home:/bin/sh\n".encode()
    data["group"] = f"sandbox:x:{request.uid}:\n".encode()
    data |= {f"input-{i}": inputs[name] for i, name in enumerate(request.input_names)}
    size = sum(len(v) for v in data.values())
    if size > SECRET_MAX:
        raise SandboxUnavailable(
            f"the work directory and inputs ({size >> 10} KiB) do not fit the Pod sandbox's Secret "
            f"({SECRET_MAX >> 10} KiB): grade this check from outside the cluster"
        )
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": request.name, "namespace": NAMESPACE, "labels": dict(LABELS)},
        "type": "Opaque",
        "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
    }


def render_pod(request: Request) -> dict[str, Any]:
    """The learner's Pod: restricted, tokenless, offline, bounded (see the module docstring)."""
    limits = request.limits
    container = {
        "name": "learner",
        "image": request.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["/bin/sh", "-c", INIT, "sandbox-init", request.nonce, str(limits.cpu_s)],
        "args": [
            str(limits.memory_mb << 20),
            str(limits.processes),
            str(limits.output_bytes),
            f"{request.wall_s:.3f}",
            str(round(request.wall_s * 1000)),
            *request.argv,
        ],
        "workingDir": SCRATCH,
        "env": [{"name": k, "value": v} for k, v in request.env],
        "resources": {
            # Disk request = limit: what the API server would default it to, written out (only its
            # log is on the node's disk: the root is read-only and the scratch is memory).
            "requests": {"cpu": "100m", "memory": "64Mi", "ephemeral-storage": f"{limits.disk_mb}Mi"},
            "limits": {
                "cpu": "1",
                # memory emptyDirs count here too
                "memory": f"{limits.memory_mb + limits.disk_mb + streams_mb(limits)}Mi",
                "ephemeral-storage": f"{limits.disk_mb}Mi",
            },
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": request.uid,
            "runAsGroup": request.uid,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "scratch", "mountPath": SCRATCH},
            # The usual temporary directories, in the scratch's budget (dvc writes /var/tmp/dvc)
            {"name": "scratch", "mountPath": "/tmp", "subPath": "tmp"},
            {"name": "scratch", "mountPath": "/var/tmp", "subPath": "tmp"},
            {"name": "streams", "mountPath": STREAMS},
            {"name": "control", "mountPath": "/etc/passwd", "subPath": "passwd", "readOnly": True},
            {"name": "control", "mountPath": "/etc/group", "subPath": "group", "readOnly": True},
            {"name": "control", "mountPath": CONTROL, "readOnly": True},
            {"name": "inputs", "mountPath": INPUTS, "readOnly": True},
        ],
    }
    secret = request.name
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": request.name, "namespace": NAMESPACE, "labels": dict(LABELS)},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "dnsPolicy": "None",
            "dnsConfig": {"nameservers": ["127.0.0.1"]},  # nothing listens there: no name resolves
            "activeDeadlineSeconds": math.ceil(request.wall_s) + START_SLACK_S,
            "terminationGracePeriodSeconds": 0,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": request.uid,
                "runAsGroup": request.uid,
                "fsGroup": request.uid,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [container],
            "volumes": [
                {"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": f"{limits.disk_mb}Mi"}},
                {"name": "streams", "emptyDir": {"medium": "Memory", "sizeLimit": f"{streams_mb(limits)}Mi"}},
                {
                    "name": "control",
                    "secret": {
                        "secretName": secret,
                        "defaultMode": 0o444,
                        "items": [
                            {"key": "work.tar", "path": "work.tar"},
                            {"key": "outputs", "path": "outputs"},
                            {"key": "passwd", "path": "passwd"},
                            {"key": "group", "path": "group"},
                        ],
                    },
                },
                {
                    "name": "inputs",
                    "secret": {
                        "secretName": secret,
                        "defaultMode": 0o444,
                        "items": [
                            {"key": f"input-{i}", "path": n} for i, n in enumerate(request.input_names)
                        ],
                    },
                },
            ],
        },
    }


def parse_log(log: bytes, nonce: str, limits: Limits, outputs: Sequence[str]) -> dict[str, Any]:
    """The frames of the init script's log: started, exit, out, err, files (see INIT)."""
    found: dict[str, Any] = {"started": False, "exit": None, "out": "", "err": "", "files": {}}
    found["timeout"] = found["cut"] = False
    lines = log.decode(errors="replace").splitlines()
    prefix = f"labctl-sandbox {nonce} "
    for i, line in enumerate(lines):
        if not line.startswith(prefix):
            continue
        kind, _, rest = line[len(prefix) :].partition(" ")
        body = lines[i + 1] if i + 1 < len(lines) else ""
        if kind == "started":
            found["started"] = True
        elif kind == "copy-failed":
            found["copy_failed"] = rest
        elif kind == "timeout":
            found["timeout"] = True
        elif kind == "exit" and rest.isdigit():
            found["exit"] = int(rest)
        elif kind in ("out", "err"):
            text = _b64(body).decode("utf-8", errors="replace")
            size = int(rest) if rest.isdigit() else 0
            if size > limits.output_bytes:
                text += CUT_MARK.format(limit=limits.output_bytes)
                found["cut"] = True
            found[kind] = text
        elif kind == "files" and outputs:
            found["files"] = files_from_tar(_b64(body), outputs)
    return found


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=False)
    except ValueError:
        return b""


_kube: Any = None
_kube_lock = threading.Lock()
_ready: set[int] = set()  # connections that have applied the namespace's objects


def ensure_namespace(api: Any) -> None:
    """Apply the sandbox namespace's objects once per connection (idempotent server-side apply)."""
    if id(api) in _ready:
        return
    try:
        for obj in render_namespace():
            api.apply(obj, quiet=True)
    except Exception as exc:
        raise SandboxUnavailable(
            f"cannot set up the sandbox namespace {NAMESPACE}: {exc} (`labctl install` grants the rights)"
        ) from None
    _ready.add(id(api))


def kube() -> Any:
    """The in-cluster connection (the controller's ServiceAccount), made on first use."""
    global _kube
    with _kube_lock:
        if _kube is None:
            from labctl.kube import Kube

            try:
                _kube = Kube.connect()
            except Exception as exc:
                raise SandboxUnavailable(f"the Pod sandbox cannot reach the API server: {exc}") from None
        return _kube


def own_image(api: Any) -> str:
    """``LABCTL_SANDBOX_IMAGE``, else the image of the pod this grader runs in (the controller's)."""
    if os.environ.get("LABCTL_SANDBOX_IMAGE"):
        return os.environ["LABCTL_SANDBOX_IMAGE"]
    me = api.get("v1", "Pod", os.environ.get("HOSTNAME", ""), api.namespace)
    try:
        return str(me["spec"]["containers"][0]["image"])
    except (TypeError, KeyError, IndexError):
        raise SandboxUnavailable(
            "the Pod sandbox does not know its image: set LABCTL_SANDBOX_IMAGE (the controller's image)"
        ) from None


def _tar_of(work: Path | None) -> bytes:
    if work is None:
        return b""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(str(work), arcname=".")
    return buf.getvalue()


def run(
    argv: Sequence[str],
    *,
    work: Path | None,
    inputs: Mapping[str, bytes],
    outputs: Sequence[str],
    env: Mapping[str, str],
    limits: Limits,
    python: bool,
    wall_s: float,
) -> Sandboxed:
    """Run ``argv`` as a Pod in the sandbox namespace; always delete the Pod and its Secret."""
    api = kube()
    ensure_namespace(api)
    suffix = secrets.token_hex(5)
    base_env = {**QUIET_ENV, "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": f"{SCRATCH}/home"}
    base_env |= {"USER": "sandbox", "LOGNAME": "sandbox"}
    if python:
        # The image's interpreter: a grader outside the cluster (a forced pod backend) has its own elsewhere
        base_env["PATH"] = f"{IMAGE_PYTHON_BIN}:{base_env['PATH']}"
    request = Request(
        name=f"labctl-sandbox-{suffix}",
        nonce=secrets.token_hex(8),
        image=own_image(api),
        uid=UID_BASE + int(suffix, 16) % (1 << 20),
        argv=tuple(argv),
        env=tuple({**base_env, "TMPDIR": f"{SCRATCH}/tmp", **env}.items()),
        limits=limits,
        wall_s=wall_s,
        input_names=tuple(inputs),
    )
    secret = render_secret(request, _tar_of(work), inputs, outputs)
    where = f"pod {NAMESPACE}/{request.name} (uid {request.uid}, no token, egress denied, restricted)"
    try:
        api.create(secret)
        api.create(render_pod(request))
        phase, reason = _wait(api, request.name, wall_s + START_SLACK_S)
        cap = 2 * limits.output_bytes * 4 // 3 + (limits.disk_mb << 20) * 4 // 3 + 65536
        log = api.logs(NAMESPACE, request.name, container="learner", limit_bytes=cap)
    except SandboxUnavailable:
        raise
    except Exception as exc:
        raise SandboxUnavailable(f"the Pod sandbox failed: {type(exc).__name__}: {exc}") from None
    finally:
        for kind in ("Pod", "Secret"):
            # NB: cleanup must not hide the result; leftovers carry the sandbox label to sweep by
            with contextlib.suppress(Exception):
                api.delete("v1", kind, request.name, NAMESPACE)
    return _result(
        parse_log(bytes(log), request.nonce, limits, outputs), phase, reason, limits, wall_s, where
    )


def _wait(api: Any, name: str, timeout: float) -> tuple[str, str | None]:
    """Poll the Pod to an end: (phase, why it was stopped: DeadlineExceeded, OOMKilled, Evicted...)."""
    # NB: polled, not watched: the controller's rights are namespaced, and a GET of one Pod is cheap
    deadline, pause = time.monotonic() + timeout, 0.1
    while time.monotonic() < deadline:
        pod = api.get("v1", "Pod", name, NAMESPACE) or {}
        status = pod.get("status") or {}
        phase = status.get("phase") or "Pending"
        if phase in ("Succeeded", "Failed"):
            terminated = next(
                (
                    (c.get("state") or {}).get("terminated") or {}
                    for c in status.get("containerStatuses") or []
                ),
                {},
            )
            return phase, status.get("reason") or terminated.get("reason")
        time.sleep(pause)
        pause = min(pause * 1.2, 0.25)  # a run takes a second or two: its end is seen within 0.25 s
    return "Running", "wall"


def _result(
    found: dict[str, Any], phase: str, reason: str | None, limits: Limits, wall_s: float, where: str
) -> Sandboxed:
    if not found["started"] and reason not in ("wall", "DeadlineExceeded"):
        raise SandboxUnavailable(f"the sandbox Pod never ran its command (phase {phase}, {reason})")
    if "copy_failed" in found:
        return Sandboxed(125, "", f"unpacking the work directory failed: {found['copy_failed']}", False,
                         f"disk limit ({limits.disk_mb} MiB)", {}, where)  # fmt: skip
    stopped = {
        "wall": f"wall-clock limit {wall_s:g} s",
        "DeadlineExceeded": f"wall-clock limit {wall_s:g} s",
        "OOMKilled": f"memory limit ({limits.memory_mb} MiB)",
        "Evicted": f"disk limit ({limits.disk_mb} MiB)",
    }.get(reason or "")
    if found["timeout"]:
        stopped = f"wall-clock limit {wall_s:g} s"
    if stopped is not None:
        timed_out = "wall-clock" in stopped
        return Sandboxed(None, found["out"], found["err"], timed_out, stopped, {}, where)
    if found["cut"]:
        stopped = f"output limit {limits.output_bytes} bytes"
        return Sandboxed(None, found["out"], found["err"], False, stopped, {}, where)
    code = found["exit"]
    return Sandboxed(code, found["out"], found["err"], False, guess_reason(code, found["err"], limits),
                     found["files"], where)  # fmt: skip
