"""Checks of what a learner made in their namespace: objects, GPU placement, quota use, Jobs.

Everything goes through ``ctx.kube`` (:class:`labctl.kube.Kube`) with the grader's own rights.
An API failure is ours (:class:`GraderError`; transient when a retry may help); a missing or
wrong object is the learner's (a failed outcome naming the object and what is wrong).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

from kubernetes.utils import parse_quantity
from pydantic import Field, model_validator

from graders.core import Context, GraderError, Outcome, Params, TransientGraderError, check
from labctl.kube import RETRY_STATUSES, KubeError

T = TypeVar("T")
Obj = dict[str, Any]
_MISSING = object()
_UNIT = re.compile(r"^[0-9.]+(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)$")


def _kube_call(ctx: Context, call: Callable[[Any, str], T]) -> T:
    if ctx.kube is None:
        raise GraderError("no cluster connection: run this check with a kubeconfig")
    if not ctx.namespace:
        raise GraderError("no learner namespace given for this check")
    try:
        return call(ctx.kube, ctx.namespace)
    except KubeError as exc:
        if exc.status == 0 or exc.status in RETRY_STATUSES:
            raise TransientGraderError(str(exc)) from None
        raise GraderError(str(exc)) from None


def kube_get(
    ctx: Context, api_version: str, kind: str, name: str, *, cluster_scoped: bool = False
) -> Obj | None:
    """An object of the learner's namespace (or a cluster-scoped one), None when it does not exist."""
    return _kube_call(ctx, lambda k, ns: k.get(api_version, kind, name, None if cluster_scoped else ns))


def kube_list(ctx: Context, api_version: str, kind: str, **selectors: str | None) -> list[Obj]:
    """Objects of the learner's namespace, by ``label_selector`` / ``field_selector``."""
    return _kube_call(ctx, lambda k, ns: k.list(api_version, kind, namespace=ns, **selectors))


def dig(obj: Any, path: str) -> Any:
    """The value at a dotted path (``spec.replicas``, ``spec.containers.0.image``,
    ``metadata.labels[app.kubernetes.io/name]``), or ``_MISSING``."""
    for key in re.findall(r"\[([^\]]+)\]|([^.\[\]]+)", path):
        step = key[0] or key[1]
        if isinstance(obj, list) and step.isdigit() and int(step) < len(obj):
            obj = obj[int(step)]
        elif isinstance(obj, dict) and step in obj:
            obj = obj[step]
        else:
            return _MISSING
    return obj


def same(actual: Any, expected: Any) -> bool:
    """Equal, or the same value written differently: ``"2"`` and ``2``; quantities ``"500m"`` and
    ``0.5``, ``"1Gi"`` and ``"1024Mi"``. Two plain strings (``"1.0"``, ``"1"``) must match exactly."""
    if actual == expected:
        return True
    if isinstance(actual, dict | list | bool | None) or isinstance(expected, dict | list | bool | None):
        return False
    if str(actual) == str(expected):
        return True
    if not any(isinstance(v, int | float) or _UNIT.search(v) for v in (actual, expected)):
        return False
    try:
        # str() first: Decimal(0.1) is not Decimal("0.1").
        return bool(parse_quantity(str(actual)) == parse_quantity(str(expected)))
    except (ValueError, TypeError, ArithmeticError):
        return False


class ObjectParams(Params):
    api_version: str
    kind: str
    name: str
    fields: dict[str, Any] = Field(default_factory=dict)  # dotted path -> expected value


@check("kube.object", ObjectParams)
def object_matches(ctx: Context, params: ObjectParams) -> Outcome:
    """An object exists in the learner's namespace and its fields have the expected values."""
    what = f"{params.kind} {params.name}"
    obj = kube_get(ctx, params.api_version, params.kind, params.name)
    if obj is None:
        return Outcome(False, f"no {what} ({params.api_version}) in namespace {ctx.namespace}")
    problems, found = [], {}
    for path, expected in params.fields.items():
        actual = dig(obj, path)
        found[path] = None if actual is _MISSING else actual
        if actual is _MISSING:
            problems.append(f"{path} is not set (expected {expected!r})")
        elif not same(actual, expected):
            problems.append(f"{path} is {actual!r}, expected {expected!r}")
    evidence = {"object": f"{params.api_version} {what}", "fields": found}
    if problems:
        return Outcome(False, f"{what}: " + "; ".join(problems), evidence)
    matched = f" with {', '.join(f'{p} = {v!r}' for p, v in params.fields.items())}" if params.fields else ""
    return Outcome(True, f"{what} exists{matched}", evidence)


