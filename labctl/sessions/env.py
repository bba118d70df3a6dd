"""What a learner exports to use their stacks: URLs, object-store keys, their seed."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Collection

from labctl.api.v1alpha1 import API_VERSION
from labctl.core.errors import UsageError
from labctl.kube import Kube
from labctl.provision.stacks import alertmanager, mlflow_server, object_store, prometheus
from labctl.sessions import client

SERVICES = {  # env var -> (Service, port)
    "MLFLOW_TRACKING_URI": (mlflow_server.COMPONENT, mlflow_server.PORT),
    "AWS_ENDPOINT_URL": (object_store.COMPONENT, object_store.PORT),
    "PROMETHEUS_URL": (prometheus.COMPONENT, prometheus.PORT),
    "ALERTMANAGER_URL": (alertmanager.COMPONENT, alertmanager.PORT),
}


PORT_OFFSET_ENV = "LABCTL_PORT_OFFSET"


def port_offset() -> int:
    """`lab connect` listens on each Service's port (5000, 7070, 9090, 9093) plus this offset,
    and `lab env` names the same ports: set it when those ports are taken on your machine."""
    raw = os.environ.get(PORT_OFFSET_ENV, "0")
    if not raw.isdigit() or int(raw) > 55000:
        raise UsageError(f"{PORT_OFFSET_ENV}={raw!r}: a whole number from 0 to 55000")
    return int(raw)


def stack_env(
    kube: Kube, namespace: str, reach: Callable[[str], str], *, stacks: Collection[str] | None = None
) -> dict[str, str]:
    """``export``-able variables for the learner's stacks (only ``stacks`` if given), each URL
    passed through ``reach`` (cluster DNS as is, or a port-forward)."""
    env = {
        var: reach(f"http://{svc}.{namespace}.svc:{port}")
        for var, (svc, port) in SERVICES.items()
        if stacks is None or svc in stacks
    }
    if "AWS_ENDPOINT_URL" in env:
        secret = kube.get("v1", "Secret", object_store.SECRET, namespace)
        for key, value in ((secret or {}).get("data") or {}).items():
            if key.startswith("AWS_") and key != "AWS_ENDPOINT_URL":
                env[key] = base64.b64decode(value).decode()
        env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        env["MLFLOW_S3_ENDPOINT_URL"] = env["AWS_ENDPOINT_URL"]
    if "MLFLOW_TRACKING_URI" in env:
        # MLflow 3 clients download artifacts from presigned URLs of the store when the server offers
        # them; those name the store's cluster address, out of reach through `lab connect`.
        env["MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD"] = "false"
    for item in kube.list(API_VERSION, client.KIND, namespace=namespace):
        if (seed := client.status_of(item).seed) is not None:
            env["LAB_SEED"] = str(seed)
    env["LAB_NAMESPACE"] = namespace
    return env
