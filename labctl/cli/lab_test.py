"""``labctl lab test ID...|--all``: every check fails on a fresh start, each planted mistake is caught
by exactly the checks it names, the reference solution gets full marks. Exit 1 on any deviation."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import click

from labctl.cli.common import kube_options, prefer_built_kubectl
from labctl.cli.lab_publish import validated
from labctl.cli.output import emit, err_console, output_option
from labctl.core.errors import UsageError
from labctl.core.suggest import did_you_mean, did_you_mean_lab

if TYPE_CHECKING:
    from labctl.authoring.labtest import Outcome
    from labctl.catalog.load import LabFolder
    from labctl.kube import Kube


def pick(labs: Sequence[LabFolder], lab_ids: Sequence[str]) -> list[LabFolder]:
    """The labs ``lab_ids`` name, in that order; every id not in the catalog is reported at once."""
    known = {lab.id: lab for lab in labs}
    if unknown := [i for i in lab_ids if i not in known]:
        raise UsageError(
            "\n".join(
                f"no such lab {i!r}{did_you_mean_lab(i, known) or ' (labctl lab validate lists the catalog)'}"
                for i in unknown
            )
        )
    return [known[i] for i in lab_ids]


@click.command("test")
@click.argument("lab_ids", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every lab in the catalog.")
@click.option(
    "--labs",
    "paths",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Lab roots or folders (default: the built-in catalog and $LABCTL_LABS_PATH).",
)
@click.option("--keep", is_flag=True, help="Keep the throwaway cohorts to look around.")
@click.option("--parallel", type=click.IntRange(1, 32), default=4, show_default=True, help="Labs at once.")
@click.option(
    "--logs", type=click.Path(file_okay=False, path_type=Path), default=None, help="Script logs here."
)
@output_option
@kube_options
def test_cmd(
    kube: Kube,
    lab_ids: tuple[str, ...],
    every: bool,
    paths: tuple[Path, ...],
    keep: bool,
    parallel: int,
    logs: Path | None,
    output: str,
) -> None:
    """Prove labs honest on this cluster (needs the labctl controller running)."""
    # Imported here, not at the top: `labctl lab --help` must not import the catalog (startup time).
    from labctl.authoring.labtest import test_labs

    prefer_built_kubectl()
    if bool(lab_ids) == every:
        raise UsageError("name the labs to test, or pass --all")
    labs = validated(paths)
    chosen = labs if every else pick(labs, lab_ids)
    log_dir = logs or Path(tempfile.mkdtemp(prefix="labctl-labtest-logs-"))
    log_dir.mkdir(parents=True, exist_ok=True)

    def show(o: Outcome) -> None:
        mark = "ok" if o.ok else "DEVIATION"
        err_console.print(
            f"{mark:9} {o.lab} {o.stage}: expected {o.expected}, got {o.got} ({o.seconds:.0f}s)"
        )

    results = test_labs(kube, chosen, keep=keep, log_dir=log_dir, on_result=show, parallel=parallel)
    rows = [{**asdict(o), "seconds": round(o.seconds, 1)} for o in results]
    columns = ["lab", "stage", "expected", "got", "seconds", "ok"] + (
        ["detail"] if any(o.detail for o in results) else []
    )
    emit(rows, output=output, columns=columns)
    err_console.print(f"script logs: {log_dir}")
    if not all(o.ok for o in results):
        sys.exit(1)


@click.command("solve")
@click.argument("lab_id")
@click.option("--mistake", default=None, help="Run this planted mistake instead of the reference solution.")
@click.option(
    "--labs",
    "paths",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Lab roots or folders (default: the built-in catalog and $LABCTL_LABS_PATH).",
)
@click.option("-n", "--namespace", default=None, help="The learner's namespace (default: kubeconfig's).")
@click.option(
    "--kubeconfig", "kubeconfig", default=None, help="The learner's kubeconfig (default: $KUBECONFIG)."
)
def solve_cmd(
    lab_id: str, mistake: str | None, paths: tuple[Path, ...], namespace: str | None, kubeconfig: str | None
) -> None:
    """Lab authors: run LAB_ID's reference solution (or a planted mistake) as the learner whose
    kubeconfig this is, exactly as `labctl lab test` does; its output is printed."""
    from labctl.authoring.labtest import solve
    from labctl.kube import Kube

    prefer_built_kubectl()
    config = kubeconfig or os.environ.get("KUBECONFIG")
    if not config:
        raise UsageError("give the learner's kubeconfig: --kubeconfig FILE or KUBECONFIG")
    (folder,) = pick(validated(paths), [lab_id])
    scripts = {m.name: m.script for m in folder.mistakes}
    if mistake is not None and mistake not in scripts:
        raise UsageError(
            f"{lab_id} has no mistake {mistake!r}{did_you_mean(mistake, scripts)}; "
            f"it has: {', '.join(sorted(scripts))}"
        )
    learner = Kube.connect(kubeconfig=config)
    script = scripts[mistake] if mistake else folder.solution
    proc = solve(
        learner, folder, script, kubeconfig=Path(config).resolve(), namespace=namespace or learner.namespace
    )
    click.echo(proc.stdout, nl=False)
    err_console.print(proc.stderr, end="", markup=False, highlight=False)
    sys.exit(proc.returncode)
