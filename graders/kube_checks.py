"""Checks of what a learner made in their namespace: objects, GPU placement, quota use.

(Jobs' queueing and completion: :mod:`graders.kube_jobs`; what a pod's spec and managedFields
say about its placement: :mod:`graders._kube_pods`.)

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
from pydantic import AwareDatetime, Field, model_validator

from graders import _kube_pods as kp
from graders.core import Context, GraderError, Outcome, Params, TransientGraderError, check
from labctl.core.retry import RETRY_STATUSES
from labctl.kube import KubeError

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
    found: Obj | None = _kube_call(
        ctx, lambda k, ns: k.get(api_version, kind, name, None if cluster_scoped else ns)
    )
    return found


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
    at_least: dict[str, str | int | float] = Field(default_factory=dict)  # dotted path -> a lower bound
    present: list[str] = Field(default_factory=list)  # dotted paths that must be set, to anything
    created_after: AwareDatetime | None = None  # the object must be this new (the session's start)


def _field_problems(obj: Obj, params: ObjectParams, found: dict[str, Any]) -> list[str]:
    problems = []
    for path, expected in params.fields.items():
        actual = dig(obj, path)
        found[path] = None if actual is _MISSING else actual
        if actual is _MISSING:
            problems.append(f"{path} is not set (expected {expected!r})")
        elif not same(actual, expected):
            problems.append(f"{path} is {actual!r}, expected {expected!r}")
    for path, bound in params.at_least.items():
        actual = dig(obj, path)
        found[path] = None if actual is _MISSING else actual
        if actual is _MISSING or isinstance(actual, dict | list | bool) or actual is None:
            problems.append(f"{path} is not set (expected at least {bound!r})")
        elif _quantity(str(actual)) < _quantity(str(bound)):
            problems.append(f"{path} is {actual!r}, expected at least {bound!r}")
    for path in params.present:
        actual = dig(obj, path)
        found[path] = None if actual is _MISSING else actual
        if actual is _MISSING or actual in (None, "", [], {}):
            problems.append(f"{path} is not set")
    return problems


@check("kube.object", ObjectParams)
def object_matches(ctx: Context, params: ObjectParams) -> Outcome:
    """An object exists in the learner's namespace and its fields have the expected values."""
    what = f"{params.kind} {params.name}"
    obj = kube_get(ctx, params.api_version, params.kind, params.name)
    if obj is None:
        return Outcome(False, f"no {what} ({params.api_version}) in namespace {ctx.namespace}")
    if params.created_after and kp.older_than(obj, params.created_after):
        return Outcome(
            False, kp.stale(what, obj, params.created_after), {"object": f"{params.api_version} {what}"}
        )
    found: dict[str, Any] = {}
    problems = _field_problems(obj, params, found)
    evidence = {"object": f"{params.api_version} {what}", "fields": found}
    if problems:
        return Outcome(False, f"{what}: " + "; ".join(problems), evidence)
    said = [f"{p} = {v!r}" for p, v in params.fields.items()]
    said += [f"{p} = {found[p]!r} (at least {v!r})" for p, v in params.at_least.items()]
    said += [f"{p} set" for p in params.present]
    return Outcome(True, f"{what} exists" + (f" with {', '.join(said)}" if said else ""), evidence)


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
    avoid_node_labels: dict[str, str | None] = Field(default_factory=dict)  # the node must lack these
    selects_nodes: dict[str, str | None] = Field(default_factory=dict)  # the spec must require these
    requests: dict[str, str | int | float] = Field(default_factory=dict)  # at least this much, per pod
    tolerations: list[str] = Field(default_factory=list)  # "key[=value][:Effect]"
    scheduled: bool = False  # the scheduler chose the node (no spec.nodeName written by a client)
    bound: bool = True  # false: judge the pods' specs only, bound to a node or not
    created_after: AwareDatetime | None = None  # only pods (and the Job) this new count
    min_pods: int = Field(1, ge=0)

    @model_validator(mode="after")
    def _one_selection(self) -> PlacementParams:
        if (self.label_selector is None) == (self.job is None):
            raise ValueError("give exactly one of label_selector, job")
        if not self.bound and (self.node_labels or self.avoid_node_labels or self.scheduled):
            raise ValueError("node_labels, avoid_node_labels and scheduled judge a node: they need bound")
        return self


