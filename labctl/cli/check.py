"""``labctl check list|run``: every check with its typed parameters; run one ad hoc.

Exit codes of ``run``: 0 passed, 1 failed, 2 bad input (unknown check, bad parameter),
3 grader error (the check could not decide: re-run it).
"""

from __future__ import annotations

import json
import sys
import typing
from typing import Any

import click
import yaml
from pydantic.fields import FieldInfo

from graders.core import BadParams, CheckSpec, Context, Status, UnknownCheck, get, load_all
from graders.engine import CheckCall, run_check
from labctl.cli.common import reach_option
from labctl.cli.output import console, emit, output_option
from labctl.core.errors import UsageError
from labctl.grading import submissions
from labctl.grading.reach import Mode as ReachMode
from labctl.grading.reach import reaching
from labctl.kube import Kube

EXIT = {Status.PASSED: 0, Status.FAILED: 1, Status.ERROR: 3}


@click.group()
def check() -> None:
    """Outcome checks: list them, or run one against a learner's work."""


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if typing.get_origin(annotation) is None else None
    return text or str(annotation).replace("typing.", "")


def _param_rows(spec: CheckSpec[Any]) -> list[dict[str, Any]]:
    rows = []
    for name, info in spec.params.model_fields.items():
        assert isinstance(info, FieldInfo)
        rows.append(
            {
                "name": name,
                "type": _type_name(info.annotation),
                "required": info.is_required(),
                "default": None if info.is_required() else info.get_default(call_default_factory=True),
                "description": info.description or "",
            }
        )
    return rows


@check.command("list")
@output_option
def list_cmd(output: str) -> None:
    """Every check, with its parameters and their types."""
    specs = [load_all()[name] for name in sorted(load_all())]
    if output != "table":
        emit(
            [{"check": s.name, "summary": s.summary, "params": _param_rows(s)} for s in specs], output=output
        )
        return
    rows = []
    for spec in specs:
        params = ", ".join(
            f"{p['name']}: {p['type']}" + ("" if p["required"] else f" = {p['default']!r}")
            for p in _param_rows(spec)
        )
        rows.append({"check": spec.name, "summary": spec.summary, "params": params})
    emit(rows, output="table", columns=["check", "summary", "params"])


def parse_params(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``key=value`` pairs; values are YAML scalars/flow collections (``0.8``, ``[a, b]``, ``{k: v}``)."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--param {pair!r}: expected key=value")
        if key in params:
            raise UsageError(f"--param {key}: given twice")
        try:
            params[key] = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            params[key] = raw
    return params


@check.command("run")
@click.argument("name")
@click.option(
    "--param", "-p", "pairs", multiple=True, metavar="KEY=VALUE", help="A check parameter (repeat)."
)
@click.option("-n", "--namespace", default=None, help="The learner's namespace (for in-cluster lookups).")
@click.option(
    "--timeout", type=float, default=60.0, show_default=True, help="Seconds before the check gives up."
)
@click.option("--points", type=float, default=1.0, show_default=True, help="Points the check is worth.")
@click.option("--kubeconfig", default=None, help="Kubeconfig, for checks that read the cluster.")
@click.option("--context", "kube_context", default=None, help="The kubeconfig context to use.")
@reach_option
@output_option
def run_cmd(
    name: str,
    pairs: tuple[str, ...],
    namespace: str | None,
    timeout: float,
    points: float,
    kubeconfig: str | None,
    kube_context: str | None,
    reach_mode: ReachMode,
    output: str,
) -> None:
    """Run check NAME once and print its result."""
    params = parse_params(pairs)
    try:
        get(name).parse(params)  # bad input stops here, before anything runs
    except (UnknownCheck, BadParams) as exc:
        raise UsageError(str(exc)) from None
    kube = None
    if kubeconfig or kube_context or namespace:
        kube = Kube.connect(kubeconfig=kubeconfig, context=kube_context)
    with reaching(kube, reach_mode) as reach:
        call = CheckCall(name, params, max_points=points, timeout_s=timeout)
        ctx = Context(
            namespace=namespace, kube=kube, reach=reach, fetch_submission=submissions.fetch_for_check
        )
        result = run_check(call, ctx)
    if output == "table":
        colour = {"passed": "green", "failed": "red", "error": "yellow"}[result.status.value]
        console.print(
            f"[bold]{result.check}[/bold]: [{colour}]{result.status.value}[/{colour}] "
            f"({result.points:g}/{result.max_points:g} points, {result.duration_s:.2f}s)"
        )
        console.print(result.feedback, markup=False, highlight=False)
    elif output == "json":
        click.echo(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        click.echo(
            yaml.safe_dump(json.loads(json.dumps(result.to_dict(), default=str)), sort_keys=False), nl=False
        )
    sys.exit(EXIT[result.status])
