"""The node's cgroup root (``/labctl-<cluster>``) in every cgroup v1 hierarchy.

The kubelet puts all pods below its ``cgroupRoot`` and requires it to exist. A root of the
cluster's own keeps two clusters' pods apart, and lets teardown find every pod process by
cgroup rather than by name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

CGROUP_FS = Path("/sys/fs/cgroup")


def hierarchies() -> list[Path]:
    """Mount points of every cgroup hierarchy: v1 ones (cpu, memory, ..., name=systemd) and a
    cgroup2 mounted beside them (``/sys/fs/cgroup/unified``), where runc makes dirs too."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fstype = right.split()[0] if right else ""
        if fstype in ("cgroup", "cgroup2"):
            found.append(Path(left.split()[4]))
    return sorted(set(found))


def unified() -> bool:
    """True on a pure cgroup v2 host (``/sys/fs/cgroup`` is cgroup2)."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        if left.split()[4] == str(CGROUP_FS) and right.split()[0] == "cgroup2":
            return True
    return False


def ensure_root(name: str) -> None:
    """Create ``name`` (e.g. ``/labctl-sim``) in every hierarchy; cpusets inherit the parent's."""
    if unified():
        (CGROUP_FS / name.lstrip("/")).mkdir(exist_ok=True)
        return
    for mount in hierarchies():
        path = mount / name.lstrip("/")
        path.mkdir(exist_ok=True)
        if (path / "cpuset.cpus").exists():
            for knob in ("cpuset.cpus", "cpuset.mems"):
                if not (path / knob).read_text().strip():
                    (path / knob).write_text((mount / knob).read_text())


def _dirs(name: str) -> list[Path]:
    mounts = [CGROUP_FS] if unified() else hierarchies()
    return [mount / name.lstrip("/") for mount in mounts if (mount / name.lstrip("/")).is_dir()]


def pids_in(name: str) -> set[int]:
    """Every process in the cgroup tree ``name``, in any hierarchy."""
    found: set[int] = set()
    for top in _dirs(name):
        for procs in top.rglob("cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                found |= {int(p) for p in procs.read_text().split()}
    return found


def kill_all(name: str, timeout: float = 10.0) -> None:
    """SIGKILL every process left in the tree (pods whose shim is gone) and wait."""
    deadline = time.monotonic() + timeout
    while (pids := pids_in(name)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


def remove_root(name: str) -> None:
    """Remove the tree, deepest first (cgroup dirs are removed with rmdir only)."""
    for top in _dirs(name):
        for path in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                path.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()
