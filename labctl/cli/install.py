"""``labctl install`` / ``uninstall`` and ``labctl controller run``."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import click

from labctl.api.crds import crds
from labctl.cli.common import kube_options
from labctl.core.errors import LabctlError, UsageError
from labctl.kube import Kube
from labctl.provision import install as plan
from labctl.provision.stacks import load_stack_settings
from labctl.provision.stacks.settings import node_selector_pairs
from labctl.provision.tenancy import CONTROLLER_NAMESPACE


def _kind(obj: dict[str, Any]) -> str:
    group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
    return f"{obj['kind'].lower()}{'.' + group if group else ''}/{obj['metadata']['name']}"


@click.command("install")
@click.option(
    "--local-controller",
    is_flag=True,
    help="Do not deploy the controller; run it yourself with `labctl controller run`.",
)
@click.option(
    "--dashboard",
    is_flag=True,
    help="Also run the instructor's dashboard in-cluster (labctl dashboard --auth token; reach it with "
    "kubectl port-forward -n labctl-system svc/labctl-dashboard 8080).",
)
@click.option(
    "--image", default=plan.DEFAULT_IMAGE, show_default=True, help="Controller (and dashboard) image."
)
@click.option(
    "--stack-settings",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="YAML file of stack settings (images, resources, storage) for the in-cluster controller.",
)
@click.option(
    "--node-selector",
    "node_labels",
    multiple=True,
    metavar="LABEL=VALUE",
    help="Run the controller's pod only on nodes with this label (repeat for several).",
)
@kube_options
def install_cmd(
    kube: Kube,
    local_controller: bool,
    dashboard: bool,
    image: str,
    stack_settings: Path | None,
    node_labels: tuple[str, ...],
) -> None:
    """Install CRDs, the admission policy and the controller into the cluster."""
    settings = "{}\n"
    if stack_settings is not None:
        load_stack_settings(stack_settings)  # a bad file stops here, before anything is applied
        settings = stack_settings.read_text()
    node_selector = _node_selector(node_labels)
    objects = plan.render_install(
        controller=not local_controller,
        image=image,
        stack_settings=settings,
        node_selector=node_selector,
        dashboard=dashboard,
    )
    for obj in objects:
        click.echo(f"{_kind(obj)} {kube.apply(obj).action}")
    if local_controller and kube.delete("apps/v1", "Deployment", plan.CONTROLLER_NAME, CONTROLLER_NAMESPACE):
        # Two controllers would both act on every learner (kopf runs standalone, no peering).
        click.echo(f"deployment.apps/{plan.CONTROLLER_NAME} deleted (the controller runs locally now)")
    _wait_established(kube)
    secret = plan.render_key_secret()
    if kube.get("v1", "Secret", plan.KEY_SECRET, CONTROLLER_NAMESPACE) is None:
        kube.create(secret)
        click.echo(f"secret/{plan.KEY_SECRET} created")
    else:
        click.echo(f"secret/{plan.KEY_SECRET} unchanged")


def _node_selector(pairs: tuple[str, ...]) -> dict[str, str]:
    """``--node-selector`` flags as a selector; a bad one is a usage error naming it."""
    selector: dict[object, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise UsageError(f"--node-selector {pair!r}: expected LABEL=VALUE")
        selector[key] = value
    try:
        return dict(node_selector_pairs(selector))
    except ValueError as exc:
        raise UsageError(f"--node-selector: {exc}") from None


def _established(kube: Kube, name: str) -> bool:
    crd = kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name) or {}
    conditions = (crd.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


def _wait_established(kube: Kube) -> None:
    for crd in crds():
        name = crd["metadata"]["name"]
        kube.wait_for(partial(_established, kube, name), timeout=30, what=f"CRD {name} to be established")
    kube.forget_discovery()  # the new kinds must resolve in this process


@click.command("uninstall")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@kube_options
def uninstall_cmd(kube: Kube, yes: bool) -> None:
    """Remove the controller, the admission policy and the CRDs (all cohorts go with them)."""
    if not yes:
        click.confirm("Remove labctl, every cohort and every learner namespace?", abort=True)
    for obj in reversed(plan.render_install(controller=True, dashboard=True)):
        gone = kube.delete(
            obj["apiVersion"], obj["kind"], obj["metadata"]["name"], obj["metadata"].get("namespace")
        )
        click.echo(f"{_kind(obj)} {'deleted' if gone else 'not found'}")


@click.group()
def controller() -> None:
    """The labctl controller."""


@controller.command("run")
@click.option("--metrics-port", type=int, default=None, help="Serve Prometheus metrics on this port.")
@click.option("--liveness-port", type=int, default=None, help="Serve /healthz on this port.")
@click.option(
    "--stack-settings",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="YAML file of stack settings: images, resources, storage, which components.",
)
@kube_options
def run_cmd(
    kube: Kube, metrics_port: int | None, liveness_port: int | None, stack_settings: Path | None
) -> None:
    """Run the controller in this process (against --kubeconfig/--context)."""
    from labctl.controller.run import run

    settings = load_stack_settings(stack_settings) if stack_settings else None  # before connecting
    try:
        run(kube, metrics_port=metrics_port, liveness_port=liveness_port, stack_settings=settings)
    except KeyboardInterrupt:
        raise LabctlError("interrupted") from None
