"""The sandbox outside the cluster: bubblewrap, entered as an unprivileged uid of the run's own.

Layout inside (everything else of the host is absent)::

    /usr /bin /lib* /sbin      the host's system, read-only
    /etc                       ld.so's cache, timezone and a passwd naming only the sandbox user
    /scratch                   a size-limited tmpfs (Limits.disk_mb): work/ (the copy, cwd), home/, tmp/
    /tmp, /var/tmp             -> /scratch/tmp (a tmpfs as big when the grader's Python is in it)
    /inputs/<name>             the check's inputs, read-only
    /proc /dev                 the sandbox's own (its PID namespace; null, zero, random, a small /dev/shm)
    <the grader's python>      read-only, only with ``python=True``: the interpreter and its venv

How it is entered. Unprivileged (a workstation): ``bwrap`` directly; the learner's code runs as
the invoking user's uid seen as 65534 in a user namespace. As root (CI, a container): from root,
in a private mount namespace (``unshare --mount``) the grader's python directories are bind-mounted
onto a staging directory any uid can reach (they may sit under ``/root``, mode 0700), then
``setpriv`` drops to a uid of this run's own (above systemd's container range, 0x70000000+) with
no capabilities and no-new-privs, and that uid runs ``bwrap``. So the learner's processes are never
kernel-root: root-only files stay unreadable, and RLIMIT_NPROC (which the kernel does not apply to
root) bounds them.

Inside, a short shell script of ours copies the work directory into the tmpfs, runs the learner's
argv under ``prlimit`` (CPU time, address space, processes, no core files), then streams the
requested outputs back as a tar on a pipe of its own (the learner's processes do not inherit it).
bwrap runs with ``--die-with-parent`` in a process group of its own: the wall-clock limit kills
the group, the sandbox's PID 1 dies with it, and the kernel ends everything in its PID namespace.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from labctl.sandbox._common import (
    INPUTS,
    QUIET_ENV,
    SANDBOX_UID,
    SCRATCH,
    CappedReader,
    Limits,
    Sandboxed,
    SandboxUnavailable,
    files_from_tar,
    guess_reason,
)

UID_BASE = 0x70000000  # above systemd-nspawn's container uid range (0x00080000-0x6FFFFFFF)
UID_SPAN = 1 << 20
CONTROL = "/.labctl"  # inside: the staged work copy and the list of outputs, read-only
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime", "timezone", "nsswitch.conf")
SHM_BYTES = 16 << 20
_uids = itertools.count()

# Runs inside the sandbox as the learner's uid; $1-$3: CPU s, address space, processes. Its stdin is
# the control pipe (dash cannot name fds above 9): moved to fd 3, which the learner's code does not get.
INIT = r"""
exec 3>&0 0</dev/null
cpu=$1 mem=$2 nproc=$3
shift 3
printf 'started\n' >&3
mkdir -p /scratch/home /scratch/tmp /scratch/work || exit 125
if [ -d /.labctl/work ] && ! err=$(cp -a /.labctl/work/. /scratch/work/ 2>&1); then
    printf 'copy-failed %s\n' "$err" | head -c 2000 >&3
    exit 125
fi
cd /scratch/work || exit 125
prlimit --cpu="$cpu:$((cpu + 1))" --as="$mem" --nproc="$nproc" --core=0 -- "$@" </dev/null 3>&-
rc=$?
printf 'exit %s\n' "$rc" >&3
if [ -s /.labctl/outputs ]; then
    tar -c -f - --null -T /.labctl/outputs --ignore-failed-read 2>/dev/null >&3
