"""``labctl lab test``: prove a lab honest on a real cluster, the way learners would meet it.

For each lab: a throwaway cohort with one learner per run — ``fresh`` (nothing done), one per
planted mistake, and ``solution`` — all provisioned at once. Each learner starts the lab, runs
their script (``mistakes/<name>/run.sh`` or ``solution/run.sh``) with their own kubeconfig and
stacks, and asks for a check through their session, as ``labctl lab check`` does: the controller
grades. Then: fresh → every check fails; a mistake → exactly the checks it names fail; the
solution → full marks. Any other result is a deviation (exit 1). The cohort goes after, unless
``keep``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from labctl.api.labs import LabSessionStatus
from labctl.api.v1alpha1 import RosterEntry
from labctl.authoring import follow
from labctl.catalog.load import LabFolder
from labctl.catalog.publish import publish
from labctl.cohorts import credentials
from labctl.cohorts import operations as cohorts
from labctl.core.errors import LabctlError
from labctl.grading.reach import PortForwards
from labctl.kube import Kube
from labctl.provision.naming import learner_namespace
from labctl.sessions import client, gates
from labctl.sessions.env import PORT_OFFSET_ENV, stack_env

SCRIPT_TIMEOUT_S = 900
CHECK_TIMEOUT_S = 1200


@dataclass(frozen=True)
class Run:
    """One learner's part of a lab test: which script, which checks must fail."""

    stage: str  # fresh | mistake:<name> | solution | readme
    script: Path | None  # for readme: the README, followed (labctl.authoring.follow)
    must_fail: frozenset[str]  # every other check must pass


@dataclass(frozen=True)
class Outcome:
    lab: str
    stage: str
    expected: str
    got: str
    seconds: float
    ok: bool
    detail: str = ""


def runs_of(folder: LabFolder) -> list[Run]:
    every = frozenset(c.name for c in folder.lab.checks)
    return [
        Run("fresh", None, every),
        *(Run(f"mistake:{m.name}", m.script, frozenset(m.spec.fails)) for m in folder.mistakes),
        Run("solution", folder.solution, frozenset()),
        *([Run("readme", folder.path / "README.md", frozenset())] if follow.script(folder.readme) else []),
    ]


def _email(run: Run) -> str:
    return f"{run.stage.replace(':', '-')}@labtest.local"


def _cohort_name(folder: LabFolder) -> str:
    digest = hashlib.sha256(f"{folder.id}{time.time_ns()}".encode()).hexdigest()[:6]
    return f"lt-{folder.lab.name[:14].rstrip('-')}-{digest}"


def _describe(must_fail: frozenset[str], every: frozenset[str]) -> str:
    if must_fail == every:
        return "all fail"
    if not must_fail:
        return "full marks"
    return "fail: " + ",".join(sorted(must_fail))


def judge(run: Run, folder: LabFolder, status: LabSessionStatus) -> tuple[str, bool, str]:
    """(what happened, as expected?, details of each check that deviated)."""
    every = frozenset(c.name for c in folder.lab.checks)
    results = {c.name: c for t in status.tasks for c in t.checks}
    failed = frozenset(n for n, c in results.items() if c.status != "passed")
    errors = sorted(n for n, c in results.items() if c.status == "error")
    got = _describe(failed, every) + (f" (errors: {','.join(errors)})" if errors else "")
    ok = failed == run.must_fail and not errors and set(results) == every
    if not run.must_fail:  # the solution, the README: a pass with every point
        ok = ok and status.passed and status.score == status.max_score
    deviations = [
        f"{n}: {c.status}: {c.feedback.splitlines()[-1] if c.feedback else ''}"
        for n, c in sorted(results.items())
        if (n in run.must_fail) != (c.status != "passed") or c.status == "error"
    ]
    return got, ok, "; ".join(deviations)


