"""Processes labctl starts and later stops: known by pid only, never by name.

Shared by the simulated cluster (kwokctl's components, the volume provisioner) and the real
node (containerd, kubelet, kube-proxy, CoreDNS, shims).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

from labctl.core.errors import LabctlError


def alive(pid: int) -> bool:
    """True for a live, non-zombie process (a zombie still answers kill(0); /proc tells the truth)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def stop(pids: Iterable[int], grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` s what is left; wait until all are gone."""
    left = [pid for pid in pids if alive(pid)]
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = [pid for pid in left if alive(pid)]
        if not left:
            return
    raise LabctlError(f"processes {left} survived SIGKILL")
