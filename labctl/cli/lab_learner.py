"""The learner's journey: ``labctl lab list|show|files|start|status|check|env|connect|reset|stop``.

Each command works with the learner's own kubeconfig (their namespace is its context's). An
instructor acts for a learner with ``--cohort C --learner EMAIL``. Checks never run here: ``check``
asks the controller through the session's spec and prints the answer it writes back.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from labctl.cli.common import kube_options
from labctl.cli.output import console, emit, err_console, output_option
from labctl.core.errors import LabctlError, UsageError

if TYPE_CHECKING:
    from labctl.api.labs import LabSessionStatus
    from labctl.kube import Kube

# Each command imports the sessions code it runs in its body, not here: those modules import the
# Kubernetes client and pydantic models, and `labctl lab --help` must not pay for them (startup time).

MARK = {"passed": "✓", "failed": "✗", "error": "!", "pending": "·"}


def _namespace(kube: Kube, namespace: str | None, cohort: str | None, learner: str | None) -> str:
    """Whose lab: ``--cohort/--learner`` (instructors), ``-n``, or the kubeconfig's namespace."""
    if learner or cohort:
        if not (learner and cohort):
            raise UsageError("--learner and --cohort go together (an instructor acting for a learner)")
        from labctl.cohorts import operations as cohorts
        from labctl.provision.naming import learner_namespace

        found = cohorts.find_learner(kube, cohort, learner)
        return learner_namespace(found)
    return namespace or kube.namespace


def whose(func: Callable[..., Any]) -> Callable[..., Any]:
    """``-n``, ``--cohort`` and ``--learner``; the command receives ``namespace``."""
    func = click.option("--learner", default=None, help="Instructors: act for this learner (e-mail).")(func)
    func = click.option("--cohort", default=None, help="Instructors: the learner's cohort.")(func)
    return click.option("-n", "--namespace", default=None, help="Your namespace (default: kubeconfig's).")(
        func
    )


def _progress(status: LabSessionStatus) -> None:
    err_console.print(f"  {status.phase or 'Pending'}: {status.message}" if status.message else "  ...")


@click.command("list")
@click.option("--level", type=click.Choice(["foundation", "professional", "advanced"]), default=None)
@output_option
@kube_options
def list_cmd(kube: Kube, level: str | None, output: str) -> None:
    """The labs published in this cluster (newest version of each)."""
    from labctl.catalog.publish import newest

    rows = [
        {
            "id": s.id,
            "level": s.definition.level,
            "track": s.definition.track,
            "paths": ",".join(s.definition.paths),
            "duration": s.definition.duration,
            "version": s.version,
            "title": s.definition.title,
        }
        for s in newest(kube)
        if level is None or s.definition.level == level
    ]
    emit(rows, output=output, title="published labs")


@click.command("show")
@click.argument("lab_id")
@kube_options
def show_cmd(kube: Kube, lab_id: str) -> None:
    """Print LAB_ID's instructions (its README), rendered for the terminal."""
    from rich.markdown import Markdown

    from labctl.sessions import client

    spec = client.published_lab(kube, lab_id)
    console.print(Markdown(spec.readme))


@click.command("files")
@click.argument("lab_id")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--force", is_flag=True, help="Overwrite files you have changed.")
@kube_options
def files_cmd(kube: Kube, lab_id: str, directory: Path, force: bool) -> None:
    """Write LAB_ID's starter files into DIRECTORY (unchanged files are left alone)."""
    from labctl.sessions import client

    spec = client.published_lab(kube, lab_id)
    changed = [
        p
        for p, text in spec.files.items()
        if (directory / p).is_file() and (directory / p).read_text() != text
    ]
    if changed and not force:
        raise UsageError(f"you changed {', '.join(changed)} in {directory}: keep them, or pass --force")
    for rel, text in spec.files.items():
        target = directory / rel
        if target.is_file() and target.read_text() == text:
            click.echo(f"{target} unchanged")
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        click.echo(f"{target} written")