def _script_env(
    kube: Kube, folder: LabFolder, namespace: str, kubeconfig: Path, scratch: Path, reach: PortForwards
) -> dict[str, str]:
    """The environment a learner's shell has after ``eval "$(labctl lab env)"`` (and nothing of ours)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise LabctlError("no `kubectl` on PATH: lab scripts need it (`labctl toolchain build` makes one)")
    kubectl_dir = str(Path(kubectl).parent)
    venv_bin = str(Path(sys.executable).parent)
    env = {
        "PATH": os.pathsep.join([venv_bin, kubectl_dir, "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": str(scratch / "home"),
        "KUBECONFIG": str(kubeconfig),
        "LAB_DIR": str(scratch / "lab"),
        "LANG": "C.UTF-8",
    }
    return {**env, **stack_env(kube, namespace, reach, stacks=folder.lab.stacks)}


def _free_port_offset() -> int:
    """An offset that frees `labctl lab connect`'s ports for a README being followed beside others."""
    for _ in range(200):
        offset = random.randrange(100, 550) * 100
        try:
            for port in (5000, 7070, 9090, 9093):
                socket.create_server(("127.0.0.1", port + offset)).close()
        except OSError:
            continue
        return offset
    raise RuntimeError("no free local ports for labctl lab connect")


def solve(
    learner: Kube, folder: LabFolder, script: Path, *, kubeconfig: Path, namespace: str
) -> subprocess.CompletedProcess[str]:
    """Run a lab's ``run.sh`` (solution or mistake) as the learner whose kubeconfig this is: in a
    scratch copy of the lab (no hidden data), their stacks port-forwarded with their own rights.
    ``README.md`` is followed instead (labctl.authoring.follow), from an empty working folder."""
    scratch = Path(tempfile.mkdtemp(prefix="labctl-solve-"))
    forwards = PortForwards(learner)
    try:
        (scratch / "home").mkdir()
        env = _script_env(learner, folder, namespace, kubeconfig, scratch, forwards)
        lab_dir = Path(env["LAB_DIR"])
        shutil.copytree(folder.path, lab_dir, ignore=shutil.ignore_patterns("hidden", "__pycache__"))
        cwd = lab_dir / script.parent.relative_to(folder.path)
        if script.name == "README.md":
            cwd = scratch / "work"  # a learner starts in a folder of their own
            cwd.mkdir()
            (scratch / "follow.sh").write_text(follow.script(folder.readme) or "")
            script = scratch / "follow.sh"
            env[PORT_OFFSET_ENV] = str(_free_port_offset())
        argv = ["bash", str(script) if script.is_absolute() else script.name]
        # Its own process group, ended whole when the time is up: what the script started in the
        # background (a `labctl lab connect &`) must not outlive it. The output so far is kept.
        proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True,
        )  # fmt: skip
        try:
            out, err = proc.communicate(timeout=SCRIPT_TIMEOUT_S)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            err += f"\n(labctl lab test: stopped after {SCRIPT_TIMEOUT_S}s)"
            code = -signal.SIGKILL
        return subprocess.CompletedProcess(argv, code, out, err)
    finally:
        forwards.close()
        shutil.rmtree(scratch, ignore_errors=True)


