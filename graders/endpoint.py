"""Checks on a learner's model server: does it answer, how well, how fast, how reliably.

``endpoint.predict`` sends the instructor's hidden test set (a CSV the learner never saw) to the
learner's KServe V1 or MLflow scoring endpoint and scores the answers; ``endpoint.health`` asks
the server whether it is ready. Everything the learner's server does wrong (refuses, times out,
answers 5xx, truncated JSON, one prediction short) is a failed outcome whose feedback names the
criterion, the measured value and the target; only our own trouble (the hidden CSV unreadable,
the cluster API failing) is a :class:`GraderError`.

The parameters live in :mod:`graders._endpoint_params`; the connection and the hidden CSV in
:mod:`graders._endpoint_io`; judging and scoring, pure functions of what came back, in
:mod:`graders._endpoint_scoring`.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from graders._endpoint_io import Reply, Session, Table, Unreachable, load_table, session
from graders._endpoint_params import EndpointParams, HealthParams, PredictParams
from graders._endpoint_scoring import Batch, Tally, judge, snippet
from graders.core import Context, GraderError, Outcome, check

# -- finding the endpoint ----------------------------------------------------------------------


def service_url(kube: Any, namespace: str | None, service: str, port: int | None) -> str:
    """The in-cluster URL of the learner's Service, checking it exists and exposes ``port``."""
    from labctl.core.errors import LabctlError

    if kube is None or not namespace:
        raise GraderError(
            f"finding Service {service!r} needs a cluster connection and the learner's namespace"
        )
    try:
        svc = kube.get("v1", "Service", service, namespace)
    except LabctlError as exc:
        raise GraderError(f"could not read Service {namespace}/{service}: {exc}") from exc
    if svc is None:
        raise Unreachable(
            f"Service {service!r} not found in namespace {namespace!r}: create a Service that selects "
            "your model server's pods"
        )
    ports = [int(p["port"]) for p in (svc.get("spec") or {}).get("ports") or [] if p.get("port")]
    exposed = ", ".join(map(str, ports)) or "no ports"
    if port is None and len(ports) != 1:
        raise Unreachable(f"Service {service!r} exposes {exposed}; expected exactly one port")
    if port is not None and port not in ports:
        raise Unreachable(f"Service {service!r} does not expose port {port} (it exposes {exposed})")
    return f"http://{service}.{namespace}.svc.cluster.local:{port if port is not None else ports[0]}"


def endpoint_url(ctx: Context, params: EndpointParams) -> str:
    if params.url is not None:
        return params.url.rstrip("/")
    assert params.service is not None  # the model validator insists on one of the two
    return service_url(ctx.kube, ctx.namespace, params.service, params.port)


# -- the checks --------------------------------------------------------------------------------


def _request_for(params: PredictParams, columns: list[str]) -> tuple[str, Any]:
    """The path and the body builder of the protocol."""
    if params.protocol == "kserve-v1":
        return f"/v1/models/{quote(params.model or '')}:predict", lambda rows: {"instances": rows}
    return "/invocations", lambda rows: {"dataframe_split": {"columns": columns, "data": rows}}


def _send_all(conn: Session, ctx: Context, params: PredictParams, table: Table) -> list[Batch]:
    path, body_of = _request_for(params, table.columns)
    where = f"POST {conn.url}{path}"
    batches: list[Batch] = []
    stopped = ""  # once the server is unreachable or time is up, the rest are not sent
    for first in range(0, len(table.rows), params.batch_size):
        rows = table.rows[first : first + params.batch_size]
        if not stopped and ctx.remaining() <= 0.2:
            stopped = f"not sent: the check's {ctx.timeout_s:g} s were used up"
        if stopped:
            batches.append(Batch(len(rows), error=stopped))
            continue
        try:
            reply = conn.request("POST", path, json.dumps(body_of(rows)).encode())
        except Unreachable as exc:
            stopped = exc.feedback
            batches.append(Batch(len(rows), error=stopped))
            continue
        numeric = params.metric == "rmse"
        batches.append(
            judge(reply, len(rows), first=first, protocol=params.protocol, numeric=numeric, where=where)
        )
    return batches


@check("endpoint.predict", PredictParams)
def predict(ctx: Context, params: PredictParams) -> Outcome:
    """Send the hidden test set to the learner's prediction endpoint; score quality, latency, errors."""
    table = load_table(params.data, params.label_column, numeric_labels=params.metric == "rmse")
    try:
        url = endpoint_url(ctx, params)
    except Unreachable as exc:
        return Outcome(False, exc.feedback, {"service": params.service, "port": params.port})
    with session(url, ctx, params.request_timeout_s) as conn:
        tally = Tally(params, table, _send_all(conn, ctx, params, table))
    problems = tally.problems()
    feedback = "; ".join(problems) + "." if problems else tally.summary()
    return Outcome(not problems, feedback, tally.evidence(url))


def _probe(conn: Session, params: HealthParams) -> tuple[str, Reply]:
    if params.path:
        paths = [params.path]
    elif params.protocol == "kserve-v1":
        paths = [f"/v1/models/{quote(params.model or '')}"]
    else:
        paths = ["/ping", "/health"]  # MLflow serves both; other servers often only one
    for path in paths:
        reply = conn.request("GET", path)
        if reply.status != 404:
            break
    return path, reply


@check("endpoint.health", HealthParams)
def health(ctx: Context, params: HealthParams) -> Outcome:
    """Ask the learner's model server whether it is up and ready to predict."""
    try:
        url = endpoint_url(ctx, params)
        with session(url, ctx, params.request_timeout_s) as conn:
            path, reply = _probe(conn, params)
    except Unreachable as exc:
        return Outcome(
            False, exc.feedback, {"url": params.url, "service": params.service, "port": params.port}
        )
    where = f"GET {url}{path}"
    evidence = {"url": f"{url}{path}", "status": reply.status, "ms": reply.ms, "body": snippet(reply.body)}
    if reply.status is None:
        return Outcome(False, reply.problem, evidence)
    if reply.status != 200:
        hint = (
            f": is the model named {params.model!r}?"
            if reply.status == 404 and params.protocol == "kserve-v1"
            else ""
        )
        return Outcome(False, f"{where} returned HTTP {reply.status}{hint} ({snippet(reply.body)})", evidence)
    if params.protocol == "kserve-v1" and not params.path:
        try:
            ready = json.loads(reply.body).get("ready") is True
        except (ValueError, AttributeError):
            ready = False
        if not ready:
            return Outcome(
                False,
                f"model {params.model!r} is not ready: {where} answered {snippet(reply.body)}",
                evidence,
            )
    return Outcome(True, f"{where} answered 200 in {reply.ms or 0:.0f} ms.", evidence)
