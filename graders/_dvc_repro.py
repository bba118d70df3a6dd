"""`dvc repro` of a learner's pipeline, in the sandbox.

The grader's own code clones the submission and pulls its data with the store credentials
(:mod:`graders._dvc_repo`); then the learner's stage commands — their code — run inside
:mod:`labctl.sandbox` on a copy of that clone, with no credentials, no network and bounded
resources. Only the files the check reads afterwards (the metrics) come back into the clone.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Sequence
from pathlib import Path

from graders._dvc_repo import Clone, LearnerProblem
from graders.core import Context, GraderError
from labctl import sandbox

# DVC inside the sandbox: its config, site cache and tmp live in the scratch HOME (the defaults).
DVC_ENV = {"DVC_NO_ANALYTICS": "1", "GIT_TERMINAL_PROMPT": "0"}
AFTER_S = 15.0  # kept back from the check's deadline for reading the metrics afterwards


def repro(clone: Clone, ctx: Context, keep: Sequence[str]) -> sandbox.Sandboxed:
    """Run `dvc repro --force` sandboxed on a copy of the clone; write ``keep`` back into the clone.

    A stage that fails, or is stopped by a limit, is the learner's failure (LearnerProblem with
    what it printed and which limit); no sandbox here is a GraderError (the check's status: error).
    """
    wanted = [p for p in (posixpath.normpath(k) for k in keep) if _inside(p)]
    wall = max(1.0, ctx.remaining() - AFTER_S)
    limits = sandbox.Limits(wall_s=wall, cpu_s=int(wall) + 1, disk_mb=_disk_mb(clone.root))
    try:
        ran = sandbox.run(
            ["python", "-m", "dvc", "repro", "--force"],
            work=clone.root,
            outputs=wanted,
            env=DVC_ENV,
            limits=limits,
            python=True,
            deadline_s=wall,
        )
    except sandbox.SandboxUnavailable as exc:
        raise GraderError(str(exc)) from None
    if ran.reason is not None and (ran.exit_code is None or ran.exit_code != 0):
        raise LearnerProblem(
            f"`dvc repro` was stopped by the grader's sandbox: {ran.reason}:\n{ran.tail(4)}",
            sandbox=ran.where,
        )
    if ran.exit_code != 0:
        raise LearnerProblem(f"`dvc repro` fails at this commit:\n{ran.tail()}", sandbox=ran.where)
    for path in wanted:
        _replace(clone.root, path, ran.files.get(path))
    return ran


def _inside(path: str) -> bool:
    return not (path.startswith(("/", "..")) or path == ".")


def _disk_mb(root: Path) -> int:
    """Room for the copy of the clone and what the pipeline writes beside it."""
    size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file() and not f.is_symlink())
    return max(512, 3 * (size >> 20) + 256)


def _replace(root: Path, path: str, data: bytes | None) -> None:
    """Put a reproduced file where the committed one was (gone if the pipeline did not write it).

    NB: the clone is the learner's: a committed symlink must not turn this write into one
    outside the clone, so the parent is resolved and checked, and the file opened O_NOFOLLOW.
    """
    target = root / path
    parent = target.parent.resolve()
    if parent != root.resolve() and root.resolve() not in parent.parents:
        return
    if target.is_dir() and not target.is_symlink():
        return
    if target.is_symlink() or target.exists():
        target.unlink()
    if data is None:
        return
    parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(parent / target.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