def _one(kube: Kube, folder: LabFolder, run: Run, learner: dict, log_dir: Path) -> Outcome:  # type: ignore[type-arg]
    started = time.monotonic()
    ns = learner_namespace(learner)
    expected = _describe(run.must_fail, frozenset(c.name for c in folder.lab.checks))

    def outcome(got: str, ok: bool, detail: str = "") -> Outcome:
        return Outcome(folder.id, run.stage, expected, got, time.monotonic() - started, ok, detail)

    scratch = Path(tempfile.mkdtemp(prefix="labctl-labtest-"))
    try:
        kubeconfig = scratch / "kubeconfig"
        kubeconfig.write_text(credentials.learner_kubeconfig(kube, ns, duration=dt.timedelta(hours=2)))
        kubeconfig.chmod(0o600)
        learner_kube = Kube.connect(kubeconfig=str(kubeconfig))
        client.start(kube, ns, folder.id, override=True)  # an instructor's start: prerequisites waived
        status = client.wait(learner_kube, ns, folder.id, lambda s: s.phase in client.SETTLED, timeout=600)
        if status.phase != "Ready":
            return outcome(f"session {status.phase}: {status.message}", False)
        if run.script is not None:
            proc = solve(learner_kube, folder, run.script, kubeconfig=kubeconfig, namespace=ns)
            log = log_dir / f"{folder.lab.name}.{run.stage.replace(':', '-')}.log"
            log.write_text(f"$ bash {run.script}\n{proc.stdout}\n--- stderr ---\n{proc.stderr}")
            if run.stage == "readme":
                # Following the README: a check may fail mid-way (it shows what is missing); any other
                # command that fails is a README that does not work as written.
                broken = [
                    c for c in follow.failed_commands(proc.stderr) if not c.startswith("labctl lab check")
                ]
                if broken:
                    return outcome(f"README step failed: {broken[0]}", False, f"see {log}")
                done = client.status_of(client.get(learner_kube, ns, folder.id) or {})
                time.sleep(gates.cooldown_left(done.last_check_at, gates.now(), folder.lab.cooldown_seconds))
            elif proc.returncode != 0:
                return outcome(f"run.sh exited {proc.returncode}", False, f"see {log}")
        wanted = client.bump(learner_kube, ns, folder.id, "checkRequest")  # `labctl lab check`, as them
        status = client.wait(
            learner_kube, ns, folder.id, lambda s: s.checks_served >= wanted, timeout=CHECK_TIMEOUT_S
        )
        if gates.check_refused(status.message):
            return outcome(status.message, False)
        got, ok, detail = judge(run, folder, status)
        return outcome(got, ok, detail)
    except Exception as exc:  # one run's trouble is its row, not the whole test's end
        return outcome(f"{type(exc).__name__}: {exc}", False)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def test_lab(
    kube: Kube,
    folder: LabFolder,
    *,
    keep: bool = False,
    log_dir: Path,
    on_result: Callable[[Outcome], None] = lambda _o: None,
) -> list[Outcome]:
    """Every run of one lab, concurrently, on a throwaway cohort; the cohort goes after unless ``keep``."""
    publish(kube, [folder])
    runs = runs_of(folder)
    name = _cohort_name(folder)
    lab = folder.lab
    cohort = cohorts.build_cohort(
        name,
        level=lab.level,
        learners=[RosterEntry(email=_email(r), name=r.stage) for r in runs],
        labs=[lab.id],
        quota_profile=lab.resources.quota_profile,
        expires=None,
        source=f"lab test {lab.id}",
    )
    cohorts.apply_cohort(kube, cohort)
    try:
        cohorts.wait_ready(kube, name, timeout=900)
        by_email = {lr["spec"]["email"]: lr for lr in cohorts.learners(kube, name)}
        with ThreadPoolExecutor(max_workers=len(runs)) as pool:
            futures = [pool.submit(_one, kube, folder, r, by_email[_email(r)], log_dir) for r in runs]
            results = []
            for future in futures:
                results.append(future.result())
                on_result(results[-1])
        return results
    finally:
        if not keep:
            cohorts.delete_cohort(kube, name, wait=False)


def test_labs(
    kube: Kube,
    folders: Sequence[LabFolder],
    *,
    keep: bool,
    log_dir: Path,
    on_result: Callable[[Outcome], None],
    parallel: int = 4,
) -> list[Outcome]:
    """Labs run ``parallel`` at a time (each its own cohort; its runs all at once)."""
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(folders)))) as pool:
        futures = [
            pool.submit(test_lab, kube, f, keep=keep, log_dir=log_dir, on_result=on_result) for f in folders
        ]
        return [o for future in futures for o in future.result()]
