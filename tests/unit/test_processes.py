"""The real-server fixture helper ends the whole process group, workers included."""

from __future__ import annotations

import os
import sys
import textwrap
import urllib.request

from tests.helpers.processes import free_port, server_process


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


def test_server_group_is_ended_by_id(tmp_path) -> None:
    port = free_port()
    # A parent that forks a worker, like `mlflow server`; the worker serves HTTP.
    script = tmp_path / "server.py"
    script.write_text(
        textwrap.dedent(f"""
        import subprocess, sys, time
        subprocess.Popen([sys.executable, "-m", "http.server", "{port}", "--bind", "127.0.0.1"])
        time.sleep(3600)
    """)
    )
    with server_process([sys.executable, str(script)], ready=lambda: _answers(port)) as proc:
        pgid = os.getpgid(proc.pid)
        assert pgid == proc.pid  # its own group
        assert _answers(port)
    assert not _answers(port)
    members = [p for p in os.listdir("/proc") if p.isdigit() and _pgid_of(p) == pgid]
    assert members == []


def _pgid_of(pid: str) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[2]) if fields[0] != "Z" else None
