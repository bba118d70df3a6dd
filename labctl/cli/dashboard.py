"""``labctl dashboard``: the instructor's dashboard, served from this machine (or from the cluster)."""

from __future__ import annotations

import ipaddress
import socket

import click

from labctl.cli.common import kube_options
from labctl.core.errors import LabctlError, UsageError
from labctl.kube import Kube, KubeError

SYNC_TIMEOUT = 120.0


def _loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _listen(address: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((address, port))
    except OSError as exc:
        sock.close()
        problem = f"cannot listen on {address}:{port}: {exc.strerror}"
        raise LabctlError(f"{problem} (--port picks another)") from None
    sock.listen(128)
    return sock


def _check_installed(kube: Kube) -> None:
    from labctl.api.v1alpha1 import API_VERSION

    try:
        kube.list(API_VERSION, "Cohort")
    except KubeError as exc:
        if exc.status == 404:
            raise LabctlError("labctl is not installed in this cluster: run labctl install first") from None
        raise


@click.command("dashboard")
@click.option("--cohort", "cohort_name", default=None, help="Open on this cohort's grid.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="Port to serve on (0: any free port; the URL printed says which).",
)
@click.option(
    "--address",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Anything but loopback needs --auth token.",
)
@click.option(
    "--auth",
    "auth_mode",
    type=click.Choice(["none", "token"]),
    default="none",
    show_default=True,
    help="token: each viewer signs in with a Kubernetes token that may list Learners "
    "(TokenReview + SubjectAccessReview); none: anyone who reaches the port (loopback only).",
)
@kube_options
def dashboard_cmd(kube: Kube, cohort_name: str | None, port: int, address: str, auth_mode: str) -> None:
    """Serve the instructor's dashboard: cohorts' progress, live in the browser (read-only)."""
    if auth_mode == "none" and not _loopback(address):
        raise UsageError(
            f"--address {address} is not loopback: anyone on the network could look; add --auth token"
        )
    import uvicorn

    from labctl.cohorts import operations as cohorts
    from labctl.dashboard.app import LOCAL_HOSTS, create_app
    from labctl.dashboard.auth import Authoriser
    from labctl.dashboard.store import Store, Watches

    _check_installed(kube)
    if cohort_name:
        cohorts.get_cohort(kube, cohort_name)
    store = Store()
    watches = Watches(kube, store)
    watches.start()
    if not store.synced.wait(SYNC_TIMEOUT):
        raise LabctlError(f"could not list labctl's objects within {SYNC_TIMEOUT:.0f}s (see the log above)")
    app = create_app(
        kube,
        store,
        authoriser=Authoriser(kube) if auth_mode == "token" else None,
        allowed_hosts=None if auth_mode == "token" else LOCAL_HOSTS,
    )
    sock = _listen(address, port)
    host = "127.0.0.1" if address in ("0.0.0.0", "::") else address
    host = f"[{host}]" if ":" in host else host
    path = f"/cohorts/{cohort_name}" if cohort_name else "/"
    click.echo(f"dashboard: http://{host}:{sock.getsockname()[1]}{path}  (read-only; Ctrl-C stops it)")
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, timeout_graceful_shutdown=1, lifespan="on"
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        watches.stop()