def job_pods(ctx: Context, job: Obj) -> list[Obj]:
    """The pods a Job made, by its own selector (``controller-uid``)."""
    match = ((job.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    selector = ",".join(f"{k}={v}" for k, v in sorted(match.items())) or f"job-name={job['metadata']['name']}"
    return kube_list(ctx, "v1", "Pod", label_selector=selector)


def _quantity(value: Any) -> Decimal:
    try:
        return Decimal(parse_quantity(value))
    except (ValueError, TypeError, ArithmeticError):
        return Decimal(0)


def pod_requests(pod: Obj, resource: str) -> Decimal:
    """What a pod's containers request of ``resource`` together (limits stand in for extended ones)."""
    total = Decimal(0)
    for container in (pod.get("spec") or {}).get("containers") or []:
        resources = container.get("resources") or {}
        amount = (resources.get("requests") or {}).get(
            resource, (resources.get("limits") or {}).get(resource)
        )
        total += _quantity(amount) if amount is not None else 0
    return total


def tolerates(tolerations: list[Obj], wanted: str) -> bool:
    """Whether a toleration covers ``key[=value][:Effect]`` (the way taints are written)."""
    key_value, _, effect = wanted.partition(":")
    key, has_value, value = key_value.partition("=")
    for t in tolerations:
        if t.get("key") not in (key, None, "") or (not t.get("key") and t.get("operator") != "Exists"):
            continue
        value_ok = t.get("operator") == "Exists" or not has_value or t.get("value") == value
        if value_ok and (not t.get("effect") or not effect or t.get("effect") == effect):
            return True
    return False


class PlacementParams(Params):
    label_selector: str | None = None  # the pods to look at...
    job: str | None = None  # ...or the pods of this Job
    node_labels: dict[str, str | None] = Field(default_factory=dict)  # None: the label with any value
    requests: dict[str, str | int | float] = Field(default_factory=dict)  # at least this much, per pod
    tolerations: list[str] = Field(default_factory=list)  # "key[=value][:Effect]"
    min_pods: int = Field(1, ge=0)

    @model_validator(mode="after")
    def _one_selection(self) -> PlacementParams:
        if (self.label_selector is None) == (self.job is None):
            raise ValueError("give exactly one of label_selector, job")
        return self


def _placement_problems(
    ctx: Context, params: PlacementParams, pod: Obj, nodes: dict[str, Obj | None]
) -> list[str]:
    spec, problems = pod.get("spec") or {}, []
    node_name = spec.get("nodeName")
    if not node_name:
        why = next(
            (
                c.get("message")
                for c in (pod.get("status") or {}).get("conditions") or []
                if c.get("type") == "PodScheduled" and c.get("status") == "False"
            ),
            None,
        )
        problems.append("is not bound to any node" + (f" ({why})" if why else ""))
    elif params.node_labels:
        if node_name not in nodes:
            nodes[node_name] = kube_get(ctx, "v1", "Node", node_name, cluster_scoped=True)
        node = nodes[node_name]
        labels = ((node or {}).get("metadata") or {}).get("labels") or {}
        missing = [
            f"{k}={v}" if v is not None else k
            for k, v in params.node_labels.items()
            if k not in labels or (v is not None and labels[k] != v)
        ]
        if missing:
            problems.append(f"runs on node {node_name}, which lacks {', '.join(missing)}")
    for resource, amount in params.requests.items():
        if (have := pod_requests(pod, resource)) < _quantity(amount):
            problems.append(f"requests {have.normalize() if have else 'no'} {resource} (needs {amount})")
    for wanted in params.tolerations:
        if not tolerates(spec.get("tolerations") or [], wanted):
            problems.append(f"has no toleration for {wanted}")
    return problems


@check("kube.pod_placement", PlacementParams)
def pod_placement(ctx: Context, params: PlacementParams) -> Outcome:
    """Pods (by label selector, or a Job's) run on the right nodes with the right requests and tolerations."""
    if params.job:
        job = kube_get(ctx, "batch/v1", "Job", params.job)
        if job is None:
            return Outcome(False, f"no Job {params.job} in namespace {ctx.namespace}")
        pods, which = job_pods(ctx, job), f"Job {params.job}"
    else:
        pods = kube_list(ctx, "v1", "Pod", label_selector=params.label_selector)
        which = f"selector {params.label_selector}"
    nodes: dict[str, Obj | None] = {}
    report, failures = [], []
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        name = pod["metadata"]["name"]
        problems = _placement_problems(ctx, params, pod, nodes)
        report.append({"pod": name, "node": (pod.get("spec") or {}).get("nodeName"), "problems": problems})
        failures += [f"pod {name} {problem}" for problem in problems]
    evidence = {"pods": report}
    if len(pods) < params.min_pods:
        return Outcome(
            False, f"{which}: found {len(pods)} pod(s), expected at least {params.min_pods}", evidence
        )
    if failures:
        return Outcome(False, "; ".join(failures[:6]), evidence)
    where = ", ".join(sorted({str(r["node"]) for r in report}))
    return Outcome(True, f"{len(pods)} pod(s) of {which} placed as required (on {where})", evidence)


class QuotaParams(Params):
    name: str | None = None  # one ResourceQuota; None: every quota in the namespace
    resources: list[str] = Field(default_factory=list)  # e.g. requests.nvidia.com/gpu; empty: all


@check("kube.quota_respected", QuotaParams)
def quota_respected(ctx: Context, params: QuotaParams) -> Outcome:
    """The namespace's ResourceQuota use stays within its hard limits."""
    if params.name:
        one = kube_get(ctx, "v1", "ResourceQuota", params.name)
        quotas = [one] if one else []
    else:
        quotas = kube_list(ctx, "v1", "ResourceQuota")
    if not quotas:
        return Outcome(
            False, f"no ResourceQuota {params.name or ''} in namespace {ctx.namespace}".replace("  ", " ")
        )
    problems, usage = [], {}
    for quota in quotas:
        name, status = quota["metadata"]["name"], quota.get("status") or {}
        hard, used = status.get("hard") or {}, status.get("used")
        if used is None:
            raise TransientGraderError(
                f"ResourceQuota {name}: usage not computed yet by the quota controller"
            )
        for resource in params.resources or sorted(hard):
            if resource not in hard:
                problems.append(f"ResourceQuota {name} sets no limit for {resource}")
                continue
            usage[f"{name}/{resource}"] = {"used": used.get(resource, "0"), "hard": hard[resource]}
            if _quantity(used.get(resource, "0")) > _quantity(hard[resource]):
                problems.append(f"{resource}: {used[resource]} used of {hard[resource]} allowed by {name}")
    if problems:
        return Outcome(False, "; ".join(problems), {"usage": usage})
    return Outcome(True, f"within quota ({len(usage)} resource(s) checked)", {"usage": usage})


class JobParams(Params):
    job: str


def _scheduling_failures(ctx: Context, job: Obj, pods: list[Obj]) -> list[Obj]:
    """FailedScheduling events of the Job's pods, current or gone (by uid, else by generated name)."""
    uids = {p["metadata"]["uid"] for p in pods}
    named = re.compile(rf"^{re.escape(job['metadata']['name'])}-(\d+-)?[a-z0-9]{{5}}$")
    events = kube_list(ctx, "v1", "Event", field_selector="involvedObject.kind=Pod,reason=FailedScheduling")
    return [
        e
        for e in events
        if (e.get("involvedObject") or {}).get("uid") in uids
        or named.match((e.get("involvedObject") or {}).get("name", ""))
    ]


@check("kube.job_queued", JobParams)
def job_queued(ctx: Context, params: JobParams) -> Outcome:
    """A Job had to queue: its pod was Pending with a FailedScheduling event."""
    job = kube_get(ctx, "batch/v1", "Job", params.job)
    if job is None:
        return Outcome(False, f"no Job {params.job} in namespace {ctx.namespace}")
    pods = job_pods(ctx, job)
    events = _scheduling_failures(ctx, job, pods)
    evidence = {
        "pods": {p["metadata"]["name"]: (p.get("status") or {}).get("phase") for p in pods},
        "events": [
            {"pod": e["involvedObject"].get("name"), "message": e.get("message"), "count": e.get("count")}
            for e in events[:5]
        ],
    }
    if not events:
        return Outcome(
            False,
            f"Job {params.job} did not queue: none of its pods was ever unschedulable (no FailedScheduling "
            "event), so it got its resources at once. Did it request what the cluster was short of?",
            evidence,
        )
    first = events[0]
    return Outcome(
        True,
        f"Job {params.job} queued: pod {first['involvedObject'].get('name')} was Pending "
        f"({(first.get('message') or '').strip()})",
        evidence,
    )


@check("kube.job_succeeded", JobParams)
def job_succeeded(ctx: Context, params: JobParams) -> Outcome:
    """A Job completed successfully."""
    job = kube_get(ctx, "batch/v1", "Job", params.job)
    if job is None:
        return Outcome(False, f"no Job {params.job} in namespace {ctx.namespace}")
    status = job.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or [] if c.get("status") == "True"}
    evidence = {k: status.get(k) for k in ("active", "succeeded", "failed", "startTime", "completionTime")}
    if "Complete" in conditions:
        return Outcome(
            True, f"Job {params.job} completed ({status.get('succeeded', 0)} pod(s) succeeded)", evidence
        )
    if "Failed" in conditions:
        failed = conditions["Failed"]
        return Outcome(
            False, f"Job {params.job} failed: {failed.get('reason')}: {failed.get('message')}", evidence
        )
    pending = [
        p["metadata"]["name"] for p in job_pods(ctx, job) if (p.get("status") or {}).get("phase") == "Pending"
    ]
    waiting = f"; pods still Pending: {', '.join(pending[:3])}" if pending else ""
    return Outcome(
        False,
        f"Job {params.job} has not completed yet ({status.get('active') or 0} active, "
        f"{status.get('succeeded') or 0} succeeded, {status.get('failed') or 0} failed{waiting})",
        evidence,
    )
