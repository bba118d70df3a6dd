"""Save each learner's stack data (MLflow, object store) from their running pods, before deletion.

For each learner with a stack: a Ready pod of the component, reached by port-forward through the
API server (works from an instructor's laptop: no pod routes, no cluster DNS), dumped by
:mod:`labctl.exports` into ``DIR/<cohort>/stacks/<email>/{mlflow,object-store}/``. A
component the cluster does not run for the learner (disabled in the stack settings) is skipped;
one that is there but cannot be read is an error, so nothing gets deleted unsaved.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

from labctl.core.errors import LabctlError
from labctl.exports.bucket_dump import dump_buckets
from labctl.exports.mlflow_dump import dump_mlflow
from labctl.kube import Kube, condition_true
from labctl.portforward import forwarded
from labctl.provision.naming import learner_namespace
from labctl.provision.stacks.object_store import SECRET as CREDENTIALS_SECRET

STACK_LABEL = "labctl.dev/stack"
MLFLOW, OBJECT_STORE = "mlflow", "object-store"
PORT_NAMES = {MLFLOW: "http", OBJECT_STORE: "s3"}  # the container ports the stacks name


def export_stacks(
    kube: Kube, learner: dict[str, Any], target: Path, report: Callable[[str], None] = lambda _l: None
) -> None:
    """Write ``target/mlflow`` and ``target/object-store`` for ``learner`` (those it has)."""
    email = learner["spec"]["email"]
    namespace = learner_namespace(learner)
    if (pod := _pod(kube, namespace, email, MLFLOW)) is not None:
        with forwarded(kube, namespace, pod["metadata"]["name"], _port(pod, MLFLOW, email)) as url:
            report(f"{email}: MLflow {dump_mlflow(url, target / MLFLOW, learner=email)}")
    if (pod := _pod(kube, namespace, email, OBJECT_STORE)) is not None:
        access, secret, region = _credentials(kube, namespace, email)
        with forwarded(kube, namespace, pod["metadata"]["name"], _port(pod, OBJECT_STORE, email)) as url:
            saved = dump_buckets(url, access, secret, target / OBJECT_STORE, region=region, learner=email)
            report(f"{email}: object store {saved}")


def _pod(kube: Kube, namespace: str, email: str, component: str) -> dict[str, Any] | None:
    """The component's Ready pod; None when the learner has no such stack; an error when it is
    there but not ready (its data cannot be read now)."""
    selector = f"{STACK_LABEL}={component}"
    if not kube.list("apps/v1", "Deployment", namespace=namespace, label_selector=selector):
        return None
    pods = kube.list("v1", "Pod", namespace=namespace, label_selector=selector)
    ready = [p for p in pods if condition_true(p, "Ready") and not p["metadata"].get("deletionTimestamp")]
    if not ready:
        raise LabctlError(
            f"learner {email}: no Ready {component} pod in namespace {namespace}, so its data cannot be "
            "exported; wait for the stack to be ready"
        )
    return ready[0]


def _port(pod: dict[str, Any], component: str, email: str) -> int:
    ports = [
        p["containerPort"]
        for c in pod["spec"]["containers"]
        for p in c.get("ports") or []
        if p.get("name") == PORT_NAMES[component]
    ]
    if not ports:
        name = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
        raise LabctlError(f"learner {email}: pod {name} names no port {PORT_NAMES[component]!r}")
    return int(ports[0])


def _credentials(kube: Kube, namespace: str, email: str) -> tuple[str, str, str]:
    secret = kube.get("v1", "Secret", CREDENTIALS_SECRET, namespace)
    data = (secret or {}).get("data") or {}
    if "AWS_ACCESS_KEY_ID" not in data or "AWS_SECRET_ACCESS_KEY" not in data:
        where = f"{namespace}/{CREDENTIALS_SECRET}"
        raise LabctlError(f"learner {email}: Secret {where} has no object-store keys")
    value = {k: base64.b64decode(v).decode() for k, v in data.items()}
    return value["AWS_ACCESS_KEY_ID"], value["AWS_SECRET_ACCESS_KEY"], value.get("AWS_REGION", "us-east-1")