fi
exit "$rc"
"""

# Runs as root on the host in a private mount namespace: bind the views, then become the run's uid.
AS_ROOT = r"""
set -eu
uid=$1 n=$2
shift 2
while [ "$n" -gt 0 ]; do mount --bind "$1" "$2"; shift 2; n=$((n - 1)); done
exec setpriv --reuid="$uid" --regid="$uid" --clear-groups --inh-caps=-all --no-new-privs -- "$@"
"""


@cache
def version() -> str:
    """``bubblewrap 0.8.0``, or SandboxUnavailable saying what is missing."""
    needed = ["bwrap", "prlimit"] + (["unshare", "setpriv", "mount"] if os.geteuid() == 0 else [])
    missing = [tool for tool in needed if shutil.which(tool) is None]
    if missing:
        raise SandboxUnavailable(
            f"cannot sandbox learner code: {', '.join(missing)} not installed "
            "(Debian: apt-get install bubblewrap util-linux mount)"
        )
    proc = subprocess.run(["bwrap", "--version"], capture_output=True, text=True, timeout=10, check=False)
    return proc.stdout.strip() or "bubblewrap"


@dataclass(frozen=True)
class Plan:
    """Everything the command line is made of, decided before anything runs (unit-testable)."""

    argv: tuple[str, ...]
    staging: Path  # holds work/, inputs/, etc/, outputs, view/<n>
    host_uid: int | None  # None: run as the invoking (unprivileged) user
    python_roots: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    limits: Limits


def python_roots() -> tuple[str, ...]:
    """Directories that make the grader's interpreter and its packages work, outside /usr."""
    candidates = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    candidates.add(str(Path(os.path.realpath(sys.executable)).parent.parent))
    roots = sorted(os.path.realpath(p) for p in candidates if p)
    kept: list[str] = []
    for root in roots:
        if root.startswith("/usr/") or root == "/usr":
            continue
        if not any(root == k or root.startswith(k + "/") for k in kept):
            kept.append(root)
    return tuple(kept)


def sandbox_env(env: Mapping[str, str], *, python: bool) -> dict[str, str]:
    """Only what the check passes, over a minimal base: never a variable of the grader's own."""
    path = "/usr/local/bin:/usr/bin:/bin"
    if python:
        path = f"{Path(sys.executable).parent}:{path}"
    return {
        **QUIET_ENV,
        "PATH": path,
        "HOME": f"{SCRATCH}/home",
        "TMPDIR": f"{SCRATCH}/tmp",
        "USER": "sandbox",
        "LOGNAME": "sandbox",
        **env,
    }