@click.command("start")
@click.argument("lab_id")
@whose
@click.option("--override", is_flag=True, help="Instructors: start despite level and prerequisites.")
@click.option("--timeout", type=float, default=300, show_default=True, help="Seconds to wait for Ready.")
@kube_options
def start_cmd(
    kube: Kube,
    lab_id: str,
    namespace: str | None,
    cohort: str | None,
    learner: str | None,
    override: bool,
    timeout: float,
) -> None:
    """Start LAB_ID: the controller checks you may, applies its setup and wakes its stacks."""
    from labctl.sessions import client
    from labctl.sessions.client import SETTLED

    ns = _namespace(kube, namespace, cohort, learner)
    client.start(kube, ns, lab_id, override=override)
    err_console.print(f"starting {lab_id} in {ns}")
    status = client.wait(kube, ns, lab_id, lambda s: s.phase in SETTLED, timeout=timeout, on_change=_progress)
    if status.phase == "Refused":
        raise LabctlError(f"cannot start {lab_id}: {status.message}")
    click.echo(f"{lab_id} is {status.phase}; session ends at {status.expires_at}")
    click.echo(f"  instructions:   labctl lab show {lab_id}")
    click.echo(f"  starter files:  labctl lab files {lab_id} .")
    click.echo('  your stacks:    eval "$(labctl lab env)"   (after: labctl lab connect &)')
    click.echo(f"  when done:      labctl lab check {lab_id}")


def _task_rows(status: LabSessionStatus) -> list[dict[str, Any]]:
    return [
        {
            "task": f"{MARK.get(t.state, '?')} {t.title}",
            "state": t.state,
            "points": f"{t.points:g}/{t.max_points:g}",
        }
        for t in status.tasks
    ]


def _print_session(
    kube: Kube, namespace: str, lab_id: str, status: LabSessionStatus, *, feedback: bool
) -> None:
    click.echo(
        f"{lab_id}: {status.phase} · score {status.score:g}/{status.max_score:g} · attempts {status.attempts}"
    )
    if status.message:
        click.echo(f"  {status.message}")
    emit(_task_rows(status), output="table")
    if feedback:
        for task in status.tasks:
            for check in task.checks:
                if check.status != "passed":
                    click.echo(
                        f"\n{MARK.get(check.status, '?')} {task.title} / {check.name} ({check.status}):"
                    )
                    click.echo("  " + check.feedback.replace("\n", "\n  "))
    from labctl.sessions import client
    from labctl.sessions.results import next_hint

    spec = client.session_lab(kube, namespace, lab_id)  # its hints, not a newer version's
    if (hint := next_hint(spec.definition, status.tasks)) is not None:
        click.echo(f"\nhint: {hint}")


@click.command("status")
@click.argument("lab_id", required=False)
@whose
@output_option
@kube_options
def status_cmd(
    kube: Kube,
    lab_id: str | None,
    namespace: str | None,
    cohort: str | None,
    learner: str | None,
    output: str,
) -> None:
    """Your sessions, or one lab's tasks (✓/✗), score and next hint."""
    from labctl.api.v1alpha1 import API_VERSION
    from labctl.sessions import client

    ns = _namespace(kube, namespace, cohort, learner)
    if lab_id is None:
        rows = [
            {
                "lab": item["spec"]["lab"],
                "phase": (st := client.status_of(item)).phase,
                "score": f"{st.score:g}/{st.max_score:g}",
                "attempts": st.attempts,
                "expires": st.expires_at,
            }
            for item in kube.list(API_VERSION, client.KIND, namespace=ns)
        ]
        emit(rows, output=output, title="lab sessions")
        return
    obj = client.get(kube, ns, lab_id)
    if obj is None:
        raise client.not_started_in(kube, ns, lab_id)
    status = client.status_of(obj)
    if output != "table":
        emit([status.model_dump(by_alias=True, mode="json")], output=output)
        return
    _print_session(kube, ns, lab_id, status, feedback=False)


