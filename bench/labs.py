"""A learner's wait: `lab start` until Ready, and the `lab check` round trip, per lab.

Against a cluster with labctl installed, its controller running and the labs published
(``--kubeconfig``; on the real node for labs whose stacks run). For each lab: a cohort of one
learner at the lab's level; ``--runs`` times: the session created with the learner's kubeconfig
until Ready (then stopped and deleted), and a check asked through the session until answered
(the cooldown waited out between runs, not counted). Baselines in the same run, same cluster:
  start  applying the lab's setup objects directly (what a start must at least do)
  check  the same checks run in this process by the grading engine (what a check must at least
         cost; the difference is the controller's round trip: the spec write, its watch, the
         status write, the record)
With ``--solved``, the learner then runs the lab's reference solution and the check is timed again
on a lab that passes: a fresh learner's checks fail early (no model to score, no endpoint to load).
Targets: `lab check` <= 5 s for labs without a scenario; `lab start` <= 15 s with images cached.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from labctl.api.labs import LabSessionStatus, LabSpec
from labctl.api.v1alpha1 import API_VERSION, RosterEntry
from labctl.authoring.labtest import solve
from labctl.catalog.load import builtin_root, load_catalog
from labctl.catalog.publish import hidden_files, latest, published
from labctl.cli.common import prefer_built_kubectl
from labctl.cohorts import credentials
from labctl.cohorts import operations as cohorts
from labctl.grading.reach import reaching
from labctl.grading.run import grade
from labctl.kube import Kube
from labctl.sessions import client, gates
from labctl.sessions.plan import hidden_dir, place_of, plan_of

START_TARGET_S, CHECK_TARGET_S = 15.0, 5.0


def fmt(values: list[float]) -> str:
    return f"median {statistics.median(values):6.2f}s  worst {max(values):6.2f}s"


def timed_check(me: Kube, ns: str, lab_id: str) -> tuple[float, LabSessionStatus]:
    """`labctl lab check` as the learner: seconds until the session answers it, and its answer."""
    wanted = client.bump(me, ns, lab_id, "checkRequest")

    def served(s: LabSessionStatus) -> bool:
        return s.checks_served >= wanted

    t = time.perf_counter()
    status = client.wait(me, ns, lab_id, served, timeout=1200)
    seconds = time.perf_counter() - t
    assert not gates.check_refused(status.message), status.message
    return seconds, status


def _checks_when_solved(me: Kube, kubeconfig: Path, ns: str, lab_id: str, runs: int) -> list[float]:
    """The learner runs the reference solution; then ``runs`` checks of a lab that passes (the checks
    that score a model in the sandbox or load an endpoint do their whole work only then)."""
    folder = next(f for f in load_catalog([builtin_root()]) if f.id == lab_id)
    assert folder.solution is not None, f"{lab_id} has no solution"
    proc = solve(me, folder, folder.solution, kubeconfig=kubeconfig, namespace=ns)
    assert proc.returncode == 0, f"{lab_id} solution exited {proc.returncode}:\n{proc.stderr[-2000:]}"
    seconds: list[float] = []
    for _ in range(runs):
        done = client.status_of(client.get(me, ns, lab_id) or {})
        time.sleep(gates.cooldown_left(done.last_check_at, gates.now(), folder.lab.cooldown_seconds) + 0.5)
        took, status = timed_check(me, ns, lab_id)
        seconds.append(took)
        assert status.score == status.max_score, f"{lab_id} solved scored {status.score}/{status.max_score}"
    return seconds


def bench_lab(
    admin: Kube, spec: LabSpec, runs: int, tmp: Path, *, solved: bool = False
) -> dict[str, list[float]]:
    lab = spec.definition
    name = f"bl-{uuid.uuid4().hex[:6]}"
    cohort = cohorts.build_cohort(
        name, level=lab.level, learners=[RosterEntry(email="bench@labs.local")], labs=[lab.id],
        quota_profile=lab.resources.quota_profile, expires=None, source="bench",
    )  # fmt: skip
    cohorts.apply_cohort(admin, cohort)
    figures: dict[str, list[float]] = {"start": [], "start baseline": [], "check": [], "check baseline": []}
    try:
        cohorts.wait_ready(admin, name, timeout=900)
        (learner,) = cohorts.learners(admin, name)
        ns = learner["status"]["namespace"]
        kubeconfig = tmp / f"{name}.kubeconfig"
        kubeconfig.write_text(credentials.learner_kubeconfig(admin, ns, duration=dt.timedelta(hours=1)))
        me = Kube.connect(kubeconfig=str(kubeconfig))
        for _ in range(runs):
            t = time.perf_counter()
            client.start(admin, ns, lab.id, override=True)
            client.wait(me, ns, lab.id, lambda s: s.phase in client.SETTLED, timeout=600)
            figures["start"].append(time.perf_counter() - t)
            t = time.perf_counter()
            for obj in spec.setup:
                admin.apply({**obj, "metadata": {**obj["metadata"], "namespace": ns}}, field_manager="bench")
            figures["start baseline"].append(time.perf_counter() - t)
            admin.delete(API_VERSION, client.KIND, client.session_name(lab.id), ns)
            admin.wait_for(lambda: client.get(admin, ns, lab.id) is None, timeout=60, what="session gone")
        client.start(admin, ns, lab.id, override=True)
        client.wait(me, ns, lab.id, lambda s: s.phase in client.SETTLED, timeout=600)
        for _ in range(runs):
            took, status = timed_check(me, ns, lab.id)
            figures["check"].append(took)
            t = time.perf_counter()
            with hidden_dir(hidden_files(admin, spec)) as hidden, reaching(admin, "auto") as reach:
                start = status.started_at

                def places(lr: dict, h: Path = hidden, s: dt.datetime | None = start) -> dict[str, str]:  # type: ignore[type-arg]
                    return place_of(lr, lab.id, hidden=h, session_start=s)

                grade(admin, plan_of(spec), [learner], graded_by="bench", record_attempts=False,
                      reach=reach, places=places)  # fmt: skip
            figures["check baseline"].append(time.perf_counter() - t)
            time.sleep(lab.cooldown_seconds + 0.5)  # the cooldown is the lab's rule, not our cost
        if solved:
            figures["check solved"] = _checks_when_solved(me, kubeconfig, ns, lab.id, runs)
        return figures
    finally:
        cohorts.delete_cohort(admin, name, wait=False)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--lab", action="append", help="lab id (repeat); default: every published lab")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--solved", action="store_true",
        help="also time checks after the reference solution ran (labs without a scenario)",
    )  # fmt: skip
    args = parser.parse_args()
    prefer_built_kubectl()  # the solution scripts' kubectl, as `labctl lab test` runs them
    admin = Kube.connect(kubeconfig=args.kubeconfig)
    ids = args.lab or sorted({s.id for s in published(admin)})
    tmp = Path(f"/tmp/labctl-bench-labs-{uuid.uuid4().hex[:6]}")
    tmp.mkdir()
    ok = True
    for lab_id in ids:
        spec = latest(admin, lab_id)
        if spec is None:
            print(f"{lab_id}: not published")
            ok = False
            continue
        scenario = any(c.grader in ("prometheus.drift_alert",) for c in spec.definition.checks)
        f = bench_lab(admin, spec, args.runs, tmp, solved=args.solved and not scenario)
        print(f"{lab_id}  ({args.runs} runs)")
        print(f"  lab start -> Ready   {fmt(f['start'])}   baseline (apply setup) {fmt(f['start baseline'])}")
        print(
            f"  lab check round trip {fmt(f['check'])}   baseline (engine here)  {fmt(f['check baseline'])}"
        )
        if "check solved" in f:
            print(f"  lab check, solved    {fmt(f['check solved'])}   (the checks' whole work)")
        start_ok = max(f["start"]) <= START_TARGET_S
        check_ok = scenario or max(f["check"] + f.get("check solved", [])) <= CHECK_TARGET_S
        check_verdict = "n/a (scenario)" if scenario else "met" if check_ok else "MISSED"
        start_verdict = "met" if start_ok else "MISSED"
        print(
            f"  targets: start <= {START_TARGET_S:g}s {start_verdict}; "
            f"check <= {CHECK_TARGET_S:g}s {check_verdict}"
        )
        ok = ok and start_ok and check_ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