def command(plan: Plan) -> list[str]:
    """The full command line: [root launcher] bwrap <isolation> <mounts> -- sh -c INIT ... argv."""
    limits, staged = plan.limits, plan.staging
    bwrap = ["bwrap", "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent"]
    bwrap += ["--new-session", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--hostname", "sandbox"]
    for path in SYSTEM:
        if os.path.islink(path):
            bwrap += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            bwrap += ["--ro-bind", path, path]
    for name in ETC:
        bwrap += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    for name in ("passwd", "group", "hosts"):
        bwrap += ["--ro-bind", str(staged / "etc" / name), f"/etc/{name}"]
    bwrap += ["--proc", "/proc", "--dev", "/dev", "--size", str(SHM_BYTES), "--tmpfs", "/dev/shm"]
    bwrap += ["--remount-ro", "/dev"]
    bwrap += ["--size", str(limits.disk_mb << 20), "--perms", "0700", "--tmpfs", SCRATCH]
    for tmp in ("/tmp", "/var/tmp"):
        if any(root == tmp or root.startswith(tmp + "/") for root in plan.python_roots):
            # NB: the grader's Python lives here (a checkout under /tmp): bwrap binds it at its own
            # path and cannot make parents through a symlink, so this one is a tmpfs of its own,
            # bounded like the scratch.
            bwrap += ["--size", str(limits.disk_mb << 20), "--perms", "1777", "--tmpfs", tmp]
        else:
            bwrap += ["--symlink", f"{SCRATCH}/tmp", tmp]
    bwrap += ["--ro-bind", str(staged / "inputs"), INPUTS, "--ro-bind", str(staged / "control"), CONTROL]
    for n, root in enumerate(plan.python_roots):
        source = str(staged / "view" / str(n)) if plan.host_uid is not None else root
        bwrap += ["--ro-bind", source, root]
    bwrap += ["--remount-ro", "/", "--chdir", SCRATCH, "--clearenv"]
    for key, value in plan.env:
        bwrap += ["--setenv", key, value]
    bwrap += ["--", "/bin/sh", "-c", INIT, "sandbox-init"]
    bwrap += [str(limits.cpu_s), str(limits.memory_mb << 20), str(limits.processes), *plan.argv]
    if plan.host_uid is None:
        return bwrap
    views = [x for n, root in enumerate(plan.python_roots) for x in (root, str(staged / "view" / str(n)))]
    launcher = ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", AS_ROOT, "as-root"]
    return [*launcher, str(plan.host_uid), str(len(plan.python_roots)), *views, *bwrap]


def next_host_uid() -> int:
    """A uid of this run's own, so no two concurrent sandboxes share a process count or files."""
    return UID_BASE + ((os.getpid() << 12) + next(_uids)) % UID_SPAN


def stage(
    staging: Path,
    *,
    work: Path | None,
    inputs: Mapping[str, bytes],
    outputs: Sequence[str],
    host_uid: int | None,
    python: bool,
) -> tuple[str, ...]:
    """Lay out what gets bound into the sandbox; returns the python roots to bind."""
    if host_uid is not None:
        os.chmod(staging, 0o711)  # the run's uid passes through, lists nothing
        _reachable(staging.parent)
    for sub in ("inputs", "control", "etc", "view"):
        (staging / sub).mkdir(mode=0o755)
    for name, data in inputs.items():
        target = staging / "inputs" / name
        target.write_bytes(data)
        target.chmod(0o444)
    (staging / "control" / "outputs").write_bytes(b"".join(p.encode() + b"\0" for p in outputs))
    etc = {
        "passwd": f"sandbox:x:{SANDBOX_UID}:{SANDBOX_UID}:labctl sandbox:{SCRATCH}/home:/bin/sh\n",
        "group": f"sandbox:x:{SANDBOX_UID}:\n",
        "hosts": "127.0.0.1\tlocalhost sandbox\n::1\tlocalhost\n",
    }
    for name, text in etc.items():
        (staging / "etc" / name).write_text(text)
    if work is not None:
        copy = staging / "control" / "work"
        shutil.copytree(work, copy, symlinks=True)
        if host_uid is not None:
            _chown_tree(copy, host_uid)
    roots = python_roots() if python else ()
    for n in range(len(roots)):
        (staging / "view" / str(n)).mkdir(mode=0o755)
    for path in staging.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.parent.name in ("etc", "control"):
            path.chmod(0o444)
    return roots


def _chown_tree(root: Path, uid: int) -> None:
    os.lchown(root, uid, uid)
    for parent, dirs, files in os.walk(root):
        for name in dirs + files:
            os.lchown(os.path.join(parent, name), uid, uid)


def _reachable(path: Path) -> None:
    """The staging directory's ancestors must let another uid through (``x`` for others)."""
    for parent in (path, *path.parents):
        if not os.stat(parent).st_mode & 0o001:
            raise SandboxUnavailable(
                f"cannot sandbox learner code: the temporary directory {path} is not reachable by other "
                f"users ({parent} has no x for others); set TMPDIR to one that is, e.g. /tmp"
            )


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
    """Run ``argv`` in a bubblewrap sandbox (see the module docstring) and collect what it left."""
    where_version = version()
    host_uid = next_host_uid() if os.geteuid() == 0 else None
    with tempfile.TemporaryDirectory(prefix="labctl-sandbox-") as tmp:
        staging = Path(tmp)
        roots = stage(staging, work=work, inputs=inputs, outputs=outputs, host_uid=host_uid, python=python)
        ctl_read, ctl_write = os.pipe()
        plan = Plan(
            argv=tuple(argv),
            staging=staging,
            host_uid=host_uid,
            python_roots=roots,
            env=tuple(sandbox_env(env, python=python).items()),
            limits=limits,
        )
        ended = _execute(command(plan), plan, ctl_read, ctl_write, wall_s)
    uid = f"uid {SANDBOX_UID}" + (f" as host uid {host_uid}" if host_uid is not None else "")
    where = f"{where_version} ({uid}, no network, pid namespace, {limits.disk_mb} MiB scratch)"
    return _result(ended, limits, outputs, where, wall_s)


@dataclass
class _Ended:
    returncode: int
    stdout: CappedReader
    stderr: CappedReader
    control: CappedReader
    stopped: str | None  # "wall" or "output" when we ended it


def _execute(cmd: list[str], plan: Plan, ctl_read: int, ctl_write: int, wall_s: float) -> _Ended:
    """Start ``cmd``, drain its streams with caps, stop it at the wall clock or on too much output.

    Takes ownership of both ends of the control pipe.
    """
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    try:
        proc = subprocess.Popen(
            cmd,
            stdin=ctl_write,  # the control pipe, see INIT
            stdout=out_write,
            stderr=err_write,
            cwd="/",
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
            start_new_session=True,  # its own process group: the wall clock kills all of it
        )
    except OSError as exc:
        for fd in (out_read, err_read, ctl_read):
            os.close(fd)
        raise SandboxUnavailable(f"cannot start the sandbox: {exc}") from None
    finally:
        os.close(out_write)
        os.close(err_write)
        os.close(ctl_write)
    lock = threading.Lock()
    done, stopped = False, None

    def stop(why: str) -> None:
        nonlocal stopped
        with lock:  # NB: never signal a group after its leader was reaped: the pgid may be reused
            if done or stopped:
                return
            stopped = why
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, 9)

    limit = plan.limits.output_bytes
    stdout = CappedReader(out_read, limit, on_overflow=lambda: stop("output"))
    stderr = CappedReader(err_read, limit, on_overflow=lambda: stop("output"))
    control = CappedReader(ctl_read, (plan.limits.disk_mb << 20) + (1 << 20))
    if not _exited(proc.pid, wall_s):
        stop("wall")
    with lock:
        done = True
    proc.wait()
    return _Ended(proc.returncode, stdout, stderr, control, stopped)


