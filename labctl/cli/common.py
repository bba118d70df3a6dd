"""Options every cluster command shares, spelled as kubectl spells them.

Declaring them imports neither the Kubernetes client nor the grading code (startup time: every
command module uses these, and `labctl lab --help` must not pay for what a command only runs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def kube_options(func: F) -> F:
    """Add ``--kubeconfig`` and ``--context``; the command receives a connected ``kube``."""
    func = click.option("--context", default=None, help="The kubeconfig context to use.")(func)
    func = click.option(
        "--kubeconfig",
        default=None,
        help="Path to the kubeconfig file (default: $KUBECONFIG, ~/.kube/config).",
    )(func)

    def wrapper(*args: Any, kubeconfig: str | None, context: str | None, **kwargs: Any) -> Any:
        from labctl.kube import Kube  # the Kubernetes client: imported when a command runs, not declared

        kube = Kube.connect(kubeconfig=kubeconfig, context=context)
        return func(*args, kube=kube, **kwargs)

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    # click reads the params collected on the function it wraps.
    wrapper.__click_params__ = func.__click_params__  # type: ignore[attr-defined]
    func.__click_params__ = []  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def reach_option(func: F) -> F:
    """``--reach``: how checks connect to learners' Services (the command receives ``reach_mode``)."""
    # labctl.grading.reach imports the Kubernetes client: only modules declaring --reach import it.
    from labctl.grading import reach

    return click.option(
        "--reach",
        "reach_mode",
        type=click.Choice(reach.MODES),
        default="auto",
        show_default=True,
        help="How checks connect to learners' Services: by cluster DNS (inside the cluster), or through "
        "port-forwards made with the kubeconfig (from anywhere else). auto: cluster DNS inside a pod.",
    )(func)


def prefer_built_kubectl() -> None:
    """Lab scripts (`lab test`, `lab solve`) run `kubectl` from PATH: where labctl's toolchain built
    one (pinned to the cluster's version), it goes first. The CLI wires this in: the services below
    it never reach into the local-cluster tooling."""
    import os

    from labctl.localcluster.toolchain import paths

    built = paths.binary("kubectl")
    if built.exists():
        os.environ["PATH"] = os.pathsep.join([str(built.parent), os.environ.get("PATH", "")])
