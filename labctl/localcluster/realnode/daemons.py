"""The node's daemons: each in its own session with a pid file, stopped by pid only."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from labctl.core.errors import LabctlError
from labctl.localcluster.processes import alive, stop


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def running(pid_file: Path) -> int | None:
    """The pid in ``pid_file`` when that process is alive, else None."""
    pid = read_pid(pid_file)
    return pid if pid is not None and alive(pid) else None


def start(cmd: Sequence[str], *, pid_file: Path, log: Path, env: dict[str, str] | None = None) -> int:
    """Start ``cmd`` detached (new session), output appended to ``log``; write its pid file."""
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    pid_file.write_text(str(proc.pid))
    return proc.pid


def stop_pid_file(pid_file: Path, grace: float = 10.0) -> None:
    pid = read_pid(pid_file)
    if pid is not None:
        stop([pid], grace)
    pid_file.unlink(missing_ok=True)


def run(cmd: Sequence[str], *, what: str, timeout: float = 60, check: bool = True) -> str:
    """Run a short command; on failure raise an error naming ``what`` with the output tail."""
    try:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise LabctlError(f"{what}: `{' '.join(cmd)}` did not finish within {timeout:.0f}s") from None
    if check and proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-10:])
        raise LabctlError(f"{what}: `{' '.join(cmd)}` failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


def succeeds(cmd: Sequence[str], timeout: float = 30) -> bool:
    """Run a short best-effort command; whether it exited 0."""
    try:
        return subprocess.run(list(cmd), capture_output=True, timeout=timeout, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def wait_until(check: Callable[[], object], *, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            hint = f"; see {log}" if log else ""
            raise LabctlError(f"timed out after {timeout:.0f}s waiting for {what}{hint}")
        time.sleep(0.2)
