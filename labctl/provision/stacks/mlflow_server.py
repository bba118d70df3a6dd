"""The learner's MLflow tracking server and model registry.

sqlite on a claim for runs and the registry; artifacts proxied by the server to the object
store's ``mlflow`` bucket, so learners' clients need only the tracking URI. Sized for hundreds
of learners per cluster: ``--workers 1`` and no job runner (a default ``mlflow server`` starts
15 processes and holds 1.7 GB; this is 2 processes and about 500 MB).
"""

from __future__ import annotations

from labctl.provision.stacks import object_store
from labctl.provision.stacks.common import (
    Object,
    Stack,
    container,
    data_volume,
    deployment,
    http_probe,
    pod_spec,
    scratch_volume,
    service,
)
from labctl.provision.stacks.settings import Component

COMPONENT: Component = "mlflow"
SERVICE = COMPONENT
PORT = 5000
DATA = "/mlflow"

# MLflow's own defaults, kept when we name our Service: loopback (port-forward) and private IPs.
_DEFAULT_HOSTS = (
    "localhost",
    "localhost:*",
    "127.0.0.1",
    "127.0.0.1:*",
    "[[]::1]:*",
    "10.*",
    *(f"172.{i}.*" for i in range(16, 32)),
    "192.168.*",
    "fc00:*",
    "fd00:*",
)


def tracking_uri(namespace: str) -> str:
    return f"http://{SERVICE}.{namespace}.svc:{PORT}"


def allowed_hosts(namespace: str) -> str:
    """Host headers MLflow accepts (its DNS-rebinding guard): the Service's names, with or
    without port and cluster domain, and MLflow's defaults. Health checks are exempt."""
    names = (SERVICE, f"{SERVICE}.{namespace}", f"{SERVICE}.{namespace}.svc")
    patterns = [p for name in names for p in (name, f"{name}:*")]
    patterns.append(f"{SERVICE}.{namespace}.svc.*")  # .cluster.local, or the cluster's own domain
    return ",".join([*patterns, *_DEFAULT_HOSTS])


def render(stack: Stack) -> list[Object]:
    settings = stack.settings
    data, claims = data_volume(stack, COMPONENT, "data", settings.storage.mlflow)
    with_store = settings.is_enabled(object_store.COMPONENT)
    # Without the object store (a lab level may not need it) artifacts stay on MLflow's claim.
    artifacts = f"s3://{object_store.MLFLOW_BUCKET}/" if with_store else f"{DATA}/artifacts"
    env = [
        {"name": "MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "value": "false"},
        # Environment rather than --allowed-hosts: an MLflow without the option ignores it.
        {"name": "MLFLOW_SERVER_ALLOWED_HOSTS", "value": allowed_hosts(stack.namespace)},
        {"name": "HOME", "value": "/tmp"},  # the image's HOME is root's, read-only for our user
    ]
    # AWS_* and MLFLOW_S3_ENDPOINT_URL for boto3, from the learner's own Secret.
    env_from = [{"secretRef": {"name": object_store.SECRET}}] if with_store else []
    server = container(
        "mlflow",
        settings.images.mlflow,
        settings.resources.mlflow,
        command=["mlflow", "server"],
        args=[
            "--host=0.0.0.0",
            f"--port={PORT}",
            "--workers=1",
            f"--backend-store-uri=sqlite:///{DATA}/mlflow.db",
            f"--artifacts-destination={artifacts}",
        ],
        env=env,
        env_from=env_from,
        ports=[("http", PORT)],
        mounts=[("data", DATA, False), ("tmp", "/tmp", False)],
        probes={
            # Imports and database migrations take seconds, more under a tight CPU limit:
            # liveness starts counting only once this has passed (up to 3 minutes).
            "startupProbe": http_probe("/health", "http", period=3, failures=60),
            "readinessProbe": http_probe("/health", "http"),
            "livenessProbe": http_probe("/health", "http", period=20),
        },
    )
    volumes = [data, scratch_volume("tmp", settings.storage.mlflow_scratch)]
    spec = pod_spec(stack, [server], volumes)
    return [*claims, deployment(stack, COMPONENT, spec), service(stack, COMPONENT, [("http", PORT)])]
