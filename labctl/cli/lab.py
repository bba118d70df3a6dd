"""``labctl lab submit``: hand in a repository-based lab (a git bundle of HEAD)."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import click

from labctl.api.v1alpha1 import LAB_ID_PATTERN
from labctl.cli.common import kube_options
from labctl.cli.output import err_console
from labctl.errors import LabctlError, UsageError
from labctl.kube import Kube
from labctl.provision.stacks.object_store import SECRET
from labctl.submissions import Store, submit


@click.group()
def lab() -> None:
    """Labs: hand in your work."""


def learner_store(kube: Kube, namespace: str, endpoint: str | None) -> Store:
    """The learner's object store: credentials from their namespace's Secret, the endpoint
    from there too unless given (e.g. a `kubectl port-forward` address)."""
    secret = kube.get("v1", "Secret", SECRET, namespace)
    if secret is None:
        raise LabctlError(f"no Secret {SECRET} in namespace {namespace}: is it a learner namespace? (-n)")
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    return Store(
        endpoint or data["AWS_ENDPOINT_URL"], data["AWS_ACCESS_KEY_ID"], data["AWS_SECRET_ACCESS_KEY"]
    )


@lab.command("submit")
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path), default=".")
@click.option("--lab", "lab_id", required=True, help="The lab, e.g. professional/data-versioning.")
@click.option("-n", "--namespace", default=None, help="Your namespace (default: your kubeconfig's).")
@click.option("--endpoint", default=None, help="Object-store URL (default: the in-cluster service).")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@kube_options
def submit_cmd(
    kube: Kube, path: Path, lab_id: str, namespace: str | None, endpoint: str | None, output: str
) -> None:
    """Submit the git repository at PATH (HEAD, with history) for grading."""
    if not re.fullmatch(LAB_ID_PATTERN, lab_id):
        raise UsageError(f"--lab {lab_id!r}: expected <level>/<lab>, e.g. professional/data-versioning")
    store = learner_store(kube, namespace or kube.namespace, endpoint)
    done = submit(path.resolve(), lab_id, store)
    if done.dirty:
        err_console.print("warning: uncommitted changes were not submitted (only HEAD is)", style="yellow")
    if output == "json":
        click.echo(json.dumps(done.__dict__, indent=2))
    else:
        click.echo(f"submitted {lab_id} at {done.commit[:12]} ({done.size} bytes) as {done.key}")
