"""``labctl lab``: the learner's journey, the lab author's tools, and ``submit`` (a git bundle of HEAD)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import click

from labctl.cli import lab_author, lab_learner, lab_publish, lab_test
from labctl.cli.common import kube_options
from labctl.cli.output import err_console, output_choice
from labctl.core.errors import UsageError

if TYPE_CHECKING:
    from labctl.kube import Kube

# This module and the lab_* ones only declare commands; each imports what it runs in its body
# (startup time: `labctl lab --help` must not import the Kubernetes client, pydantic models, ...).


@click.group()
def lab() -> None:
    """Labs: list, start, check and submit your work; validate, publish and test labs."""


for _command in [
    *lab_learner.COMMANDS,
    lab_author.validate_cmd,
    lab_publish.publish_cmd,
    lab_test.test_cmd,
    lab_test.solve_cmd,
]:
    lab.add_command(_command)


@lab.command("submit")
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path), default=".")
@click.option("--lab", "lab_id", required=True, help="The lab, e.g. professional/data-versioning.")
@click.option("-n", "--namespace", default=None, help="Your namespace (default: your kubeconfig's).")
@click.option("--endpoint", default=None, help="Object-store URL (default: the in-cluster service).")
@output_choice(("table", "json"))
@kube_options
def submit_cmd(
    kube: Kube, path: Path, lab_id: str, namespace: str | None, endpoint: str | None, output: str
) -> None:
    """Submit the git repository at PATH (HEAD, with history) for grading."""
    from labctl.api.v1alpha1 import LAB_ID_PATTERN
    from labctl.grading.submissions import store_of, submit

    if not re.fullmatch(LAB_ID_PATTERN, lab_id):
        raise UsageError(f"--lab {lab_id!r}: expected <level>/<lab>, e.g. professional/data-versioning")
    store = store_of(kube, namespace or kube.namespace, endpoint)
    done = submit(path.resolve(), lab_id, store)
    if done.dirty:
        err_console.print("warning: uncommitted changes were not submitted (only HEAD is)", style="yellow")
    if output == "json":
        click.echo(json.dumps(done.__dict__, indent=2))
    else:
        click.echo(f"submitted {lab_id} at {done.commit[:12]} ({done.size} bytes) as {done.key}")