def _unbound(pod: Obj) -> str:
    why = next(
        (
            c.get("message")
            for c in (pod.get("status") or {}).get("conditions") or []
            if c.get("type") == "PodScheduled" and c.get("status") == "False"
        ),
        None,
    )
    return "is not bound to any node" + (f" ({why})" if why else "")


def _node_problems(
    ctx: Context, params: PlacementParams, node_name: str, nodes: dict[str, Obj | None]
) -> list[str]:
    if not (params.node_labels or params.avoid_node_labels):
        return []
    if node_name not in nodes:
        nodes[node_name] = kube_get(ctx, "v1", "Node", node_name, cluster_scoped=True)
    labels = ((nodes[node_name] or {}).get("metadata") or {}).get("labels") or {}
    problems = []
    if missing := kp.lacking(labels, params.node_labels):
        problems.append(f"runs on node {node_name}, which lacks {', '.join(missing)}")
    if unwanted := kp.carrying(labels, params.avoid_node_labels):
        problems.append(f"runs on node {node_name}, which it should stay off ({', '.join(unwanted)})")
    return problems


def _placement_problems(
    ctx: Context, params: PlacementParams, pod: Obj, nodes: dict[str, Obj | None], template: Obj | None
) -> list[str]:
    spec, problems = pod.get("spec") or {}, []
    node_name: str = spec.get("nodeName") or ""
    if params.bound and not node_name:
        problems.append(_unbound(pod))
    elif params.bound:
        problems += _node_problems(ctx, params, node_name, nodes)
        if params.scheduled and (why := kp.pinned_by(pod, template)):
            problems.append(f"was pinned to node {node_name}: {why}; let the scheduler choose")
    if unselected := kp.unselected(spec, params.selects_nodes):
        problems.append(
            f"does not require node label {', '.join(unselected)} (nodeSelector or required node affinity)"
        )
    for resource, amount in params.requests.items():
        if (have := pod_requests(pod, resource)) < _quantity(amount):
            problems.append(f"requests {have.normalize() if have else 'no'} {resource} (needs {amount})")
    for wanted in params.tolerations:
        if not tolerates(spec.get("tolerations") or [], wanted):
            problems.append(f"has no toleration for {wanted}")
    return problems


def _pods_to_judge(ctx: Context, params: PlacementParams) -> tuple[list[Obj], str, Obj | None, str]:
    """(pods, what they are, the Job's pod template, why there are none) for the check's selection."""
    if params.job:
        job = kube_get(ctx, "batch/v1", "Job", params.job)
        if job is None:
            return [], f"Job {params.job}", None, f"no Job {params.job} in namespace {ctx.namespace}"
        if params.created_after and kp.older_than(job, params.created_after):
            return [], f"Job {params.job}", None, kp.stale(f"Job {params.job}", job, params.created_after)
        template = (job.get("spec") or {}).get("template")
        return job_pods(ctx, job), f"Job {params.job}", template, ""
    found = kube_list(ctx, "v1", "Pod", label_selector=params.label_selector)
    return found, f"selector {params.label_selector}", None, ""


