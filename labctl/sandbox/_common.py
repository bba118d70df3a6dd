"""What every sandbox backend shares: the limits, the result, capped reading of streams.

Backends (bubblewrap, a Pod) differ in how they isolate; they agree on what comes back,
how much of it, and how a stop is explained (``Sandboxed.reason``).
"""

from __future__ import annotations

import io
import os
import posixpath
import re
import tarfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from labctl.core.errors import LabctlError

CUT_MARK = "\n[labctl sandbox: output cut at {limit} bytes]\n"
# Inside every backend: the learner's writable scratch, its cwd, and the read-only inputs.
SCRATCH, WORKDIR, INPUTS = "/scratch", "/scratch/work", "/inputs"
SANDBOX_UID = 65534  # what the learner's code sees as its uid, in every backend

# NB: numeric libraries start a thread (and a 64 MiB malloc arena) per core; under RLIMIT_AS that
# alone can exhaust a check's address space on a big machine. One thread is plenty for a check.
QUIET_ENV = {
    "LANG": "C.UTF-8",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "MALLOC_ARENA_MAX": "2",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONNOUSERSITE": "1",
}


@dataclass(frozen=True)
class Limits:
    """What one sandboxed run may use; the defaults suit a check that trains a small model."""

    wall_s: float = 120
    cpu_s: int = 120
    memory_mb: int = 2048
    disk_mb: int = 512
    processes: int = 128
    output_bytes: int = 1_000_000


@dataclass(frozen=True)
class Sandboxed:
    """How a sandboxed run ended and what it left: bounded streams and the files asked for."""

    exit_code: int | None  # None: stopped by the sandbox (``reason`` says why)
    stdout: str
    stderr: str
    timed_out: bool
    reason: str | None
    files: dict[str, bytes] = field(default_factory=dict)
    where: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.reason is None

    def tail(self, lines: int = 8) -> str:
        """The last lines of stderr then stdout, for feedback."""
        text = (self.stderr or "") + (self.stdout or "")
        return "\n".join(text.strip().splitlines()[-lines:])


class SandboxUnavailable(LabctlError):
    """No way to sandbox learner code here: never run it unsandboxed. A grader turns this into its
    own error (the check ends as ``error``)."""


class CappedReader:
    """Drains a pipe in a thread, keeping at most ``limit`` bytes; calls ``on_overflow`` once past it."""

    def __init__(self, fd: int, limit: int, on_overflow: object = None) -> None:
        self.limit, self.cut = limit, False
        self._chunks: list[bytes] = []
        self._kept = 0
        self._on_overflow = on_overflow
        self._thread = threading.Thread(target=self._drain, args=(fd,), daemon=True)
        self._thread.start()

    def _drain(self, fd: int) -> None:
        try:
            while chunk := os.read(fd, 65536):
                room = self.limit - self._kept
                if len(chunk) > room:
                    self._chunks.append(chunk[: max(room, 0)])
                    self._kept = self.limit
                    if not self.cut:
                        self.cut = True
                        if callable(self._on_overflow):
                            self._on_overflow()
                    continue  # keep draining so the writer never blocks on a full pipe
                self._chunks.append(chunk)
                self._kept += len(chunk)
        finally:
            os.close(fd)

    def result(self, timeout: float = 5.0) -> bytes:
        self._thread.join(timeout)
        return b"".join(self._chunks)

    def text(self, timeout: float = 5.0) -> str:
        text = self.result(timeout).decode("utf-8", errors="replace")
        return text + CUT_MARK.format(limit=self.limit) if self.cut else text


def check_request(inputs: Mapping[str, bytes], outputs: Sequence[str], env: Mapping[str, str]) -> None:
    """Refuse names that would escape /inputs or the work copy (a bug in a check, not the learner)."""
    for name in inputs:
        if not name or "/" in name or name in (".", "..") or "\0" in name:
            raise ValueError(f"sandbox input name {name!r}: a plain file name, placed at /inputs/<name>")
    for path in outputs:
        norm = posixpath.normpath(path)
        if not path or norm.startswith(("/", "..")) or norm == "." or "\0" in path or "\n" in path:
            raise ValueError(f"sandbox output {path!r}: a relative path inside the work copy")
    for key, value in env.items():
        if not key or "=" in key or "\0" in key or "\0" in value:
            raise ValueError(f"sandbox env {key!r}: not a valid environment variable")


def files_from_tar(data: bytes, outputs: Sequence[str]) -> dict[str, bytes]:
    """The regular files of a tar stream that are (or lie under) a requested output path.

    Read in memory, never extracted: member names are the learner's to choose, so a name with
    ``..`` or a symlink member simply matches nothing.
    """
    wanted = [posixpath.normpath(p) for p in outputs]
    files: dict[str, bytes] = {}
    if not data:
        return files
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for member in tar:
                name = posixpath.normpath(member.name)
                if (
                    name.startswith(("/", ".."))
                    or not member.isreg()
                    or not any(name == w or name.startswith(w + "/") for w in wanted)
                ):
                    continue
                extracted = tar.extractfile(member)
                if extracted is not None:
                    files[name] = extracted.read()
    except tarfile.TarError:
        pass  # a truncated stream (the run was stopped mid-way): what was read is what came back
    return files


_REASONS = (
    (re.compile(r"MemoryError|Cannot allocate memory|std::bad_alloc|out of memory", re.I), "memory limit"),
    (re.compile(r"No space left on device|Disk quota exceeded", re.I), "disk limit"),
    (
        re.compile(r"Resource temporarily unavailable|BlockingIOError|fork: retry|Cannot fork", re.I),
        "process limit",
    ),
)


def guess_reason(exit_code: int | None, stderr: str, limits: Limits) -> str | None:
    """Which limit most likely ended a failed run, from its exit status and last words.

    A process cannot be told why malloc or fork failed, so beyond CPU time (a signal) this
    reads the error the learner's program printed; a guess, shown as such in feedback.
    """
    if exit_code in (None, 0):
        return None
    if exit_code == 128 + 24:  # SIGXCPU: RLIMIT_CPU's soft limit
        return f"CPU time limit {limits.cpu_s} s"
    tail = stderr[-4000:]
    for pattern, what in _REASONS:
        if pattern.search(tail):
            detail = {
                "memory limit": f" ({limits.memory_mb} MiB)",
                "disk limit": f" ({limits.disk_mb} MiB)",
                "process limit": f" ({limits.processes} processes)",
            }[what]
            return what + detail
    return None
