"""The one way a grader runs learner code: a sandbox with no network, no credentials, bounded resources.

Learner code (a pipeline stage, a script, a model's ``predict`` after unpickling it) is untrusted.
A grader never runs it in its own process or with its own privileges: it calls :func:`run`, which
gives the code a scratch copy of ``work`` as its cwd, the check's ``inputs`` read-only under
``/inputs``, an empty HOME, an environment of only what the check passes, no network (its own
network namespace: loopback only), its own PID namespace, an unprivileged uid (also when the grader
is root), a read-only system, and bounds on CPU time, memory, disk, processes, output and wall
clock; the wall clock ends its whole process tree. What comes back: exit status, bounded
stdout/stderr, the output files asked for, and ``where`` it ran (put that in the check's evidence).

Two backends behind this interface, chosen automatically:

- **bubblewrap** (:mod:`labctl.sandbox.bwrap`) on a workstation or CI. Why bubblewrap: it is
  packaged by Debian (and every major distribution), works unprivileged on user namespaces, is the
  sandbox under Flatpak (so widely exercised and reviewed), needs no daemon and no image, and
  starts in milliseconds. nsjail is not in Debian stable and wants a config language of its own;
  firejail is setuid-root with a long CVE history; docker/podman need a daemon or images and a
  rootless setup CI rarely has.
- **a Pod** (:mod:`labctl.sandbox.pod`) when labctl runs inside the cluster (the in-cluster
  controller): a short-lived Pod in the grader's own namespace, no ServiceAccount token, Pod
  Security ``restricted``, egress denied.

``LABCTL_SANDBOX=bwrap|pod`` forces one. Where neither can run, :class:`SandboxUnavailable` (a
grader reports it as its own error: the check ends as ``error``): learner code never runs
unsandboxed.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from labctl.sandbox._common import INPUTS, SCRATCH, WORKDIR, Limits, Sandboxed, SandboxUnavailable

__all__ = ["INPUTS", "SCRATCH", "WORKDIR", "Limits", "SandboxUnavailable", "Sandboxed", "backend", "run"]

TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


def backend() -> str:
    """``pod`` inside a cluster (a service host and a mounted token), else ``bwrap``."""
    forced = os.environ.get("LABCTL_SANDBOX", "").strip()
    if forced:
        if forced not in ("bwrap", "pod"):
            raise SandboxUnavailable(f"LABCTL_SANDBOX={forced!r}: expected bwrap or pod")
        return forced
    return "pod" if os.environ.get("KUBERNETES_SERVICE_HOST") and TOKEN.is_file() else "bwrap"


def run(
    argv: Sequence[str],
    *,
    work: Path | None = None,
    inputs: Mapping[str, bytes] = {},
    outputs: Sequence[str] = (),
    env: Mapping[str, str] = {},
    limits: Limits = Limits(),  # noqa: B008 - frozen
    python: bool = False,
    deadline_s: float | None = None,
) -> Sandboxed:
    """Run ``argv`` (cwd: a scratch copy of ``work``) in the sandbox; see the module docstring.

    ``inputs``: files placed read-only at ``/inputs/<name>`` (hidden features, never labels).
    ``outputs``: paths relative to the work copy to bring back (a directory brings its files).
    ``env``: the whole environment the code gets beyond PATH/HOME/TMPDIR/LANG; never the grader's.
    ``python``: make the grader's interpreter and its packages (sklearn, mlflow, pandas, dvc)
    available read-only, first on PATH as ``python``. ``deadline_s``: the seconds left before the
    check's deadline (``ctx.remaining()``); the wall clock is the smaller of it and ``limits.wall_s``.
    """
    from labctl.sandbox._common import check_request

    if not argv:
        raise ValueError("sandbox argv is empty")
    check_request(inputs, outputs, env)
    if work is not None and not Path(work).is_dir():
        raise ValueError(f"sandbox work directory {work} does not exist")
    wall = limits.wall_s if deadline_s is None else max(0.1, min(limits.wall_s, deadline_s))
    chosen = importlib.import_module(f"labctl.sandbox.{backend()}")
    result: Sandboxed = chosen.run(
        argv, work=work, inputs=inputs, outputs=outputs, env=env, limits=limits, python=python, wall_s=wall
    )
    return result
