"""The sandbox inside the cluster: a short-lived Pod (not built yet: in-cluster grading reports error)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from graders.sandbox._common import Limits, Sandboxed, SandboxUnavailable


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
    raise SandboxUnavailable("the in-cluster Pod sandbox is not built yet: grade from outside the cluster")