@click.command("check")
@click.argument("lab_id")
@whose
@click.option("--timeout", type=float, default=900, show_default=True, help="Seconds to wait for the result.")
@output_option
@kube_options
def check_cmd(
    kube: Kube,
    lab_id: str,
    namespace: str | None,
    cohort: str | None,
    learner: str | None,
    timeout: float,
    output: str,
) -> None:
    """Ask the controller to check LAB_ID now; print each task's result and what to fix.

    Exit 0 passed, 1 not passed yet, 3 the grader could not decide (check again)."""
    from labctl.sessions import client, gates

    ns = _namespace(kube, namespace, cohort, learner)
    wanted = client.bump(kube, ns, lab_id, "checkRequest")
    err_console.print(f"checking {lab_id} (request {wanted})")
    status = client.wait(
        kube, ns, lab_id, lambda s: s.checks_served >= wanted, timeout=timeout, on_change=_progress
    )
    if gates.check_refused(status.message):
        raise LabctlError(status.message)
    if output != "table":
        emit([status.model_dump(by_alias=True, mode="json")], output=output)
    else:
        _print_session(kube, ns, lab_id, status, feedback=True)
    if any(c.status == "error" for t in status.tasks for c in t.checks):
        sys.exit(3)
    sys.exit(0 if status.passed else 1)


@click.command("reset")
@click.argument("lab_id")
@whose
@kube_options
def reset_cmd(
    kube: Kube, lab_id: str, namespace: str | None, cohort: str | None, learner: str | None
) -> None:
    """Apply LAB_ID's setup again (your own objects and data are left as they are)."""
    from labctl.sessions import client

    ns = _namespace(kube, namespace, cohort, learner)
    wanted = client.bump(kube, ns, lab_id, "resetRequest")
    client.wait(kube, ns, lab_id, lambda s: s.resets_served >= wanted, timeout=300, on_change=_progress)
    click.echo(f"{lab_id} set up again")


@click.command("stop")
@click.argument("lab_id")
@whose
@kube_options
def stop_cmd(kube: Kube, lab_id: str, namespace: str | None, cohort: str | None, learner: str | None) -> None:
    """Stop LAB_ID's session (your grades stay recorded; labctl lab start begins a new one)."""
    from labctl.sessions import client

    ns = _namespace(kube, namespace, cohort, learner)
    client.set_stopped(kube, ns, lab_id)
    client.wait(kube, ns, lab_id, lambda s: s.phase == "Stopped", timeout=60, on_change=_progress)
    click.echo(f"{lab_id} stopped")


@click.command("env")
@whose
@click.option("--in-cluster", is_flag=True, help="Cluster DNS names (from a pod), not labctl lab connect's.")
@kube_options
def env_cmd(
    kube: Kube, namespace: str | None, cohort: str | None, learner: str | None, in_cluster: bool
) -> None:
    """Print `export` lines for your stacks: eval "$(labctl lab env)"."""
    from labctl.sessions.env import SERVICES, port_offset, stack_env

    ns = _namespace(kube, namespace, cohort, learner)
    local: dict[str, int] = {svc: port + port_offset() for svc, port in SERVICES.values()}

    def via_connect(url: str) -> str:  # what `labctl lab connect` listens on
        svc = url.split("//", 1)[1].split(".", 1)[0]
        return f"http://127.0.0.1:{local[svc]}"

    for key, value in stack_env(kube, ns, (lambda u: u) if in_cluster else via_connect).items():
        click.echo(f"export {key}={value}")


@click.command("connect")
@whose
@kube_options
def connect_cmd(kube: Kube, namespace: str | None, cohort: str | None, learner: str | None) -> None:
    """Forward your MLflow, object store, Prometheus and Alertmanager to localhost until Ctrl-C."""
    from labctl.grading.reach import PortForwards
    from labctl.sessions.env import SERVICES, port_offset

    ns = _namespace(kube, namespace, cohort, learner)
    forwards = PortForwards(kube, fixed_ports=True, port_offset=port_offset())
    try:
        for var, (svc, port) in SERVICES.items():
            try:
                click.echo(f"{svc:13} {forwards(f'http://{svc}.{ns}.svc:{port}')}   ({var})")
            except (ConnectionError, LabctlError) as exc:
                err_console.print(f"{svc:13} not reachable: {exc}", style="yellow")
        err_console.print('forwarding; in another shell: eval "$(labctl lab env)"; Ctrl-C to stop')
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        forwards.close()


COMMANDS = [
    list_cmd,
    show_cmd,
    files_cmd,
    start_cmd,
    status_cmd,
    check_cmd,
    env_cmd,
    connect_cmd,
    reset_cmd,
    stop_cmd,
]
