"""Real servers for tests: each in its own process group, ended by id, never by name."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the whole process group of ``proc`` (workers too), then SIGKILL what remains."""
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _group_alive(pgid):
            if proc.poll() is None:
                with suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=0.1)
            else:
                time.sleep(0.1)
        if not _group_alive(pgid):
            break
    proc.poll()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    # Zombies keep a group "alive" for kill(0); look for a live member in /proc.
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


@contextmanager
def server_process(
    cmd: Sequence[str],
    *,
    ready: Callable[[], bool],
    timeout: float = 60.0,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    log: IO[bytes] | None = None,
) -> Iterator[subprocess.Popen]:
    """Start ``cmd`` in a new session, wait until ``ready()``; on exit end its whole group."""
    proc = subprocess.Popen(
        list(cmd),
        env=env,
        cwd=cwd,
        start_new_session=True,
        stdout=log or subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited with {proc.returncode} before it was ready")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{cmd[0]} not ready after {timeout:.0f}s")
            time.sleep(0.1)
        yield proc
    finally:
        stop_group(proc)
