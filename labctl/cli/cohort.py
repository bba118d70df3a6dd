"""``labctl cohort``: provision a roster as one isolated environment per learner."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click
import yaml
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from labctl.api.v1alpha1 import RosterEntry
from labctl.cli.common import kube_options
from labctl.cli.output import emit, err_console, output_option
from labctl.cohorts import operations as cohorts
from labctl.core.durations import parse_duration
from labctl.core.errors import LabctlError, UsageError
from labctl.exports.cohort import export_cohort
from labctl.kube import Kube
from labctl.provision.roster import load_roster

LEVELS = click.Choice(["foundation", "professional", "advanced"])
wait_option = click.option("--wait", is_flag=True, help="Wait until every learner is Ready.")
timeout_option = click.option("--timeout", default="10m", show_default=True, help="How long --wait waits.")


@click.group()
def cohort() -> None:
    """Cohorts: a roster of learners, each with an isolated, equipped namespace."""


def _wait(kube: Kube, name: str, timeout: str) -> None:
    seconds = parse_duration(timeout, flag="--timeout").total_seconds()
    columns = (
        TextColumn(f"cohort {name}: learners ready"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console, transient=False) as progress:
        task = progress.add_task("ready", total=None)
        cohorts.wait_ready(
            kube,
            name,
            timeout=seconds,
            progress=lambda ready, total: progress.update(task, completed=ready, total=total),
        )


def _report(kind: str, name: str, action: str, output: str, kube: Kube) -> None:
    if output == "table":
        click.echo(f"{kind}.labctl.dev/{name} {action}")
    else:
        emit([cohorts.get_cohort(kube, name)], output=output)


@cohort.command("create")
@click.argument("name")
@click.option(
    "--roster",
    "roster_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Roster file: CSV with a header (email[,name,id]) or YAML.",
)
@click.option("--level", required=True, type=LEVELS, help="Certification level.")
@click.option("--labs", default="", help="Comma-separated lab ids, e.g. foundation/experiment-tracking.")
@click.option("--quota-profile", default="small", show_default=True, help="small, medium, large or gpu.")
@click.option(
    "--egress",
    default="none",
    show_default=True,
    type=click.Choice(["none", "cluster", "internet"]),
    help="Where learners' pods may connect beyond DNS, their namespace and the API server "
    "(cluster: other namespaces but learners' and labctl's; internet: that and public addresses).",
)
@click.option("--expires", default=None, help="Expire after this long, e.g. 14d.")
@wait_option
@timeout_option
@output_option
@kube_options
def create_cmd(
    kube: Kube,
    name: str,
    roster_path: Path,
    level: str,
    labs: str,
    quota_profile: str,
    egress: str,
    expires: str | None,
    wait: bool,
    timeout: str,
    output: str,
) -> None:
    """Create (or update) cohort NAME from a roster."""
    cohorts.check_name(name)
    expiry = None
    if expires:
        expiry = dt.datetime.now(dt.UTC).replace(microsecond=0) + parse_duration(expires, flag="--expires")
    learners = load_roster(roster_path, cohort=name)
    obj = cohorts.build_cohort(
        name,
        level=level,
        learners=learners,
        labs=[x for x in labs.split(",") if x],
        quota_profile=quota_profile,
        egress=egress,
        expires=expiry,
        source="flags",
    )
    action = cohorts.apply_cohort(kube, obj)
    if wait:
        _wait(kube, name, timeout)
    _report("cohort", name, action, output, kube)


@cohort.command("apply")
@click.option("-f", "--filename", required=True, type=click.Path(path_type=Path), help="A Cohort manifest.")
@wait_option
@timeout_option
@output_option
@kube_options
def apply_cmd(kube: Kube, filename: Path, wait: bool, timeout: str, output: str) -> None:
    """Apply a Cohort manifest (kind: Cohort, roster in spec.learners)."""
    try:
        data = yaml.safe_load(filename.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"{filename}: {exc}") from None
    obj = cohorts.load_cohort_manifest(filename, data)
    action = cohorts.apply_cohort(kube, obj)
    if wait:
        _wait(kube, obj["metadata"]["name"], timeout)
    _report("cohort", obj["metadata"]["name"], action, output, kube)


@cohort.command("list")
@output_option
@kube_options
def list_cmd(kube: Kube, output: str) -> None:
    """List cohorts with their progress."""
    from labctl.api.v1alpha1 import API_VERSION

    rows = []
    for obj in sorted(kube.list(API_VERSION, "Cohort"), key=lambda o: o["metadata"]["name"]):
        status = obj.get("status") or {}
        rows.append(
            {
                "name": obj["metadata"]["name"],
                "level": obj["spec"]["level"],
                "learners": len(obj["spec"]["learners"]),
                "ready": status.get("ready", 0),
                "labs": ",".join(obj["spec"].get("labs") or []) or "-",
                "expires": obj["spec"].get("expires") or "-",
            }
        )
    emit(rows, output=output, title="cohorts")


@cohort.command("status")
@click.argument("name")
@output_option
@kube_options
def status_cmd(kube: Kube, name: str, output: str) -> None:
    """Cohort NAME: each learner's environment (namespace, readiness, stacks), then the learner-by-lab
    grid (not started / in progress / passed / failed, score)."""
    rows = cohorts.status_rows(kube, name)
    labs, grid = cohorts.progress_grid(kube, name)
    if output != "table":
        progress = {row["learner"]: {lab: row[lab] for lab in labs} for row in grid}
        emit([{**row, "progress": progress[row["learner"]]} for row in rows], output=output)
        return
    columns = ["learner", "namespace", "ready", "phase", "stacks"]
    emit(rows, output=output, title=f"learners of cohort {name}", columns=columns)
    if labs:
        emit(grid, output=output, title=f"progress of cohort {name}", columns=["learner", *labs])


@cohort.command("add-learner")
@click.argument("name")
@click.option("--email", required=True)
@click.option("--name", "display_name", default=None)
@click.option("--id", "learner_id", default=None)
@kube_options
def add_learner_cmd(
    kube: Kube, name: str, email: str, display_name: str | None, learner_id: str | None
) -> None:
    """Add one learner to cohort NAME."""
    rows = [("--email", {"email": email, "name": display_name, "id": learner_id})]
    from labctl.provision.roster import validate_rows

    (entry,) = validate_rows(rows, source="flags", cohort=name)
    action = cohorts.edit_roster(kube, name, add=RosterEntry.model_validate(entry.model_dump()))
    click.echo(f"cohort.labctl.dev/{name} {action}")


@cohort.command("remove-learner")
@click.argument("name")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@kube_options
def remove_learner_cmd(kube: Kube, name: str, email: str, yes: bool) -> None:
    """Remove one learner (and their namespace) from cohort NAME."""
    if not yes:
        click.confirm(f"Remove {email} from cohort {name} and delete their namespace?", abort=True)
    action = cohorts.edit_roster(kube, name, remove=email)
    click.echo(f"cohort.labctl.dev/{name} {action}")


@cohort.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--export",
    "export_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="First save the cohort, its learners, every grade attempt, a gradebook and each learner's "
    "MLflow and object-store data under DIR/NAME/.",
)
@click.option(
    "--no-stack-data",
    is_flag=True,
    help="With --export: leave out the learners' MLflow and object-store data.",
)
@wait_option
@timeout_option
@kube_options
def delete_cmd(
    kube: Kube, name: str, yes: bool, export_dir: Path | None, no_stack_data: bool, wait: bool, timeout: str
) -> None:
    """Delete cohort NAME, every learner namespace and everything labctl made for it."""
    cohorts.check_name(name)
    seconds = parse_duration(timeout, flag="--timeout").total_seconds()
    if not yes:
        click.confirm(f"Delete cohort {name} and every learner namespace in it?", abort=True)
    if export_dir is not None and cohorts.exists(kube, name):
        try:  # any failure stops here: nothing deleted
            stack_data = not no_stack_data
            saved = export_cohort(kube, name, export_dir, stack_data=stack_data, report=err_console.print)
        except UsageError:
            raise
        except LabctlError as exc:
            hint = "" if no_stack_data else " (--no-stack-data exports definitions and grades only)"
            raise LabctlError(f"{exc}\nexport failed: nothing was deleted{hint}") from None
        err_console.print(f"exported cohort {name} to {saved}")
    if cohorts.delete_cohort(kube, name, wait=wait, timeout=seconds):
        click.echo(f'cohort.labctl.dev "{name}" deleted')
    else:
        click.echo(f'cohort.labctl.dev "{name}" not found')
