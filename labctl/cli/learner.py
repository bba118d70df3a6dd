"""``labctl learner``: a learner's own credentials."""

from __future__ import annotations

import os
from pathlib import Path

import click

from labctl.cli.common import kube_options
from labctl.cohorts import operations as cohorts
from labctl.cohorts.credentials import learner_kubeconfig
from labctl.core.durations import parse_duration
from labctl.kube import Kube


@click.group()
def learner() -> None:
    """Learners' environments and credentials."""


@learner.command("kubeconfig")
@click.argument("cohort")
@click.argument("who", metavar="LEARNER")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Write to FILE (mode 0600).")
@click.option("--duration", default="8h", show_default=True, help="Token lifetime.")
@kube_options
def kubeconfig_cmd(kube: Kube, cohort: str, who: str, out: Path | None, duration: str) -> None:
    """Print a kubeconfig for LEARNER (e-mail or namespace) scoped to their namespace."""
    lifetime = parse_duration(duration, flag="--duration")
    obj = cohorts.find_learner(kube, cohort, who)
    text = learner_kubeconfig(
        kube, obj["metadata"]["name"], duration=lifetime, cluster_name=f"labctl-{cohort}"
    )
    if out is None:
        click.echo(text, nl=False)
        return
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    click.echo(f"wrote {out}", err=True)