def _exited(pid: int, timeout: float) -> bool:
    """Wait up to ``timeout`` for ``pid`` to exit without reaping it (its pgid stays ours to kill)."""
    deadline, pause = time.monotonic() + timeout, 0.001
    while True:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if info is not None and info.si_pid == pid:
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(pause, left))
        pause = min(pause * 2, 0.05)


def _result(ended: _Ended, limits: Limits, outputs: Sequence[str], where: str, wall_s: float) -> Sandboxed:
    deadline = time.monotonic() + 10
    control = ended.control.result(timeout=max(0.1, deadline - time.monotonic()))
    stdout = ended.stdout.text(timeout=max(0.1, deadline - time.monotonic()))
    stderr = ended.stderr.text(timeout=max(0.1, deadline - time.monotonic()))
    head, _, rest = control.partition(b"\n")
    if head != b"started":
        if ended.stopped == "wall":
            raise SandboxUnavailable(f"the sandbox did not start within {wall_s:g} s")
        raise SandboxUnavailable(f"bubblewrap could not start a sandbox here: {stderr.strip()[-500:]}")
    status, _, tar = rest.partition(b"\n")
    if status.startswith(b"copy-failed"):
        message = status.decode(errors="replace").removeprefix("copy-failed ")
        reason = f"disk limit ({limits.disk_mb} MiB)" if "No space left" in message else None
        stderr = f"copying the work directory failed: {message}"
        return Sandboxed(125, stdout, stderr, False, reason, {}, where)
    exit_code: int | None = None
    if status.startswith(b"exit "):
        with suppress(ValueError):
            exit_code = int(status.split()[1])
    elif ended.stopped is None:
        exit_code = ended.returncode if ended.returncode >= 0 else 128 - ended.returncode
    if ended.stopped == "wall":
        return Sandboxed(None, stdout, stderr, True, f"wall-clock limit {wall_s:g} s", {}, where)
    if ended.stopped == "output":
        reason = f"output limit {limits.output_bytes} bytes"
        return Sandboxed(None, stdout, stderr, False, reason, {}, where)
    files = files_from_tar(tar, outputs) if outputs else {}
    return Sandboxed(exit_code, stdout, stderr, False, guess_reason(exit_code, stderr, limits), files, where)