@check("kube.pod_placement", PlacementParams)
def pod_placement(ctx: Context, params: PlacementParams) -> Outcome:
    """Pods (by label selector, or a Job's) run on the right nodes with the right requests and tolerations."""
    found, which, template, none_why = _pods_to_judge(ctx, params)
    if none_why:
        return Outcome(False, none_why)
    old = [p for p in found if params.created_after and kp.older_than(p, params.created_after)]
    current = [p for p in found if p not in old]
    nodes: dict[str, Obj | None] = {}
    report, failures = [], []
    for pod in sorted(current, key=lambda p: p["metadata"]["name"]):
        name = pod["metadata"]["name"]
        problems = _placement_problems(ctx, params, pod, nodes, template)
        report.append({"pod": name, "node": (pod.get("spec") or {}).get("nodeName"), "problems": problems})
        failures += [f"pod {name} {problem}" for problem in problems]
    evidence: dict[str, Any] = {"pods": report}
    if old:
        evidence["ignored_older_pods"] = sorted(p["metadata"]["name"] for p in old)
    if len(current) < params.min_pods:
        ignored = f" ({len(old)} older pod(s) from before the session ignored)" if old else ""
        return Outcome(
            False,
            f"{which}: found {len(current)} pod(s), expected at least {params.min_pods}{ignored}",
            evidence,
        )
    if failures:
        return Outcome(False, "; ".join(failures[:6]), evidence)
    if not params.bound:
        return Outcome(True, f"{len(current)} pod(s) of {which} ask for what is required", evidence)
    where = ", ".join(sorted({str(r["node"]) for r in report}))
    return Outcome(True, f"{len(current)} pod(s) of {which} placed as required (on {where})", evidence)


class QuotaParams(Params):
    name: str | None = None  # one ResourceQuota; None: every quota in the namespace
    resources: list[str] = Field(default_factory=list)  # e.g. requests.nvidia.com/gpu; empty: all
    min_used: dict[str, str | int | float] = Field(default_factory=dict)  # in use now: at least this


def _quota_problems(quota: Obj, params: QuotaParams, usage: dict[str, Any]) -> list[str]:
    name, status = quota["metadata"]["name"], quota.get("status") or {}
    hard, used = status.get("hard") or {}, status.get("used")
    if used is None:
        raise TransientGraderError(f"ResourceQuota {name}: usage not computed yet by the quota controller")
    problems = []
    for resource in dict.fromkeys([*(params.resources or sorted(hard)), *params.min_used]):
        if resource not in hard:
            problems.append(f"ResourceQuota {name} sets no limit for {resource}")
            continue
        now = used.get(resource, "0")
        usage[f"{name}/{resource}"] = {"used": now, "hard": hard[resource]}
        if _quantity(now) > _quantity(hard[resource]):
            problems.append(f"{resource}: {now} used of {hard[resource]} allowed by {name}")
        elif resource in params.min_used and _quantity(now) < _quantity(params.min_used[resource]):
            problems.append(
                f"{resource}: {now} in use of {hard[resource]} allowed by {name}; expected at least "
                f"{params.min_used[resource]} in use"
            )
    return problems


@check("kube.quota_respected", QuotaParams)
def quota_respected(ctx: Context, params: QuotaParams) -> Outcome:
    """The namespace's ResourceQuota use stays within its hard limits (and, with ``min_used``, is
    really used: work holds that much of it now)."""
    if params.name:
        one = kube_get(ctx, "v1", "ResourceQuota", params.name)
        quotas = [one] if one else []
    else:
        quotas = kube_list(ctx, "v1", "ResourceQuota")
    if not quotas:
        return Outcome(
            False, f"no ResourceQuota {params.name or ''} in namespace {ctx.namespace}".replace("  ", " ")
        )
    usage: dict[str, Any] = {}
    problems = [p for quota in quotas for p in _quota_problems(quota, params, usage)]
    if problems:
        return Outcome(False, "; ".join(problems), {"usage": usage})
    in_use = (
        " with " + ", ".join(f"{r}: {usage[f'{q}/{r}']['used']} in use" for q, r in _used_keys(usage, params))
        if params.min_used
        else ""
    )
    return Outcome(True, f"within quota ({len(usage)} resource(s) checked){in_use}", {"usage": usage})


def _used_keys(usage: dict[str, Any], params: QuotaParams) -> list[tuple[str, str]]:
    pairs = [tuple(key.split("/", 1)) for key in usage]
    return [(q, r) for q, r in pairs if r in params.min_used]
