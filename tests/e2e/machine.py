"""What the real-node e2e modules share: the machine has room for one real node at a time."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from labctl.localcluster.realnode import daemons
from labctl.localcluster.realnode.layout import LOCK_FILE
from labctl.localcluster.realnode.node import DAEMONS


def wait_for_machine_lock(timeout: float = 1200) -> None:
    """One real node per machine: wait while another (live) one holds the lock; never remove it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            owner = Path(LOCK_FILE.read_text().strip())
        except OSError:
            return
        if not any(daemons.running(owner / "pids" / f"{d}.pid") for d in DAEMONS):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"another real node ({owner}) kept the machine for {timeout:.0f}s")
        time.sleep(10)
